"""Engines for the projections database: SQLite (WAL, one writer) or PostgreSQL (psycopg 3)."""

from typing import Any

import sqlalchemy as sa

from contracts.settings import sqlalchemy_url


def create_engine(url: str, *, writer: bool = False) -> sa.Engine:
    """An engine; on SQLite a `writer` takes the write lock when its transaction begins
    (BEGIN IMMEDIATE), so two writers queue instead of failing halfway."""
    if not url.startswith("sqlite"):
        return sa.create_engine(
            sqlalchemy_url(url), pool_pre_ping=True, pool_size=5, max_overflow=10
        )
    engine = sa.create_engine(sqlalchemy_url(url), connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        # We issue BEGIN ourselves; pysqlite's implicit transactions would get in the way.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def insert_for(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    rising: str | None = None,
) -> None:
    """Insert `rows`, replacing the rows with the same primary key (only where the stored
    `rising` column is not above the new one: a slower writer never puts an older state back)."""
    if not rows:
        return
    insert = insert_for(conn, table)
    key = [c.name for c in table.primary_key.columns]
    statement = insert.on_conflict_do_update(
        index_elements=key,
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in key},
        where=None if rising is None else table.c[rising] <= insert.excluded[rising],
    )
    conn.execute(statement, rows)


def insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, leaving alone any whose primary key is already there."""
    if rows:
        conn.execute(insert_for(conn, table).on_conflict_do_nothing(), rows)
