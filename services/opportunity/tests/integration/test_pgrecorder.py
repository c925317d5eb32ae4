"""The one-round-trip PostgreSQL recorder keeps what eventsourcing's own recorder promises:
notification ids in commit order (each transaction's ids contiguous, even when many write at
once), all or nothing, and a conflict on a recorded version."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import RecordConflictError, StoredEvent

from contracts.rules import load_rulebook
from opportunity.adapters.pgrecorder import OrderedEventRecorder
from opportunity.application.app import OpportunityApp
from opportunity.settings import eventsourcing_env

WRITERS = 8
TRANSACTIONS = 40
EVENTS_PER_TRANSACTION = 5


@pytest.fixture
def recorder(postgres_url: str) -> Iterator[OrderedEventRecorder]:
    app = OpportunityApp(load_rulebook(), env=eventsourcing_env(postgres_url))
    try:
        assert isinstance(app.recorder, OrderedEventRecorder)
        yield app.recorder
    finally:
        app.close()


def events_of(originator_id: UUID, versions: range) -> list[StoredEvent]:
    return [StoredEvent(originator_id, v, "tests:Event", f"{v}".encode()) for v in versions]


def test_each_transaction_gets_contiguous_ids_while_many_write_at_once(
    recorder: OrderedEventRecorder,
) -> None:
    def write(_: int) -> tuple[UUID, list[int]]:
        originator = uuid4()
        ids = recorder.insert_events(events_of(originator, range(1, EVENTS_PER_TRANSACTION + 1)))
        assert ids is not None
        return originator, list(ids)

    with ThreadPoolExecutor(WRITERS) as pool:
        written = list(pool.map(write, range(TRANSACTIONS)))

    for _, ids in written:
        assert ids == list(range(ids[0], ids[0] + EVENTS_PER_TRANSACTION))
    first = min(ids[0] for _, ids in written)
    notifications = recorder.select_notifications(start=first, limit=10_000)
    by_id = {n.id: n for n in notifications}
    for originator, ids in written:
        assert [by_id[i].originator_id for i in ids] == [originator] * EVENTS_PER_TRANSACTION
        assert [by_id[i].originator_version for i in ids] == list(
            range(1, EVENTS_PER_TRANSACTION + 1)
        )
        assert by_id[ids[-1]].state == f"{EVENTS_PER_TRANSACTION}".encode()


def test_a_conflicting_version_records_nothing_of_its_transaction(
    recorder: OrderedEventRecorder,
) -> None:
    taken, fresh = uuid4(), uuid4()
    recorder.insert_events(events_of(taken, range(1, 3)))

    with pytest.raises(RecordConflictError):
        recorder.insert_events([*events_of(fresh, range(1, 3)), *events_of(taken, range(2, 3))])

    assert recorder.select_events(fresh) == []
    assert [e.originator_version for e in recorder.select_events(taken)] == [1, 2]


def test_nothing_to_record_records_nothing(recorder: OrderedEventRecorder) -> None:
    before = recorder.max_notification_id()

    recorder.insert_events([])

    assert recorder.max_notification_id() == before
