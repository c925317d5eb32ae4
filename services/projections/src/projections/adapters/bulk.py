"""Bulk writes of a batch's rows, by binary COPY on PostgreSQL and executemany elsewhere.

On PostgreSQL: COPY into the table, or into a session staging table and one INSERT … SELECT …
ON CONFLICT, many times faster than a statement per row.

Rows are tuples in the order of `columns`.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from projections.adapters.database import STAGES, insert_for

Row = tuple[Any, ...]


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: list[Row],
    rising: str | None = None,
) -> None:
    """Insert `rows`, replacing the rows with the same primary key (only where the stored
    `rising` column is not above the new one: a slower writer never puts an older state back)."""
    if not rows:
        return
    key = [c.name for c in table.primary_key.columns]
    if conn.dialect.name == "postgresql":
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in key)
        guard = f' WHERE "{table.name}"."{rising}" <= EXCLUDED."{rising}"' if rising else ""
        _copy_in(conn, table, columns, rows, f"DO UPDATE SET {updates}{guard}")
        return
    insert = insert_for(conn, table)
    statement = insert.on_conflict_do_update(
        index_elements=key,
        set_={c: insert.excluded[c] for c in columns if c not in key},
        where=None if rising is None else table.c[rising] <= insert.excluded[rising],
    )
    conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])


def add_up(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: list[Row],
    measures: Sequence[str],
) -> None:
    """Insert `rows`, adding their `measures` to those of the rows with the same primary key;
    in key order, so that two writers lock the rows in one order (and never deadlock)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sums = ", ".join(f'"{m}" = "{table.name}"."{m}" + EXCLUDED."{m}"' for m in measures)
        _copy_in(conn, table, columns, rows, f"DO UPDATE SET {sums}", ordered=True)
        return
    key = [c.name for c in table.primary_key.columns]
    insert = insert_for(conn, table)
    statement = insert.on_conflict_do_update(
        index_elements=key, set_={m: table.c[m] + insert.excluded[m] for m in measures}
    )
    conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])


def insert_new(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: list[Row],
    *,
    unique: bool = False,
) -> None:
    """Insert `rows`, leaving alone any whose primary key is already there. With `unique`
    the caller knows none is (a duplicate fails the transaction): on PostgreSQL the rows are
    copied straight into the table."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        if unique:
            _copy_straight(conn, table, columns, rows)
        else:
            _copy_in(conn, table, columns, rows, "DO NOTHING")
        return
    conn.execute(
        insert_for(conn, table).on_conflict_do_nothing(),
        [dict(zip(columns, row, strict=True)) for row in rows],
    )


def _copy_in(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: list[Row],
    conflict: str,
    *,
    ordered: bool = False,
) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    key = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
    stage = f"_stage_{table.name}"
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - an open connection has one
    staged: set[str] = conn.connection.info.setdefault(STAGES, set())
    with raw.cursor() as cursor:
        if stage not in staged:
            # Rows vanish at commit; the table lives as long as the session.
            cursor.execute(
                f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}") '
                "ON COMMIT DELETE ROWS"
            )
            staged.add(stage)
        _copy(cursor, conn, table.name, stage, columns, rows)
        order = f" ORDER BY {key}" if ordered else ""
        # The stage emptied by the same statement (one round trip): a second write of the
        # table in this transaction starts from an empty stage.
        cursor.execute(
            f'WITH staged AS (DELETE FROM "{stage}" RETURNING {names}) '  # noqa: S608 - our names
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM staged{order} '
            f"ON CONFLICT ({key}) {conflict}"
        )


def _copy_straight(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[Row]
) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - an open connection has one
    with raw.cursor() as cursor:
        _copy(cursor, conn, table.name, table.name, columns, rows)


def _copy(
    cursor: Any,
    conn: sa.Connection,
    table: str,
    target: str,
    columns: Sequence[str],
    rows: list[Row],
) -> None:
    """Binary COPY of `rows` into `target` (whose columns are those of `table`)."""
    types = _column_types(cursor, conn, table)
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{target}" ({names}) FROM STDIN (FORMAT BINARY)') as copy:
        copy.set_types([types[c] for c in columns])
        for row in rows:
            copy.write_row(row)


def _column_types(cursor: Any, conn: sa.Connection, table: str) -> dict[str, str]:
    """The PostgreSQL type of each column (binary COPY needs them), once per session."""
    known: dict[str, dict[str, str]] = conn.connection.info.setdefault("projection_types", {})
    if table not in known:
        cursor.execute(
            "SELECT attname, atttypid::regtype::text FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (f'"{table}"',),
        )
        known[table] = dict(cursor.fetchall())
    return known[table]
