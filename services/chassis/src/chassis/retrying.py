"""Trying again after a failure, pausing twice as long each time up to a ceiling: how every
loop of the services waits while its broker or store is down."""

import asyncio
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    first: float = 0.1
    longest: float = 5.0
    pause: float = field(init=False)

    def __post_init__(self) -> None:
        self.pause = self.first

    def reset(self) -> None:
        """It worked: the next failure pauses briefly again."""
        self.pause = self.first

    async def wait(self, what: str, error: str) -> None:
        """Say what failed, then pause before the next try."""
        log.warning("%s: %s; again in %.1f s", what, error, self.pause)
        await asyncio.sleep(self.pause)
        self.pause = min(self.pause * 2, self.longest)
