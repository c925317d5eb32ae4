"""What a failed store operation says: whether a record is the cause (the consumers of the
projections and reminders services set it aside), or the store cannot be reached now (the
services answer 503 and everything is tried again later)."""

import psycopg
import sqlalchemy as sa

# Servers that are there but take no work now: shutting down (admin or crash shutdown),
# starting up or recovering, out of connection slots, or a standby that a failover left
# read-only. Whatever the server says about a statement (a timeout, a lock, a full disk, a
# constraint) is not among them: trying the same again later does not help by itself.
SERVER_AWAY = frozenset({"57P01", "57P02", "57P03", "53300", "25006"})


def refused(error: BaseException) -> bool:
    """Whether applying failed on what a record holds (a value the database cannot store, or
    one the consumer cannot compute with) rather than on the database being down, busy or in
    a race with another consumer: the same record fails the same way every time."""
    if isinstance(error, sa.exc.DBAPIError):
        return isinstance(error, sa.exc.DataError)
    if isinstance(error, sa.exc.StatementError):  # raised while binding a value
        return error.orig is not None and refused(error.orig)
    return isinstance(error, psycopg.DataError | ValueError | ArithmeticError | TypeError)


def unavailable(error: BaseException | None) -> bool:
    """Whether a PostgreSQL store could not be reached: no connection could be had (refused,
    timed out, none free in the pool in time) or the one in use was lost, a connection
    exception (SQLSTATE class 08), or a server in SERVER_AWAY. SQLAlchemy's DBAPIError is
    judged by the driver's error it wraps; any other error by its cause (`raise … from`, as
    eventsourcing's PersistenceError wraps psycopg's).

    Never SQLite: its store is a local file, so "unable to open" is a configuration error and
    "database is locked" a lock its busy timeout already waited for; neither passes if the
    client tries again in a few seconds."""
    if error is None:
        return False
    if isinstance(error, sa.exc.TimeoutError):  # every pooled connection taken, none came back
        return True
    if isinstance(error, sa.exc.DBAPIError):
        # SQLAlchemy invalidates a connection it found closed or broken: lost, whatever the error.
        lost = error.connection_invalidated and isinstance(error.orig, psycopg.Error)
        return lost or unavailable(error.orig)
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state is None:  # raised by the client: the connection failed, broke or never came
            return isinstance(error, psycopg.OperationalError)
        return state.startswith("08") or state in SERVER_AWAY
    return unavailable(error.__cause__)


def why(error: BaseException) -> str:
    """The error without the SQL and parameters SQLAlchemy adds (a parameter may be 1 MB)."""
    cause = error.orig if isinstance(error, sa.exc.StatementError) else error
    return f"{type(cause).__name__}: {cause}"[:1000]
