"""Text every store can hold: PostgreSQL's text type refuses the NUL character, and the event
store, the listing and the read models keep text in it. Refused at every edge (HTTP bodies,
leads), naming the field."""

from typing import Any


def refuse_nul(value: Any) -> Any:
    """The value unchanged; ValueError when it (or a text field of an object such as the
    customer) holds NUL."""
    where = _nul_in(value)
    if where is not None:
        raise ValueError(f"{where or 'text'} must not contain the NUL character (\\u0000)")
    return value


def _nul_in(value: Any) -> str | None:
    """Which text holds NUL: "" for the value itself, a key of an object, or None."""
    if isinstance(value, str):
        return "" if "\x00" in value else None
    if isinstance(value, dict):
        return next((str(k) for k, v in value.items() if isinstance(v, str) and "\x00" in v), None)
    return None
