"""Engines for the projections database: SQLite (WAL, one writer) or PostgreSQL (psycopg 3)."""

from typing import Any

import sqlalchemy as sa

from chassis.sql.engines import postgres_engine, sqlite_engine

# The staging tables (bulk.py) a PostgreSQL session has created, kept in its connection's info.
STAGES = "projection_stages"


def create_engine(url: str, *, writer: bool = False) -> sa.Engine:
    """An engine; on SQLite a `writer` takes the write lock when its transaction begins
    (BEGIN IMMEDIATE), so two writers queue instead of failing halfway."""
    if not url.startswith("sqlite"):
        engine = postgres_engine(url, pool_size=5, max_overflow=10)
        _multi_row_inserts(engine)
        _forget_stages_on_rollback(engine)
        return engine
    engine = sqlite_engine(url, 60, lambda _: "BEGIN IMMEDIATE" if writer else "BEGIN")
    _multi_row_inserts(engine)
    return engine


def _multi_row_inserts(engine: sa.Engine) -> None:
    """Batched INSERTs as multi-row VALUES statements ("insertmanyvalues"), several times
    faster than one statement per row, even pipelined."""
    engine.dialect.use_insertmanyvalues_wo_returning = True


def _forget_stages_on_rollback(engine: sa.Engine) -> None:
    """A transaction that rolls back takes the staging tables it created with it: the session
    must not believe it still has them."""

    @sa.event.listens_for(engine, "rollback")
    def _rollback(connection: sa.Connection) -> None:
        if not connection.invalidated:  # else the next session starts with nothing anyway
            connection.info.pop(STAGES, None)


def insert_for(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)
