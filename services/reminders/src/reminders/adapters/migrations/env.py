"""Alembic environment: migrations run on the connection `Store.migrate` hands over, inside
its transaction (and, on PostgreSQL, under its advisory lock)."""

from alembic import context

from reminders.adapters.schema import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
