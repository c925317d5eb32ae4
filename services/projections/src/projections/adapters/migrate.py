"""Brings the projections database to the newest schema with the migrations in this package.

The service runs it at start (several copies may start at once).
"""

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

VERSION_TABLE = "projections_alembic_version"
# Copies of the service starting together on PostgreSQL migrate one after the other.
_LOCK_KEY = 0x6F70_7072_6F6A  # "opproj"


def alembic_config(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "projections.adapters:migrations")
    config.attributes["connection"] = conn
    return config


def upgrade(engine: sa.Engine) -> None:
    """Apply every migration not yet applied, in one transaction."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        command.upgrade(alembic_config(conn), "head")


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
        return conn.execute(query).scalar()
