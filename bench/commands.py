"""Commands over HTTP: the naive FastAPI + eventsourcing create vs. our POST /opportunities and
/advance (group commit), 32 concurrent clients, on PostgreSQL (one worker process, and two:
OPPSTREAM_WORKERS=2) and SQLite; and latency at a fixed 500 req/s. Writes its section of
bench/RESULTS.md.

    .venv/bin/python bench/commands.py [--runs 3] [--requests 4000] [--stores postgres,sqlite]
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from stdnum.cn import uscc as stdnum_uscc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import TOKENS, Store, naive_service, opportunity_service  # noqa: E402
from loadgen import Run, closed_loop, open_loop, request  # noqa: E402
from results import write_section  # noqa: E402

from oppstream.broker import free_port  # noqa: E402

STAGES = ("requirements", "proposal", "negotiation", "signing")
CONCURRENCY = 32
WORKERS = (1, 2)  # worker processes of our service on PostgreSQL


def uscc_for(i: int, salt: str) -> str:
    body = f"9111{salt}{i:09d}"
    return body + stdnum_uscc.calc_check_digit(body)


def create_request(salt: str) -> Any:
    token = TOKENS["rep-1"]

    def make(i: int) -> bytes:
        customer = {
            "uscc": uscc_for(i, salt),
            "name": f"客户 {i}",
            "tier": "KA",
            "ownership": "SOE",
        }
        return request("POST", "/opportunities", token, {"type": "new", "customer": customer})

    return make


def measure_naive(kind: str, workdir: Path, requests: int) -> Run:
    port = free_port()
    with Store(kind, workdir) as url, naive_service(url, port, workdir):
        asyncio.run(closed_loop("127.0.0.1", port, create_request("0001"), 200, CONCURRENCY))
        return asyncio.run(
            closed_loop("127.0.0.1", port, create_request("0002"), requests, CONCURRENCY)
        )


def measure_ours(kind: str, workdir: Path, requests: int, workers: int) -> dict[str, Run]:
    port = free_port()
    settings = {"workers": str(workers)}
    with Store(kind, workdir) as url, opportunity_service(url, port, workdir, **settings):
        asyncio.run(closed_loop("127.0.0.1", port, create_request("0001"), 200, CONCURRENCY))
        creates = asyncio.run(
            closed_loop("127.0.0.1", port, create_request("0002"), requests, CONCURRENCY, keep=True)
        )
        ids = [json.loads(body)["id"] for body in creates.bodies]
        token = TOKENS["rep-1"]

        def advance(i: int) -> bytes:
            stage = STAGES[i // len(ids)]
            return request(
                "POST", f"/opportunities/{ids[i % len(ids)]}/advance", token, {"to_stage": stage}
            )

        advances = asyncio.run(closed_loop("127.0.0.1", port, advance, len(ids) * 2, CONCURRENCY))
        latency = asyncio.run(
            open_loop("127.0.0.1", port, create_request("0003"), 500, 8, CONCURRENCY)
        )
        return {"create": creates, "advance": advances, "latency_500": latency}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--stores", default="postgres,sqlite")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for kind in args.stores.split(","):
            setups = WORKERS if kind == "postgres" else (1,)
            naive: list[Run] = []
            ours: dict[int, list[dict[str, Run]]] = {w: [] for w in setups}
            for n in range(args.runs):
                naive.append(measure_naive(kind, workdir, args.requests))
                print(f"{kind} run {n + 1}: naive {naive[-1].summary()}", flush=True)
                for workers in setups:
                    ours[workers].append(measure_ours(kind, workdir, args.requests, workers))
                    for name, run in ours[workers][-1].items():
                        print(f"{kind} ×{workers} run {n + 1}: {name} {run.summary()}", flush=True)
            naive_rate = median([r.rate for r in naive])
            for workers, runs in ours.items():
                create_rate = median([r["create"].rate for r in runs])
                advance_rate = median([r["advance"].rate for r in runs])
                p50 = median([r["latency_500"].percentile(50) for r in runs])
                p99 = median([r["latency_500"].percentile(99) for r in runs])
                statuses = runs[-1]["create"].statuses | runs[-1]["advance"].statuses
                rows.append(
                    f"| {kind} | {workers} | {naive_rate:,.0f} "
                    f"| {create_rate:,.0f} ({create_rate / naive_rate:.2f}×) "
                    f"| {advance_rate:,.0f} ({advance_rate / naive_rate:.2f}×) "
                    f"| {p50:.1f} / {p99:.1f} | {dict(statuses)} |"
                )
    table = "\n".join(
        [
            f"{CONCURRENCY} concurrent keep-alive clients, {args.requests} creates then "
            f"{2 * args.requests} advances per run; medians of {args.runs} runs. Latency: "
            "creates sent on a fixed schedule of 500 req/s for 8 s. Naive: FastAPI + "
            "eventsourcing as it ships (its own recorder), one create per transaction.",
            "",
            "| store | workers | naive create/s (baseline) | our create/s (ratio) "
            "| our advance/s (ratio) | p50 / p99 ms at 500 req/s | statuses (last run) |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section(
        "Commands over HTTP", " ".join(["python bench/commands.py", *sys.argv[1:]]), table
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
