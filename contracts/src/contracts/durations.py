"""Durations as the rules file writes them: ISO 8601 (`P7D`, `PT36H`) or compact (`7d`, `36h`);
where a rule may count working days (SPEC §8.4), also `3wd` (`Span`)."""

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from contracts.workdays import Span, WorkingDays

_ISO = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_COMPACT = re.compile(
    r"^(?:(?P<weeks>\d+)w)?(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?"
    r"(?:(?P<minutes>\d+)m)?(?:(?P<seconds>\d+(?:\.\d+)?)s)?$"
)


def parse_duration(text: str) -> timedelta:
    """`P7D`, `PT36H`, `P1DT12H`, `7d`, `36h`, `30m`, `10s`, `1d12h` → timedelta."""
    if not isinstance(text, str):
        raise ValueError(f"a duration is text such as 'P7D' or '7d', not {text!r}")
    cleaned = text.strip()
    match = _ISO.match(cleaned.upper()) if cleaned.upper().startswith("P") else None
    match = match or _COMPACT.match(cleaned.lower())
    if not cleaned or cleaned.upper() in ("P", "PT") or match is None:
        raise ValueError(
            f"{text!r} is not a duration: write ISO 8601 days/hours/minutes/seconds "
            "('P7D', 'PT36H') or compact ('7d', '36h', '30m', '10s'); "
            "months and years are refused as their length varies"
        )
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    if not parts:
        raise ValueError(f"{text!r} is not a duration")
    return timedelta(**parts)


def format_duration(value: timedelta) -> str:
    """ISO 8601 text for a timedelta, e.g. `P7D` or `PT36H`."""
    # Whole microseconds, not int(total_seconds()): parse_duration takes `PT0.5S` and `10.5s`,
    # and what it takes must come back unchanged.
    seconds, micros = divmod(value // timedelta(microseconds=1), 1_000_000)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n)
    if micros:
        time += f"{secs}.{micros:06d}".rstrip("0") + "S"
    elif secs:
        time += f"{secs}S"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else ("" if days else "T0S"))


def _coerce(value: object) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)  # type: ignore[arg-type]


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["P7D", "PT36H", "7d", "36h", "30m", "10s"]}),
]


_WORKING_DAYS = re.compile(r"^(?P<days>\d+)\s*wd$")


def parse_span(text: str) -> Span:
    """`3wd` → WorkingDays(3); anything else as `parse_duration`."""
    match = _WORKING_DAYS.match(text.strip().lower()) if isinstance(text, str) else None
    if match is not None:
        return WorkingDays(int(match["days"]))
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; or working days of mainland China ('3wd')") from None


def format_span(value: Span) -> str:
    return str(value) if isinstance(value, WorkingDays) else format_duration(value)


def _coerce_span(value: object) -> Span:
    if isinstance(value, timedelta | WorkingDays):
        return value
    return parse_span(value)  # type: ignore[arg-type]


RuleSpan = Annotated[
    Span,
    BeforeValidator(_coerce_span),
    PlainSerializer(format_span, return_type=str),
    WithJsonSchema(
        {"type": "string", "examples": ["P7D", "7d", "36h", "3wd"]},
    ),
]
