"""What the code makes of a golden event store: the aggregates it replays, the envelopes the
relay publishes, the read model the projections build from them.

The generator (write_golden.py) writes these, as JSON, with the code that recorded the store;
the test (integration/test_golden_store.py) asks the code of today for them again.
"""

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import orjson
import psycopg
import sqlalchemy as sa
from eventsourcing.application import project_aggregate
from eventsourcing.domain import Aggregate

from contracts.rules import load_rulebook
from opportunity.adapters.translation import envelope_of, won_message
from opportunity.application.app import DEFAULT_ZONE, OpportunityApp
from opportunity.application.views import state_of
from opportunity.domain.opportunity import Opportunity
from opportunity.settings import eventsourcing_env, sqlalchemy_url
from projections.adapters import migrate
from projections.adapters.database import create_engine
from projections.adapters.feed import read_listed
from projections.adapters.rows import write_pipeline_stages
from projections.adapters.schema import LIVE
from projections.adapters.store import Outcome, Store
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex

GOLDEN = Path(__file__).parent
SQLITE_STORE = "eventstore.sqlite"
POSTGRES_STORE = "eventstore.postgres.sql"
AGGREGATES = "aggregates.json"
BI_OPPORTUNITY = "bi_opportunity.json"
STORES = ("sqlite", "postgres")
# More than any golden store holds: every read takes the whole log at once.
EVERYTHING = 1_000_000


def releases() -> list[Path]:
    """The golden stores kept, one folder per release that recorded one, oldest first."""
    kept = [p for p in GOLDEN.iterdir() if (p / SQLITE_STORE).is_file()]
    return sorted(kept, key=lambda p: release_order(p.name))


def release_order(name: str) -> tuple[int, ...]:
    """A release's place among the others: `v0.10.0` comes after `v0.9.0`."""
    return tuple(int(part) for part in name.removeprefix("v").split("."))


def notifications_file(kind: str) -> str:
    """The envelopes of a store: per store, since each event's recorded_at is its own."""
    return f"notifications.{kind}.json"


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def write_json(path: Path, value: Any) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def plain(value: Any) -> Any:
    """JSON values as the golden files hold them: instants and dates in ISO 8601, amounts and
    ids as text, a dataclass's instance (a target's key and changes) as its fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


# -- putting a golden store where the code can open it ---------------------------------------


def sqlite_copy(release: Path, workdir: Path) -> str:
    """A copy of the release's SQLite store under `workdir` (the committed file stays as it
    was recorded); its store URL."""
    target = workdir / "golden" / "eventstore.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release / SQLITE_STORE, target)
    return f"sqlite:///{target}"


def load_postgres(release: Path, url: str) -> None:
    """Run the release's SQL (tables, functions, sequences and rows, as pg_dump wrote them)
    in the empty database at `url`."""
    script = (release / POSTGRES_STORE).read_text(encoding="utf-8")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(cast(Any, script))  # no parameters: several statements in one go


@contextmanager
def opened(store_url: str) -> Iterator[OpportunityApp]:
    """The application on the store, as a new process opens it: no aggregate in memory yet."""
    app = OpportunityApp(load_rulebook(), env=eventsourcing_env(store_url))
    try:
        yield app
    finally:
        app.close()


# -- what the application replays ---------------------------------------------------------------


def aggregate_ids(app: OpportunityApp) -> list[UUID]:
    """Every aggregate with a recorded event, in the order of its first one."""
    seen: dict[UUID, None] = {}
    for notification in app.recorder.select_notifications(start=None, limit=EVERYTHING):
        seen.setdefault(UUID(str(notification.originator_id)), None)
    return list(seen)


def describe(aggregate: Aggregate) -> dict[str, Any]:
    """An opportunity as the API shows it (without the commands the code allows today: they
    are not stored); another aggregate by its own attributes."""
    if isinstance(aggregate, Opportunity):
        state = state_of(aggregate)
        del state["allowed_commands"]
        return {"kind": "Opportunity", **plain(state)}
    attributes = {k: v for k, v in vars(aggregate).items() if not k.startswith("_")}
    return {"kind": type(aggregate).__name__, "version": aggregate.version, **plain(attributes)}


def replayed(app: OpportunityApp) -> dict[str, Any]:
    """Every aggregate, loaded as the application loads it (from its latest snapshot, if
    any), and the versions its snapshots were taken at."""
    found: dict[str, Any] = {}
    snapshots: dict[str, list[int]] = {}
    for aggregate_id in aggregate_ids(app):
        found[str(aggregate_id)] = describe(app.repository.get(aggregate_id))
        assert app.snapshots is not None
        taken = [s.originator_version for s in app.snapshots.get(aggregate_id)]
        if taken:
            snapshots[str(aggregate_id)] = taken
    return {"aggregates": found, "snapshots": snapshots}


def replayed_from_events(app: OpportunityApp, aggregate_id: UUID) -> dict[str, Any]:
    """The aggregate from its events alone, every snapshot ignored."""
    aggregate = project_aggregate(None, app.events.get(aggregate_id))
    assert aggregate is not None, f"no events of {aggregate_id}"
    return describe(aggregate)


# -- what the relay publishes --------------------------------------------------------------------


def feed(app: OpportunityApp) -> list[dict[str, Any]]:
    """The events the relay reads (opportunities' and customer records'), each with its
    position and its envelope."""
    return [
        {"position": n.id, "envelope": envelope_of(n)} for n in app.notifications(0, EVERYTHING)
    ]


def won_messages(app: OpportunityApp, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the relay also sends to `crm.opportunity.won`, one per OpportunityWon."""
    return [
        won_message(e, app.opportunity(UUID(e["opportunity_id"])))
        for e in (item["envelope"] for item in items)
        if e["event_type"] == "OpportunityWon"
    ]


# -- which topics the stored data names ----------------------------------------------------------


def stored_topics(app: OpportunityApp, store_url: str) -> set[str]:
    """Every topic the store names: of each stored event and snapshot, and the aggregate
    topics inside their state (a created event names its aggregate's class, a snapshot too).
    eventsourcing resolves each one on every replay."""
    found: set[str] = set()
    for event in app.recorder.select_notifications(start=None, limit=EVERYTHING):
        found.add(event.topic)
        found.update(_named(event.state))
    assert app.snapshots is not None
    table = app.snapshots.recorder.events_table_name  # type: ignore[attr-defined]
    engine = sa.create_engine(sqlalchemy_url(store_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT topic, state FROM {table}")).all()  # noqa: S608
    finally:
        engine.dispose()
    for topic, state in rows:
        found.add(topic)
        found.update(_named(bytes(state)))
    return found


def _named(state: bytes) -> set[str]:
    data = orjson.loads(state)
    return {data[k] for k in ("originator_topic", "topic") if isinstance(data.get(k), str)}


# -- what the projections build ------------------------------------------------------------------


@dataclass(frozen=True)
class Projected:
    outcome: Outcome
    bi_opportunity: list[dict[str, Any]]


def project(envelopes: list[dict[str, Any]], workdir: Path) -> Projected:
    """The envelopes applied, as a rebuild applies the feed, to a new projections database
    (SQLite under `workdir`); its `bi_opportunity` rows in id order."""
    path = workdir / "projections" / "projections.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    rules = load_rulebook()
    engine = create_engine(f"sqlite:///{path}", writer=True)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            write_pipeline_stages(conn, rules)
        store = Store(engine, LIVE, Projector(PipelineIndex(rules), DEFAULT_ZONE))
        outcome = store.apply_events([read_listed(e) for e in envelopes])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(LIVE.opportunity).order_by(LIVE.opportunity.c.id))
            found = [plain(dict(row)) for row in rows.mappings()]
    finally:
        engine.dispose()
    return Projected(outcome, found)


def checkpointed(source: Path, target: Path) -> None:
    """A compact copy of a SQLite store, its write-ahead log folded in: one file."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM INTO ?", (str(target),))
    conn.close()
