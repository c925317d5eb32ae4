"""The PostgreSQL event recorder: one transaction's events written in ONE round trip.

eventsourcing's own recorder locks the events table, inserts and commits in several round
trips, holding the table lock (which keeps notification order = commit order) while this
process goes back and forth — and, with several writer threads or processes, while a writer
waits for Python's GIL. Here a server-side function locks, notifies, inserts and returns the
notification ids; the lock is held for the server's time and the commit only. Parameters go
as four binary arrays (no composite-type text encoding), through a prepared statement."""

from collections.abc import Sequence
from typing import Any, cast

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier


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

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Lock, insert and commit in one statement (autocommit: its own transaction)."""
        if kwargs.get("tracking") is not None or not stored_events:
            return cast(Sequence[int] | None, super().insert_events(stored_events, **kwargs))
        columns = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self.record_statement, columns, prepare=True)
            return [int(row["id"]) for row in cursor.fetchall()]
