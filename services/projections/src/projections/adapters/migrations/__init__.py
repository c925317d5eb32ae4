"""Alembic migrations of the projections database, run at service start by `projections.adapters.migrate`."""
