"""What time it is, as the use cases ask it: a callable; a hand-moved one for tests and backtests."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


class ManualClock:
    """A clock that only moves when told to; call it for the time, like `system_clock`."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock keeps aware times")
        self._now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("time does not run backwards")
        self._now += by
        return self._now

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("a clock keeps aware times")
        self._now = moment.astimezone(UTC)
        return self._now
