"""Exactly one relay per event store: a PostgreSQL advisory lock, or a file lock beside a
SQLite store. A holder that dies loses the lock with its connection or process."""

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import IO, Protocol

import psycopg


class Leadership(Protocol):
    def try_acquire(self) -> bool: ...

    def holds(self) -> bool: ...

    def release(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresLeadership:
    """Session-level `pg_try_advisory_lock` on a connection of its own."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo, self._key = conninfo, lock_key(name)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def try_acquire(self) -> bool:
        if self._alive():
            return True
        self.release()
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            return False
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        if row is None or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def holds(self) -> bool:
        """Whether the lock was held when `try_acquire` last asked the server: no round trip,
        for /readyz, which must answer while the store hangs."""
        return self._conn is not None and not self._conn.closed

    def _alive(self) -> bool:
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


class FileLeadership:
    """`flock` on a file beside the SQLite store; the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        file = self._path.open("ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        self._file = file
        return True

    def holds(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leadership_for(eventstore_url: str) -> Leadership:
    """The relay lock of this event store."""
    if eventstore_url.startswith("sqlite"):
        return FileLeadership(Path(eventstore_url.removeprefix("sqlite:///") + ".relay.lock"))
    conninfo = "postgresql://" + eventstore_url.split("://", 1)[1]
    return PostgresLeadership(conninfo, "oppstream.relay")
