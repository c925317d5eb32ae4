"""Which failures of a store say it cannot be reached (answered 503, tried again later) and
which are about the statement or the record (never taken for an outage)."""

import sqlite3

import psycopg
import psycopg.errors
import psycopg_pool
import pytest
import sqlalchemy as sa

from chassis.sql.errors import unavailable


def wrapped(
    orig: BaseException, kind: type[sa.exc.DBAPIError] = sa.exc.OperationalError
) -> sa.exc.DBAPIError:
    """The error as SQLAlchemy raises it around the driver's."""
    return kind("SELECT 1", {}, orig)


def raised_from(cause: BaseException) -> BaseException:
    """An error raised `from` the driver's, as eventsourcing's PersistenceError is."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise RuntimeError("the persistence library's own error") from exc
    except RuntimeError as wrapper:
        return wrapper


REFUSED = psycopg.OperationalError(
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: Connection refused'
)
LOST = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(REFUSED, id="connection refused"),
        pytest.param(LOST, id="connection lost"),
        pytest.param(psycopg_pool.PoolTimeout("couldn't get a connection"), id="pool wait over"),
        pytest.param(psycopg.errors.ConnectionFailure("no route"), id="08006"),
        pytest.param(psycopg.errors.AdminShutdown("terminating connection"), id="shutting down"),
        pytest.param(psycopg.errors.CrashShutdown("crash of another server process"), id="crash"),
        pytest.param(
            psycopg.errors.CannotConnectNow("the database system is starting up"), id="up"
        ),
        pytest.param(psycopg.errors.TooManyConnections("too many clients"), id="no slot"),
        pytest.param(psycopg.errors.ReadOnlySqlTransaction("read-only"), id="standby"),
        pytest.param(wrapped(REFUSED), id="SQLAlchemy around refused"),
        pytest.param(wrapped(psycopg.errors.AdminShutdown("bye")), id="SQLAlchemy around 57P01"),
        pytest.param(
            sa.exc.TimeoutError("QueuePool limit reached"), id="SQLAlchemy pool wait over"
        ),
        pytest.param(raised_from(REFUSED), id="a wrapper whose cause is refused"),
    ],
)
def test_a_store_that_cannot_be_reached_is_unavailable(error: BaseException) -> None:
    assert unavailable(error)


def test_a_connection_sqlalchemy_found_broken_is_unavailable() -> None:
    error = wrapped(psycopg.errors.InternalError_("unexpected"), sa.exc.InternalError)
    assert not unavailable(error)
    error.connection_invalidated = True
    assert unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(psycopg.errors.QueryCanceled("statement timeout"), id="statement timeout"),
        pytest.param(psycopg.errors.LockNotAvailable("lock timeout"), id="lock timeout"),
        pytest.param(psycopg.errors.DiskFull("no space left"), id="disk full"),
        pytest.param(psycopg.errors.UniqueViolation("duplicate key"), id="constraint"),
        pytest.param(psycopg.errors.UndefinedTable("no such table"), id="schema"),
        pytest.param(psycopg.DataError("invalid byte sequence"), id="data"),
        pytest.param(psycopg.InterfaceError("the cursor is closed"), id="misuse"),
        pytest.param(
            wrapped(psycopg.errors.QueryCanceled("timeout")), id="SQLAlchemy around 57014"
        ),
        pytest.param(
            wrapped(sqlite3.OperationalError("unable to open database file")), id="sqlite unable"
        ),
        pytest.param(wrapped(sqlite3.OperationalError("database is locked")), id="sqlite locked"),
        pytest.param(raised_from(sqlite3.OperationalError("database is locked")), id="via sqlite"),
        pytest.param(sa.exc.InvalidRequestError("no such column"), id="SQLAlchemy misuse"),
        pytest.param(ValueError("naive datetime"), id="a value"),
        pytest.param(None, id="nothing"),
    ],
)
def test_a_failure_of_the_statement_or_of_sqlite_is_no_outage(error: BaseException | None) -> None:
    assert not unavailable(error)


def test_sqlite_connection_sqlalchemy_found_closed_is_no_outage() -> None:
    error = wrapped(sqlite3.ProgrammingError("Cannot operate on a closed database."))
    error.connection_invalidated = True
    assert not unavailable(error)
