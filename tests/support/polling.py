"""Waiting for something with a deadline: asked again at a short interval, never a bare sleep."""

import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import pytest

DEADLINE = 60.0
INTERVAL = 0.05

T = TypeVar("T")


def poll(
    what: Callable[[], T],
    until: Callable[[T], Any] = bool,
    deadline: float = DEADLINE,
    interval: float = INTERVAL,
) -> T:
    """`what()` once `until` holds for it (by default: once it is truthy), asked every
    `interval` s; TimeoutError with the last value after `deadline` s."""
    end = time.monotonic() + deadline
    value = what()
    while not until(value):
        if time.monotonic() > end:
            raise TimeoutError(f"still {value!r} after {deadline} s")
        time.sleep(interval)
        value = what()
    return value


def wait_until(
    condition: Callable[[], T],
    seconds: float,
    what: str,
    *,
    interval: float = INTERVAL,
    fail: Callable[[str], NoReturn] = pytest.fail,
) -> T:
    """`condition()` once it is truthy; else, after `seconds`, the test fails (`fail`)
    saying `what` did not happen."""
    try:
        return poll(condition, bool, seconds, interval)
    except TimeoutError:
        fail(f"not within {seconds} s: {what}")
