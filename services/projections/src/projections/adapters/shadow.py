"""The rebuild's shadow tables (`rebuild_…`): created empty, made durable, then switched in
place of the live tables in one transaction, with the live tables' Kafka positions and grants."""

from typing import Any

import sqlalchemy as sa

from projections.adapters.bi_views import VIEW_NAMES, create_views, drop_views
from projections.adapters.schema import EVENT_TABLES, LIVE, Tables, build_tables

SHADOW_PREFIX = "rebuild_"


def live_positions(conn: sa.Connection) -> list[dict[str, Any]]:
    """The live tables' Kafka positions, as they are when the rebuild begins."""
    if not sa.inspect(conn).has_table(LIVE.position.name):
        return []
    return [dict(row) for row in conn.execute(sa.select(LIVE.position)).mappings()]


def create_shadow(engine: sa.Engine) -> Tables:
    """Empty shadow tables, in place of any a failed rebuild left. Unlogged while filled: no
    WAL for rows nobody reads yet (made logged, and compact, by `settle`)."""
    shadow = build_tables(
        SHADOW_PREFIX, with_indexes=False, unlogged=engine.dialect.name == "postgresql"
    )
    with engine.begin() as conn:
        for table in reversed(shadow.metadata.sorted_tables):
            table.drop(conn, checkfirst=True)
        shadow.metadata.create_all(conn)
    return shadow


def settle(engine: sa.Engine, shadow: Tables) -> None:
    """Make the filled shadow tables durable and compact (on PostgreSQL SET LOGGED rewrites
    each table without the row versions the load left behind), and gather the planner's
    statistics, before anyone reads them."""
    with engine.begin() as conn:
        for table in shadow.metadata.sorted_tables:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" SET LOGGED')
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def switch(engine: sa.Engine, shadow: Tables, positions: list[dict[str, Any]]) -> None:
    """Put the shadow tables in the live tables' place, in one transaction."""
    with engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        grants = _grants(conn) if postgres else []
        drop_views(conn)
        for name in EVENT_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"ALTER TABLE {shadow.prefix}{name} RENAME TO {name}")
            if postgres:
                conn.exec_driver_sql(
                    f"ALTER TABLE {name} RENAME CONSTRAINT pk_{shadow.prefix}{name} TO pk_{name}"
                )
        for table in LIVE.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn)
        if positions:
            conn.execute(sa.insert(LIVE.position), positions)
        create_views(conn)
        for statement in grants:
            conn.exec_driver_sql(statement)


def _grants(conn: sa.Connection) -> list[str]:
    """GRANT statements giving back what other roles may do with the live tables and views
    (the BI role's SELECT), since the switch drops and creates them."""
    names = [*EVENT_TABLES, *VIEW_NAMES]
    rows = conn.execute(
        sa.text(
            "SELECT grantee, privilege_type, table_name FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND table_name = ANY(:names) "
            "AND grantee <> current_user"
        ),
        {"names": names},
    ).all()
    return [f'GRANT {privilege} ON {table} TO "{grantee}"' for grantee, privilege, table in rows]
