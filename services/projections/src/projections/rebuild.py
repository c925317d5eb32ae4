"""Rebuild of the read model from the opportunity service's history, switched in at once.

It reads `GET /notifications` into fresh tables and switches them in, at the end, in one
transaction.

The live tables keep serving (and the live consumer keeps applying) during the rebuild. The
shadow tables (`rebuild_…`) are filled with the same code the consumer runs (store.py), so
they equal what the consumer builds, row for row. The switch drops the live tables, renames
the shadow ones into place, builds the indexes and the views again, keeps the grants BI roles
had, and stores the Kafka positions the live tables had when the rebuild began: every event
before them was recorded before the rebuild read the history, so it is in the new tables;
every event after them is delivered again and applied once (a consumer that is further on
sees its stored position go back and reads again from there, see store.py).
"""

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from contracts.rules import RulebookError, load_rulebook
from projections import migrate
from projections.database import create_engine
from projections.envelopes import Event, NotAnEnvelope, from_json
from projections.pipelines import PipelineIndex
from projections.projection import Projector
from projections.schema import EVENT_TABLES, LIVE, Tables, build_tables
from projections.settings import Settings
from projections.store import Store, write_pipeline_stages
from projections.views import VIEW_NAMES, create_views, drop_views

log = logging.getLogger(__name__)

SHADOW_PREFIX = "rebuild_"
PAGE = 10_000  # the most the feed gives per request

OK, FAILED, REFUSED = 0, 1, 2


class FeedError(Exception):
    """The feed answered with an error or not at all."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_after: int


def run(
    source_url: str,
    token: str,
    settings: Settings | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    page: int = PAGE,
    progress: bool = True,
) -> int:
    """Rebuild the read model of `settings` from the feed at `source_url` (a service or admin
    token); 0 when switched in, 1 on failure (the live tables untouched), 2 when the feed
    refuses the token or the configuration is bad."""
    console = Console(stderr=True)
    try:
        settings = settings or Settings()
        rules = load_rulebook(settings.rules_file)
    except ValidationError as exc:
        problems = "; ".join(
            f"OPPSTREAM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        console.print(f"oppstream projections rebuild: bad configuration: {problems}")
        return REFUSED
    except RulebookError as exc:
        console.print(f"oppstream projections rebuild: {exc}")
        return REFUSED
    engine = create_engine(settings.projections_db_url, writer=True)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            write_pipeline_stages(conn, rules)
            positions = _positions(conn, LIVE)
        # Unlogged while filled: no WAL for rows nobody reads yet (made logged, and compact,
        # before the switch).
        shadow = build_tables(
            SHADOW_PREFIX, with_indexes=False, unlogged=engine.dialect.name == "postgresql"
        )
        with engine.begin() as conn:
            for table in reversed(shadow.metadata.sorted_tables):
                table.drop(conn, checkfirst=True)
            shadow.metadata.create_all(conn)
        store = Store(engine, shadow, Projector(PipelineIndex(rules), settings.zone))
        with (
            httpx.Client(
                base_url=source_url.rstrip("/"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=120.0,
                transport=transport,
            ) as client,
            _few_collections(),
        ):
            total = _last_position(client)
            applied = _load(client, store, page, total, console if progress else None)
        started = time.perf_counter()
        settle(engine, shadow)
        switch(engine, shadow, positions)
        console.print(
            f"rebuilt the read model from {applied:,} events; switched in "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return OK
    except FeedError as exc:
        console.print(f"oppstream projections rebuild: {exc}")
        return exc.code
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        console.print(f"oppstream projections rebuild: {type(exc).__name__}: {exc}")
        return FAILED
    finally:
        engine.dispose()


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """The cyclic garbage collector less often while loading (see main.py's lifespan)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# -- reading the feed ----------------------------------------------------------------------


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    try:
        answer = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise FeedError(f"the feed at {client.base_url} does not answer: {exc}") from exc
    if answer.status_code in (401, 403):
        raise FeedError(
            f"the feed refused the token ({answer.status_code}): a service or admin token is needed",
            REFUSED,
        )
    if answer.status_code != 200:
        raise FeedError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    body: dict[str, Any] = answer.json()
    return body


def _last_position(client: httpx.Client) -> int | None:
    """How long the history is, for the progress bar (None if the service does not say)."""
    try:
        answer = client.get("/readyz")
        found = answer.json().get("last_position")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return int(found) if isinstance(found, int) else None


def _pages(client: httpx.Client, page: int) -> Iterator[Page]:
    after = 0
    while True:
        body = _get(client, "/notifications", after=after, limit=page)
        items = body.get("items") or []
        if not items:
            return
        try:
            events = [from_json(item["envelope"]) for item in items]
        except (NotAnEnvelope, KeyError, TypeError) as exc:
            raise FeedError(f"the feed after position {after} is not envelopes: {exc}") from exc
        after = int(body.get("next_after") or items[-1]["position"])
        yield Page(events, after)


def _prefetched(client: httpx.Client, page: int) -> Iterator[Page]:
    """The pages, the next one fetched while the current one is applied."""
    ahead: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=2)

    def fetch() -> None:
        try:
            for found in _pages(client, page):
                ahead.put(found)
            ahead.put(None)
        except BaseException as exc:  # handed to the reader, which raises it
            ahead.put(exc)

    threading.Thread(target=fetch, name="rebuild-feed", daemon=True).start()
    while (item := ahead.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _load(
    client: httpx.Client, store: Store, page: int, total: int | None, console: Console | None
) -> int:
    applied = 0
    columns = (
        TextColumn("rebuilding"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]:>10} ev/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(quiet=True), disable=console is None) as bar:
        task = bar.add_task("events", total=total, rate="")
        started = time.perf_counter()
        for found in _prefetched(client, page):
            outcome = store.apply_events(found.events)
            applied += outcome.applied
            rate = applied / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=found.next_after, rate=f"{rate:,.0f}")
    return applied


# -- switching over ------------------------------------------------------------------------


def _positions(conn: sa.Connection, tables: Tables) -> list[dict[str, Any]]:
    if not sa.inspect(conn).has_table(tables.position.name):
        return []
    return [dict(row) for row in conn.execute(sa.select(tables.position)).mappings()]


def settle(engine: sa.Engine, shadow: Tables) -> None:
    """Make the filled shadow tables durable and compact (on PostgreSQL SET LOGGED rewrites
    each table without the row versions the load left behind), and gather the planner's
    statistics, before anyone reads them."""
    with engine.begin() as conn:
        for table in shadow.metadata.sorted_tables:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" SET LOGGED')
            conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def switch(engine: sa.Engine, shadow: Tables, positions: list[dict[str, Any]]) -> None:
    """Put the shadow tables in the live tables' place, in one transaction."""
    with engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        grants = _grants(conn) if postgres else []
        drop_views(conn)
        for name in EVENT_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"ALTER TABLE {shadow.prefix}{name} RENAME TO {name}")
            if postgres:
                conn.exec_driver_sql(
                    f"ALTER TABLE {name} RENAME CONSTRAINT pk_{shadow.prefix}{name} TO pk_{name}"
                )
        for table in LIVE.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn)
        if positions:
            conn.execute(sa.insert(LIVE.position), positions)
        create_views(conn)
        for statement in grants:
            conn.exec_driver_sql(statement)


def _grants(conn: sa.Connection) -> list[str]:
    """GRANT statements giving back what other roles may do with the live tables and views
    (the BI role's SELECT), since the switch drops and creates them."""
    names = [*EVENT_TABLES, *VIEW_NAMES]
    rows = conn.execute(
        sa.text(
            "SELECT grantee, privilege_type, table_name FROM information_schema.role_table_grants "
            "WHERE table_schema = current_schema() AND table_name = ANY(:names) "
            "AND grantee <> current_user"
        ),
        {"names": names},
    ).all()
    return [f'GRANT {privilege} ON {table} TO "{grantee}"' for grantee, privilege, table in rows]
