"""Alembic migrations of the reminders database (applied by `Store.migrate` at start)."""
