"""What the soak plans and notes as it goes: the plan from the command line, the faults and
figures it journals, and what a wipe of the broker's log left behind."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import soak_logs as logs


@dataclass(frozen=True)
class Plan:
    rate: float
    seconds: float
    leads_rate: float
    stale_seconds: float
    pause_seconds: float
    drain_seconds: float
    max_active: int
    record: bool
    logs: Path | None = None


@dataclass
class Wipe:
    """The broker's log lost mid-run: what the old log held, how the system recovered."""

    old_log: logs.TopicLog
    old_epoch: str | None
    leads_republished: int = 0
    republished_after: float | None = None  # broker back → relay lag 0 in a new log epoch
    current_after: float | None = None  # broker back → every read model current
    events: int = 0  # the store's history when they were
    behind: dict[str, float] = field(default_factory=dict)  # what was not, if they never were
    said_rereading: list[str] = field(default_factory=list)  # services whose /readyz said so
    losses: dict[str, float] = field(default_factory=dict)  # log losses each service counted
    waited: float = 0.0  # how long the soak waited for them
    leads_sent: int = 0  # leads the lead feed had sent when the broker was killed
    # consumer group → partitions committed past the new log's end, of how many
    stranded: dict[str, tuple[int, int]] = field(default_factory=dict)

    def recovery(self) -> str:
        relay = (
            f"relay lag 0 in a new log epoch {self.republished_after:.1f} s"
            if self.republished_after is not None
            else "relay never at lag 0 in a new log epoch"
        )
        if self.current_after is None:
            late = ", ".join(f"{k} {v:g}" for k, v in self.behind.items())
            return (
                f"{relay} and read models NOT current {self.waited:.0f} s after the broker "
                f"answered again (behind: {late})"
            )
        return (
            f"{relay} and every read model current {self.current_after:.1f} s after the "
            f"broker answered again (a history of {self.events:,} events)"
        )


@dataclass
class Journal:
    """What happened during the run, for the report."""

    faults: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    wipe: Wipe | None = None

    def note(self, line: str) -> None:
        stamped = f"t={time.monotonic() - self.started:6.1f}s  {line}"
        self.faults.append(stamped)
        print(stamped, flush=True)
