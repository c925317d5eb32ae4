"""Calendar periods of the reports (the leaderboard's day … year, the trailing months of the
company standard), of local wall-clock times; pure."""

from datetime import date, datetime, timedelta

PERIODS = ("day", "week", "month", "quarter", "year")


def period_of(local: datetime, period: str) -> str:
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "quarter":
        return f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}"
    if period == "year":
        return f"{local.year:04d}"
    return f"{local.year:04d}-{local.month:02d}"


def months_before(local: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months earlier (day clamped to the month)."""
    index = local.year * 12 + local.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last_day = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return local.replace(year=year, month=month, day=min(local.day, last_day))
