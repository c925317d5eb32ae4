"""Hostile records for the consumers' fuzz tests: what a broken or malicious producer can put on
a topic. Bytes that are no JSON (invalid UTF-8, empty, cut short, noise), JSON that is no
object, nesting deeper than any parser goes, and, built from one valid message of the topic,
objects with a field missing, of the wrong type, ~1 MB long, deeply nested or holding a NUL.

Every choice is drawn from a `random.Random(seed)`: the same seed draws the same cases, the
same noise and the same keys and order, so a failing run replays (`OPPSTREAM_FUZZ_SEED=<seed>`;
only the ids and times of the valid messages differ). Each record names the case that made
it, for assertion messages. Redeliveries are the tests' business: they know which of their
messages are valid.
"""

import copy
import os
import random
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson

# About 1 MB: a record holding such a field stays under the producers' default request size
# (1 MiB), so the broker takes it, and a DLQ copy (the same bytes plus headers) fits too.
HUGE = 1_000_000
# The most a record's value holds under the producers' default max_request_size (1 MiB):
# what is left once the record batch's overhead (61 bytes) and a key of up to 64 are counted.
LIMIT = 1024 * 1024 - 200
# Deeper than orjson goes (1024 levels): the parser refuses it.
TOO_DEEP = 5_000
# Deep, yet within what orjson writes and reads: a value no field of a contract takes.
DEEP = 200

T = TypeVar("T")


def seed(default: int = 20261128) -> int:
    """The fuzz seed: OPPSTREAM_FUZZ_SEED when set (to replay or explore), else `default`."""
    return int(os.environ.get("OPPSTREAM_FUZZ_SEED", default))


@dataclass(frozen=True)
class Hostile:
    """One record to publish: the case that made it, its value and its key."""

    case: str
    value: bytes | None
    key: bytes | None = None

    def keyed(self, key: bytes | None) -> "Hostile":
        """This record with `key`; a tombstone keeps a key (aiokafka sends no record without
        both)."""
        if key is None and self.value is None:
            key = b"tombstone"
        return replace(self, key=key)


def not_json(rng: random.Random, valid: bytes) -> list[Hostile]:
    """Bytes that are no JSON document, `valid` (a message of the topic) spoilt among them."""
    cases = {
        "empty value": b"",
        "invalid UTF-8": b'{"a": "\xff\xfe\xfd"}',
        "overlong UTF-8": b"\xc0\xaf\xe0\x80\xaf",
        "UTF-8 surrogate": b'"\xed\xa0\x80"',
        "lone surrogate escape": b'{"a": "\\ud800"}',
        "byte order mark": b"\xef\xbb\xbf" + valid,
        "cut short": valid[: rng.randrange(1, len(valid))],
        "trailing garbage": valid + b"}",
        "NaN": b'{"a": NaN}',
        "infinity": b"1e400",
        "single quotes": b"{'a': 1}",
        "NUL bytes": b"\x00" * rng.randrange(1, 64),
        "latin-1": b'{"name": "M\xfcller"}',
    }
    for n in range(4):
        cases[f"noise {n}"] = rng.randbytes(rng.randrange(1, 4096))
    return [Hostile(f"not JSON: {name}", value) for name, value in cases.items()]


def not_objects(rng: random.Random) -> list[Hostile]:
    """JSON documents that are no object."""
    values: list[Any] = [
        None,
        True,
        0,
        -1,
        2**64 - 1,
        1.5e300,
        "",
        _text(rng, 40),
        [],
        [1, "two", None, {"three": 3}],
        [{}],
    ]
    found = [
        Hostile(f"not an object: {orjson.dumps(v).decode()[:40]}", orjson.dumps(v)) for v in values
    ]
    found.append(Hostile("not an object: integer beyond 64 bits", b"1" + b"0" * 30))
    return found


def at_the_limit(rng: random.Random) -> Hostile:
    """Bytes that are no JSON, as many as a producer sends in one record by default (1 MiB,
    less the batch's and the record's overhead and room for a short key)."""
    return Hostile("not JSON: 1 MiB", _text(rng, LIMIT).encode())


def too_deep() -> list[Hostile]:
    """Nesting beyond what a parser takes: arrays, and objects whose one field nests on."""
    arrays = b"[" * TOO_DEEP + b"]" * TOO_DEEP
    objects = b'{"a":' * TOO_DEEP + b"1" + b"}" * TOO_DEEP
    return [Hostile("too deep: arrays", arrays), Hostile("too deep: objects", objects)]


def no_value() -> Hostile:
    """A record without a value (a tombstone)."""
    return Hostile("no value", None, b"tombstone")


def empty_object() -> Hostile:
    """An object with every field missing."""
    return Hostile("missing: every field", b"{}")


def shapeless(rng: random.Random, valid: bytes) -> list[Hostile]:
    """Records that are no message at all, whatever the topic: not JSON (`valid` spoiled), not
    an object, at the size limit, too deep, without a value, an empty object."""
    return [
        *not_json(rng, valid),
        *not_objects(rng),
        at_the_limit(rng),
        *too_deep(),
        no_value(),
        empty_object(),
    ]


def without(message: Mapping[str, Any], fields: Iterable[str]) -> list[Hostile]:
    """`message` without each of `fields` (dotted paths), one at a time."""
    found = []
    for path in fields:
        changed = copy.deepcopy(dict(message))
        *parents, last = path.split(".")
        _at(changed, parents).pop(last)
        found.append(Hostile(f"missing: {path}", orjson.dumps(changed)))
    return found


def mistyped(rng: random.Random, message: Mapping[str, Any], paths: Iterable[str]) -> list[Hostile]:
    """`message` with the value at each path replaced by one of a type no field of its kind
    takes: a list or an object for a scalar, a scalar or a list for an object."""
    found = []
    for path in paths:
        current = _get(message, path)
        if isinstance(current, dict):
            wrong = rng.choice([0, 1.5, "text", [], [current], True])
        else:
            wrong = rng.choice([[], [current], {}, {"value": current}])
        found.append(_set(message, path, wrong, f"wrong type: {path} = {_short(wrong)}"))
    return found


def huge(rng: random.Random, message: Mapping[str, Any], paths: Iterable[str]) -> list[Hostile]:
    """`message` with a string of about 1 MB at each path."""
    return [_set(message, path, _text(rng, HUGE), f"huge: {path}") for path in paths]


def nested(message: Mapping[str, Any], path: str) -> Hostile:
    """`message` with lists nested `DEEP` levels at `path`."""
    value: Any = "bottom"
    for _ in range(DEEP):
        value = [value]
    return _set(message, path, value, f"deeply nested: {path}")


def with_nul(message: Mapping[str, Any], path: str) -> Hostile:
    """`message` with a NUL character (JSON "\\u0000") inside the string at `path`."""
    return _set(message, path, f"{_get(message, path)}\x00tail", f"NUL character: {path}")


def shuffled_between(rng: random.Random, valid: Sequence[T], hostile: Sequence[T]) -> list[T]:
    """All of `valid` in their order, with `hostile` shuffled in before, between and after."""
    slots: list[list[T]] = [[] for _ in range(len(valid) + 1)]
    for item in hostile:
        rng.choice(slots).append(item)
    merged: list[T] = list(slots[0])
    for item, after in zip(valid, slots[1:], strict=True):
        merged.append(item)
        merged.extend(after)
    return merged


def keys(rng: random.Random, *choices: bytes | None) -> Callable[[], bytes | None]:
    """Draws a record key: one of `choices`, none, empty, or bytes that are no UTF-8."""
    pool: list[bytes | None] = [*choices, None, b"", b"\xff\xfe key"]
    return lambda: rng.choice(pool)


def _text(rng: random.Random, length: int) -> str:
    """About `length` bytes of UTF-8: letters and digits, and a few CJK characters."""
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length - 12)) + "商机客户"


def _short(value: Any) -> str:
    return orjson.dumps(value).decode()[:30]


def _get(message: Mapping[str, Any], path: str) -> Any:
    *parents, last = path.split(".")
    return _at(message, parents)[last]


def _set(message: Mapping[str, Any], path: str, value: Any, case: str) -> Hostile:
    changed = copy.deepcopy(dict(message))
    *parents, last = path.split(".")
    _at(changed, parents)[last] = value
    return Hostile(case, orjson.dumps(changed))


def _at(message: Any, parents: Sequence[str]) -> Any:
    for name in parents:
        message = message[name]
    return message
