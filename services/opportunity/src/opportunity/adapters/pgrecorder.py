"""The PostgreSQL persistence of the opportunity service: the event recorder, which writes one
transaction's events in ONE round trip, and the snapshot recorder.

eventsourcing's own recorder locks the events table, inserts and commits in several round
trips, holding the table lock (which keeps notification order = commit order) while this
process goes back and forth — and, with several writer threads or processes, while a writer
waits for Python's GIL. Here a server-side function locks, notifies, inserts and returns the
notification ids; the lock is held for the server's time and the commit only. Parameters go
as four binary arrays (no composite-type text encoding), through a prepared statement.

A store that goes away is heard of within seconds (SPEC §7): a statement is tried again for
RETRY_SECONDS, not ten times a pool wait, and the pool tries to reconnect for
RECONNECT_SECONDS at a time, so that it finds a store that is back soon."""

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier

from opportunity.adapters.catch_up import NewerEvents

P = ParamSpec("P")
R = TypeVar("R")

# A lost connection (the store restarted) fails at once and the next attempt takes another
# from the pool, which may have lost all of its own; a store that is down fails an attempt
# only after the pool's wait (POSTGRES_CONNECT_TIMEOUT), and nothing is gained by waiting
# again.
ATTEMPTS = 10
RETRY_PAUSE = 0.2
RETRY_SECONDS = 2.0
# psycopg_pool tries to reconnect after 1 s, 2 s, 4 s… for 5 min by default: a store back
# after a minute would wait for the next attempt half a minute more. A pool that gives up
# sooner tries again at the next request that finds it empty.
RECONNECT_SECONDS = 5.0


def retry_briefly(
    operation: Callable[P, R],
    *,
    attempts: int = ATTEMPTS,
    pause: float = RETRY_PAUSE,
    seconds: float = RETRY_SECONDS,
) -> Callable[P, R]:
    """`operation`, tried again `pause` s after a connection error while fewer than
    `attempts` were made and `seconds` have not passed; then its error goes to the caller."""

    @functools.wraps(operation)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        deadline = time.monotonic() + seconds
        attempt = 1
        while True:
            try:
                return operation(*args, **kwargs)
            except (InterfaceError, OperationalError):
                if attempt >= attempts or time.monotonic() + pause > deadline:
                    raise
            attempt += 1
            time.sleep(pause)

    return retrying


def briefly(method: Callable[..., R]) -> Callable[..., R]:
    """A method of eventsourcing's recorder with `retry_briefly` instead of its own retries
    (ten attempts, each of which may wait the whole pool wait)."""
    return retry_briefly(inspect.unwrap(method))


_recorder_insert_events = inspect.unwrap(PostgresApplicationRecorder.insert_events)


class OrderedEventRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        function = Identifier(datastore.schema, f"oppstream_record_{events_table_name}")
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {function}("
                "ids uuid[], versions bigint[], topics text[], states bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "BEGIN "
                "SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "LOCK TABLE {table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY INSERT INTO {table} "
                "(originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(
                function=function,
                lock_timeout=datastore.lock_timeout,
                table=Identifier(datastore.schema, events_table_name),
                channel=Identifier(self.channel_name),
            )
        )
        self.record_statement = SQL(
            "SELECT id FROM {function}(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) AS id"
        ).format(function=function)
        self._newer_events = NewerEvents(self)

    def select_newer_events(
        self, ids: Sequence[UUID], versions: Sequence[int]
    ) -> dict[UUID, list[StoredEvent]]:
        """For each aggregate, the events after its version (application.unit_of_work)."""
        return self._newer_events(ids, versions)

    select_events = briefly(PostgresApplicationRecorder.select_events)
    select_notifications = briefly(PostgresApplicationRecorder.select_notifications)
    max_notification_id = briefly(PostgresApplicationRecorder.max_notification_id)

    @retry_briefly
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Lock, insert and commit in one statement (autocommit: its own transaction)."""
        if kwargs.get("tracking") is not None or not stored_events:
            return cast(
                Sequence[int] | None, _recorder_insert_events(self, stored_events, **kwargs)
            )
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self.record_statement, columns, prepare=True)
            return [int(row["id"]) for row in cursor.fetchall()]


class SnapshotRecorder(PostgresAggregateRecorder):
    """eventsourcing's recorder of snapshots, with `retry_briefly` (a command reads the
    snapshot of an aggregate it has not cached before its events)."""

    select_events = briefly(PostgresAggregateRecorder.select_events)
    insert_events = briefly(PostgresAggregateRecorder.insert_events)


class Factory(PostgresFactory):
    """eventsourcing's PostgreSQL persistence with the snapshot recorder above and a pool
    that reconnects for RECONNECT_SECONDS at a time; the event recorder is the one
    APPLICATION_RECORDER_TOPIC names."""

    aggregate_recorder_class = SnapshotRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.datastore.pool.reconnect_timeout = RECONNECT_SECONDS
