"""The events recorded after given versions of given aggregates, in one PostgreSQL query: how
a batch brings its cached aggregates up to date before it runs."""

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Composed, Identifier


def newer_events_query(events_table: str) -> Composed:
    """The events after given versions of given aggregates. LATERAL: one primary-key lookup
    per aggregate, whatever the size of the table (a plain join lets the planner scan the
    whole table once it estimates many rows)."""
    return SQL(
        "SELECT e.* FROM unnest(%b::uuid[], %b::bigint[]) AS c(id, version) "
        "CROSS JOIN LATERAL (SELECT originator_id, originator_version, topic, state FROM {} "
        "WHERE originator_id = c.id AND originator_version > c.version "
        "ORDER BY originator_version) AS e"
    ).format(Identifier(events_table))


class NewerEvents:
    """Reads, for each (aggregate id, version), the events recorded after that version."""

    def __init__(self, recorder: PostgresAggregateRecorder) -> None:
        self._datastore = recorder.datastore
        self._query = newer_events_query(recorder.events_table_name)

    def __call__(
        self, ids: Sequence[UUID], versions: Sequence[int]
    ) -> dict[UUID, list[StoredEvent]]:
        with self._datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self._query, (list(ids), list(versions)), prepare=True)
            rows = cursor.fetchall()
        newer: dict[UUID, list[StoredEvent]] = {}
        for row in rows:
            newer.setdefault(row["originator_id"], []).append(
                StoredEvent(
                    row["originator_id"], row["originator_version"], row["topic"], row["state"]
                )
            )
        return newer
