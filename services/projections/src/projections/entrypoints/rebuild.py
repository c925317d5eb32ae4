"""Rebuild of the read model from the opportunity service's history, switched in at once.

It reads `GET /notifications` (adapters/feed.py) into fresh tables and switches them in, at
the end, in one transaction (adapters/shadow.py).

The live tables keep serving (and the live consumer keeps applying) during the rebuild. The
shadow tables (`rebuild_…`) are filled with the same code the consumer runs (the store), so
they equal what the consumer builds, row for row. The switch drops the live tables, renames
the shadow ones into place, builds the indexes and the views again, keeps the grants BI roles
had, and stores the Kafka positions the live tables had when the rebuild began: every event
before them was recorded before the rebuild read the history, so it is in the new tables;
every event after them is delivered again and applied once (a consumer that is further on
sees its stored position go back and reads again from there, see adapters/store.py).
"""

import contextlib
import gc
import time
from collections.abc import Iterator

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
from projections.adapters import migrate
from projections.adapters.database import create_engine
from projections.adapters.feed import Feed, FeedError
from projections.adapters.rows import write_pipeline_stages
from projections.adapters.shadow import create_shadow, live_positions, settle, switch
from projections.adapters.store import Store
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex
from projections.settings import Settings

PAGE = 10_000  # the most the feed gives per request

OK, FAILED, REFUSED = 0, 1, 2


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
            positions = live_positions(conn)
        shadow = create_shadow(engine)
        store = Store(
            engine,
            shadow,
            Projector(PipelineIndex(rules), settings.zone, [r.id for r in rules.deferral_reasons]),
        )
        with Feed(source_url, token, transport) as feed, _few_collections():
            total = feed.last_position()
            applied = _load(feed, store, page, total, console if progress else None)
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
        return REFUSED if exc.refused else FAILED
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


def _load(feed: Feed, store: Store, page: int, total: int | None, console: Console | None) -> int:
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
        for found in feed.pages(page):
            outcome = store.apply_events(found.events)
            applied += outcome.applied
            rate = applied / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=found.next_after, rate=f"{rate:,.0f}")
    return applied
