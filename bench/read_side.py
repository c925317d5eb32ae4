"""The read side at growing sizes: the latency of every report, plain, `as_of` and by segment.

A PostgreSQL database of our own is filled through the projections store (the code the
consumer and the rebuild run) with the synthetic history, 8 events per opportunity, up to each
size in turn; at each size the service (`python -m projections`) answers every report case
`--requests` times in a row after 3 warm-ups.

    .venv/bin/python bench/read_side.py [--sizes 125000,250000,500000,1000000] [--requests 50]
        [--phase fill|measure|both] [--keep]

bench/projections_bench.py runs it for its growth table.
"""

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import ADMIN_URL, TOKENS  # noqa: E402
from processes import RssSampler, process, service_env, wait_ready  # noqa: E402
from synthetic_history import BLOCK, EVENTS_PER_OPPORTUNITY, T0, envelope  # noqa: E402

from contracts.rules import load_rulebook  # noqa: E402
from oppstream.broker import free_port  # noqa: E402
from projections.adapters import migrate  # noqa: E402
from projections.adapters.database import create_engine  # noqa: E402
from projections.adapters.feed import read_listed  # noqa: E402
from projections.adapters.schema import LIVE  # noqa: E402
from projections.adapters.store import Store  # noqa: E402
from projections.domain.projection import Projector  # noqa: E402
from projections.domain.stage_index import PipelineIndex  # noqa: E402
from projections.settings import Settings  # noqa: E402

PAGE = 10_000


def cases(opportunities: int) -> list[tuple[str, str]]:
    """(name, path) of each report case; `as_of` in the middle of the history, mid-day."""
    days = max(1, opportunities // BLOCK)
    as_of = quote((T0 + timedelta(days=days // 2, hours=7, minutes=13)).isoformat())
    found = []
    for report in ("funnel", "dwell", "win-rates", "forecast"):
        found += [
            (report, f"/{report}"),
            (f"{report} as_of", f"/{report}?as_of={as_of}"),
            (f"{report} tier=KA", f"/{report}?tier=KA"),
            (f"{report} tier=KA as_of", f"/{report}?tier=KA&as_of={as_of}"),
        ]
    found += [
        ("attainment", "/attainment?period=2025"),
        ("attainment as_of", f"/attainment?period=2025&as_of={as_of}"),
    ]
    return found


def fill(engine_url: str, start: int, end: int) -> float:
    """Apply the synthetic history's events (start, end] through the store; seconds taken."""
    settings = Settings(projections_db_url=engine_url)
    rules = load_rulebook(settings.rules_file)
    engine = create_engine(engine_url, writer=True)
    migrate.upgrade(engine)
    store = Store(
        engine,
        LIVE,
        Projector(PipelineIndex(rules), settings.zone, [r.id for r in rules.deferral_reasons]),
    )
    started = time.perf_counter()
    for after in range(start, end, PAGE):
        page = [read_listed(envelope(p)) for p in range(after + 1, min(after + PAGE, end) + 1)]
        store.apply_events(page)
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return elapsed


def measure(
    db_url: str, workdir: Path, opportunities: int, requests: int, rounds: int = 3
) -> tuple[dict[str, tuple[float, float]], float]:
    """Each report case's p50 and p95 in ms (medians over `rounds` rounds of `requests`), and
    the service's peak RSS in MB."""
    port = free_port()
    env = service_env(workdir, projections_db_url=db_url)
    argv = [sys.executable, "-m", "projections", "--port", str(port)]
    found: dict[str, list[tuple[float, float]]] = {}
    with process(argv, env, workdir) as proc:
        rss = RssSampler(proc.pid)
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        for _ in range(rounds):
            for name, path in cases(opportunities):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{path}",
                    headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
                )
                timings = []
                for n in range(requests + 3):
                    started = time.perf_counter()
                    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
                        orjson.loads(answer.read())
                    if n >= 3:  # the first ones warm the caches
                        timings.append((time.perf_counter() - started) * 1000)
                found.setdefault(name, []).append((pct(timings, 50), pct(timings, 95)))
        peak = rss.stop()
    medians = {
        name: (statistics.median(p[0] for p in v), statistics.median(p[1] for p in v))
        for name, v in found.items()
    }
    for name, (p50, p95) in medians.items():
        print(f"  {name:<24} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms", flush=True)
    return medians, peak


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def growth(
    sizes: list[int],
    requests: int,
    rounds: int,
    database: str,
    workdir: Path,
    keep: bool = False,
    phases: tuple[str, ...] = ("fill", "measure"),
) -> list[tuple[int, dict[str, tuple[float, float]]]]:
    """Fill a database of our own size by size, copying it at each size (`<database>_<size>`),
    then measure every report case on each copy. The phases may run apart (`phases`): fill on a
    busy machine, measure on a quiet one. `keep`: leave the copies (bench/read_side_explain.py
    reads the last)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        if "fill" in phases:
            fill_sizes(admin, sizes, database)
        found = []
        try:
            if "measure" in phases:
                for size in sizes:
                    print(f"{size:,} opportunities:", flush=True)
                    url = db_url(f"{database}_{size}")
                    found.append((size, measure(url, workdir, size, requests, rounds)[0]))
        finally:
            if not keep:
                for size in sizes:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}_{size}" WITH (FORCE)')
    return found


def db_url(database: str) -> str:
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{database}"


def fill_sizes(admin: psycopg.Connection[Any], sizes: list[int], database: str) -> None:
    """`database` filled up to each size in turn, copied at each as `<database>_<size>`."""
    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{database}"')
    done = 0
    try:
        for size in sizes:
            events = size * EVENTS_PER_OPPORTUNITY
            seconds = fill(db_url(database), done, events)
            print(f"{size:,} opportunities: filled {events - done:,} events in {seconds:.0f} s")
            done = events
            admin.execute(f'DROP DATABASE IF EXISTS "{database}_{size}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{database}_{size}" TEMPLATE "{database}"')
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def growth_table(found: list[tuple[int, dict[str, tuple[float, float]]]]) -> list[str]:
    """Markdown: one row per report case, p95 (p50) in ms per size."""
    sizes = [size for size, _ in found]
    lines = [
        "| report | " + " | ".join(f"{s:,}" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name in found[0][1]:
        cells = [f"{t[name][1]:.1f} ({t[name][0]:.1f})" for _, t in found]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    worst = [max(p95 for _, p95 in t.values()) for _, t in found]
    lines.append("| worst p95 | " + " | ".join(f"**{w:.1f}**" for w in worst) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="125000,250000,500000,1000000")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="bench_readside")
    parser.add_argument("--keep", action="store_true", help="keep the databases at the end")
    parser.add_argument(
        "--phase",
        choices=("fill", "measure", "both"),
        default="both",
        help="fill the copies only (kept), or measure copies an earlier run filled",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    phases = ("fill", "measure") if args.phase == "both" else (args.phase,)
    with tempfile.TemporaryDirectory() as scratch:
        found = growth(
            sizes,
            args.requests,
            args.rounds,
            args.database,
            Path(scratch),
            keep=args.keep or args.phase == "fill",
            phases=phases,
        )
    if found:
        print("\n".join(growth_table(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
