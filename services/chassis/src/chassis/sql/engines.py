"""What the services' SQL stores share: instants that stay aware, SQLite in WAL mode with
transactions that begin as the store says, and PostgreSQL engines that give up in seconds."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from chassis.settings import sqlalchemy_url

# A store that does not answer fails a request within seconds (HTTP 503) rather than holding
# it: a connection attempt gives up after CONNECT_SECONDS (libpq counts whole seconds, two at
# least), a wait for a pooled connection after POOL_WAIT_SECONDS.
CONNECT_SECONDS = 2
POOL_WAIT_SECONDS = 3


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out: `timestamptz` on PostgreSQL, UTC text of
    fixed width on SQLite (so that text order is time order)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps aware instants only")
        moment = value.astimezone(UTC)
        return moment if dialect.name == "postgresql" else moment.replace(tzinfo=None)

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the signature SQLAlchemy calls
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_engine(
    url: str, timeout_seconds: int, begin: Callable[[sa.Connection], str]
) -> sa.Engine:
    """A SQLite engine in WAL mode (readers go on while one writer writes) that waits up to
    `timeout_seconds` for a lock; a transaction begins with the statement `begin` picks for
    its connection (BEGIN or BEGIN IMMEDIATE)."""
    engine = sa.create_engine(sqlalchemy_url(url), connect_args={"timeout": timeout_seconds})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        # We say BEGIN ourselves; pysqlite's implicit transactions would get in the way.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={timeout_seconds * 1000}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql(begin(connection))

    return engine


def postgres_engine(
    url: str, *, pool_size: int = 5, max_overflow: int = 10, options: str | None = None
) -> sa.Engine:
    """A PostgreSQL engine (psycopg 3) whose pooled connections are checked before use, so
    that the connections a restarted store dropped are replaced, not failed on; `options`
    are the server settings of its sessions (`-c name=value`)."""
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_SECONDS}
    if options is not None:
        connect_args["options"] = options
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=POOL_WAIT_SECONDS,
        connect_args=connect_args,
    )
