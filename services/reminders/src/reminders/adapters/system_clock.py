"""The real clock, what production runs on (reminders.domain.clock has the hand-moved one)."""

from datetime import UTC, datetime


def system_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
