"""Which partitions of `crm.opportunity.events` this copy owns: it keeps and fires only the
timers of those, so several copies never fire the same timer. A rebalance takes partitions
away only between two scheduler rounds (the lock), so the next owner finds every round of
the previous one finished: fired, published and marked sent."""

import asyncio
from collections.abc import Awaitable, Callable, Iterable


async def _nothing_in_flight() -> None:
    return None


class Ownership:
    def __init__(self) -> None:
        self._partitions: frozenset[int] = frozenset()
        self.lock = asyncio.Lock()
        self.changes = 0  # bumped on every change: the scheduler rereads its outbox then
        # Waits for the scheduler's publish in flight (set by the scheduler).
        self.settle: Callable[[], Awaitable[None]] = _nothing_in_flight

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    def set(self, partitions: Iterable[int]) -> None:
        self._partitions = frozenset(partitions)
        self.changes += 1

    def drop(self, partitions: Iterable[int]) -> None:
        self.set(self._partitions - set(partitions))
