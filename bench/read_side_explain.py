"""`EXPLAIN (ANALYZE, BUFFERS)` of every statement each report runs, over a database filled by
bench/read_side.py, written as markdown (docs/operations/read-side-at-scale.md holds one at
1,000,000 opportunities).

    .venv/bin/python bench/read_side_explain.py DB_URL OPPORTUNITIES OUT.md
"""

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_history import BLOCK, T0  # noqa: E402

from contracts.rules import load_rulebook  # noqa: E402
from contracts.targets import parse_period  # noqa: E402
from projections.adapters.database import create_engine  # noqa: E402
from projections.adapters.readmodel import SqlReadModel  # noqa: E402
from projections.adapters.replay import slot_statements  # noqa: E402
from projections.adapters.schema import LIVE  # noqa: E402
from projections.application.plans import PlanReports, Viewer  # noqa: E402
from projections.application.read_model import Query  # noqa: E402
from projections.application.reports import Reports  # noqa: E402
from projections.domain.tallies import slot_of  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")


def main() -> int:
    url, opportunities, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    engine = create_engine(url)
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _seen(
        _conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, many: bool
    ) -> None:
        if not many and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    rules = load_rulebook()
    model = SqlReadModel(engine, ZONE)
    reports = Reports(model, rules, ZONE, "CNY")
    plans = PlanReports(model, rules, ZONE, "CNY", [])
    days = max(1, opportunities // BLOCK)
    as_of = T0 + timedelta(days=days // 2, hours=7, minutes=13)
    now = datetime.now(UTC)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("funnel", lambda: reports.funnel(Query(), now)),
        ("funnel as_of", lambda: reports.funnel(Query(as_of=as_of), now)),
        ("funnel tier=KA", lambda: reports.funnel(Query(tier="KA"), now)),
        ("dwell as_of", lambda: reports.dwell(Query(as_of=as_of), now)),
        ("win-rates tier=KA as_of", lambda: reports.win_rates(Query(tier="KA", as_of=as_of), now)),
        ("forecast as_of", lambda: reports.forecast(Query(as_of=as_of), now)),
        (
            "attainment as_of",
            lambda: plans.attainment(parse_period("2025"), now, Viewer(), as_of=as_of),
        ),
    ]
    lines = [
        "# The read side at scale: the reports' query plans",
        "",
        "What each report asks PostgreSQL, and how PostgreSQL answers, over the database of "
        "`bench/read_side.py` (the synthetic history, 8 events per opportunity, filled through "
        "the store). The reports sum the tallies and read from the tables only the "
        "opportunities with an event in the `as_of` five-minute slot up to `as_of` (the last "
        "two statements of a report as of an instant, which it runs on the driver's cursor) "
        "([0046](../decisions/0046-tallies-for-the-read-side-at-scale.md)). Written by "
        f"`python bench/read_side_explain.py DB_URL {opportunities} "
        "docs/operations/read-side-at-scale.md`.",
        "",
        f"Database: {opportunities:,} opportunities, {opportunities * 8:,} events; `as_of` = "
        f"{as_of.isoformat()} (mid-history, {as_of.astimezone(ZONE):%H:%M} in Shanghai). "
        "Each report runs once to warm "
        "the caches, then again with its statements recorded; each statement is then explained "
        "(ANALYZE runs it once more).",
        "",
    ]
    for name, run in cases:
        run()
        statements.clear()
        started = time.perf_counter()
        run()
        took = (time.perf_counter() - started) * 1000
        with engine.connect() as conn:
            if "as_of" in name:  # the slot's rows, read on the driver's cursor
                slot = {"slot": slot_of(as_of, ZONE), "as_of": as_of}
                statements += [(sql, slot) for sql in slot_statements(conn, LIVE)]
            lines += [f"## `{name}` ({len(statements)} statements, {took:.1f} ms in all)", ""]
            raw = conn.connection.driver_connection
            assert raw is not None  # noqa: S101 - an open connection has one
            with raw.cursor() as cursor:  # as a report reads (adapters/tallied.py `plan`)
                cursor.execute("SET max_parallel_workers_per_gather = 0")
            for statement, params in statements:
                with raw.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                first = " ".join(statement.split())[:160]
                lines += [f"`{first}…`", "", "```", *plan, "```", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
