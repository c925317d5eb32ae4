"""What a failed write says about its records: the consumers of the projections and reminders
services set a record aside when it, not the database, is the cause."""

import psycopg
import sqlalchemy as sa


def refused(error: BaseException) -> bool:
    """Whether applying failed on what a record holds (a value the database cannot store, or
    one the consumer cannot compute with) rather than on the database being down, busy or in
    a race with another consumer: the same record fails the same way every time."""
    if isinstance(error, sa.exc.DBAPIError):
        return isinstance(error, sa.exc.DataError)
    if isinstance(error, sa.exc.StatementError):  # raised while binding a value
        return error.orig is not None and refused(error.orig)
    return isinstance(error, psycopg.DataError | ValueError | ArithmeticError | TypeError)


def why(error: BaseException) -> str:
    """The error without the SQL and parameters SQLAlchemy adds (a parameter may be 1 MB)."""
    cause = error.orig if isinstance(error, sa.exc.StatementError) else error
    return f"{type(cause).__name__}: {cause}"[:1000]
