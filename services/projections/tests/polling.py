"""Waiting for something with a deadline, never a bare sleep."""

import time
from collections.abc import Callable
from typing import Any

DEADLINE = 60.0


def poll(what: Callable[[], Any], until: Callable[[Any], bool], deadline: float = DEADLINE) -> Any:
    """`what()` once `until` holds for it; TimeoutError with the last value at the deadline."""
    end = time.monotonic() + deadline
    value = what()
    while not until(value):
        if time.monotonic() > end:
            raise TimeoutError(f"still {value!r} after {deadline} s")
        time.sleep(0.05)
        value = what()
    return value
