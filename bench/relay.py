"""Relay throughput and command → event latency.

1. A raw aiokafka producer publishing the envelopes of N recorded events (the baseline) vs.
   our relay draining the same N events from PostgreSQL into the same broker.
2. Command → event visible to a consumer (fetch_max_wait_ms 10) at a fixed 200 commands/s.

    .venv/bin/python bench/relay.py [--runs 3] [--events 200000]
"""

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from stdnum.cn import uscc as stdnum_uscc

from chassis.kafka.producing import ensure_topics
from contracts import topics
from contracts.rules import load_rulebook
from opportunity.adapters.leadership import PostgresLeadership
from opportunity.adapters.positions import metadata
from opportunity.adapters.relay import build_relay
from opportunity.application.app import OpportunityApp
from opportunity.domain.opportunity import Opportunity
from opportunity.metrics import Metrics
from opportunity.settings import Settings, eventsourcing_env, sqlalchemy_url
from oppstream.broker import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import TOKENS, Store, broker, opportunity_service, raw_publish  # noqa: E402
from loadgen import open_loop, request  # noqa: E402
from results import write_section  # noqa: E402

EVENTS_PER_OPPORTUNITY = 5
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def record(app: OpportunityApp, events: int) -> None:
    """`events` events: opportunities with a creation and four follow-ups each."""
    opportunities = events // EVENTS_PER_OPPORTUNITY
    for start in range(0, opportunities, 1000):
        batch = []
        for i in range(start, min(start + 1000, opportunities)):
            o = Opportunity(
                id=uuid4(),
                type="new",
                pipeline_id="new",
                stage="initial_contact",
                customer={
                    "uscc": f"9111{i:014d}",
                    "name": f"客户 {i}",
                    "tier": "KA",
                    "ownership": "SOE",
                    "industry": None,
                    "region": None,
                },
                owner_id="rep-1",
                team_id="east",
                title=None,
                amount=None,
                currency="CNY",
                expected_close_on=None,
                source=None,
                lead_id=None,
                renewal_of=None,
                at=T0,
                actor="rep-1",
            )
            for n in range(EVENTS_PER_OPPORTUNITY - 1):
                o.log_follow_up("call", f"call {n}", T0 + timedelta(hours=n + 1), "rep-1")
            batch.append(o)
        app.save(*batch)


def envelopes(app: OpportunityApp) -> list[tuple[bytes, bytes]]:
    from opportunity.adapters.translation import envelope_of
    from opportunity.application.stored_topics import OPPORTUNITY_TOPICS

    found: list[tuple[bytes, bytes]] = []
    position = 0
    while True:
        page = app.recorder.select_notifications(
            start=position, limit=10_000, topics=OPPORTUNITY_TOPICS, inclusive_of_start=False
        )
        if not page:
            return found
        for n in page:
            envelope = envelope_of(n)
            found.append((envelope["opportunity_id"].encode(), orjson.dumps(envelope)))
        position = page[-1].id


async def relay_drain(settings: Settings, app: OpportunityApp, total: int) -> float:
    engine = sa.create_engine(sqlalchemy_url(settings.eventstore_url))
    metadata.create_all(engine)
    relay = build_relay(
        settings,
        app,
        engine,
        PostgresLeadership(settings.eventstore_url, f"bench-{uuid4()}"),
        Metrics(),
    )
    await ensure_topics(settings)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        sent += await relay.relay_once()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return sent / elapsed


def measure_throughput(workdir: Path, events: int) -> tuple[float, float]:
    with Store("postgres", workdir) as url, broker() as bootstrap:
        settings = Settings(eventstore_url=url, kafka_bootstrap=bootstrap)
        app = OpportunityApp(load_rulebook(), env=eventsourcing_env(url))
        record(app, events)
        messages = envelopes(app)
        raw = asyncio.run(raw_publish(bootstrap, messages))
        ours = asyncio.run(relay_drain(settings, app, len(messages)))
        app.close()
        return raw, ours


async def visible_latency(bootstrap: str, port: int, rate: float, seconds: float) -> list[float]:
    """Latency from sending a create to its OpportunityCreated arriving at a consumer."""
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        topics.OPPORTUNITY_EVENTS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
        request_timeout_ms=40000,
        enable_auto_commit=False,
    )
    await consumer.start()
    await consumer.seek_to_end()
    stop, all_seen, finished_sending = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    envelope = orjson.loads(r.value)
                    if envelope["event_type"] == "OpportunityCreated":
                        seen.setdefault(envelope["payload"]["customer"]["uscc"], now)
            if sent and len(seen) >= len(sent) and finished_sending.is_set():
                all_seen.set()

    reader = asyncio.create_task(read())
    token = TOKENS["rep-1"]

    def make(i: int) -> bytes:
        body = f"9122{i:013d}"
        uscc = body + stdnum_uscc.calc_check_digit(body)
        sent[uscc] = time.perf_counter()
        customer = {"uscc": uscc, "name": "ACME", "tier": "SMB", "ownership": "PRIVATE"}
        return request("POST", "/opportunities", token, {"type": "new", "customer": customer})

    await open_loop("127.0.0.1", port, make, rate, seconds, 16)
    finished_sending.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), timeout=10)
    stop.set()
    await reader
    await consumer.stop()
    return sorted((seen[k] - sent[k]) * 1000 for k in sent if k in seen)


def measure_latency(workdir: Path) -> list[float]:
    port = free_port()
    with (
        Store("postgres", workdir) as url,
        broker() as bootstrap,
        opportunity_service(
            url, port, workdir, kafka_bootstrap=bootstrap, kafka_fetch_max_wait_ms="10"
        ),
    ):
        return asyncio.run(visible_latency(bootstrap, port, 200, 10))


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    raws, ours, p50s, p99s, counts = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            raw, relay = measure_throughput(Path(tmp), args.events)
            latencies = measure_latency(Path(tmp))
            raws.append(raw)
            ours.append(relay)
            p50s.append(pct(latencies, 50))
            p99s.append(pct(latencies, 99))
            counts.append(len(latencies))
            print(
                f"run {n + 1}: raw {raw:,.0f}/s relay {relay:,.0f}/s ({relay / raw:.2f}x); "
                f"visible p50 {p50s[-1]:.1f} ms p99 {p99s[-1]:.1f} ms over {len(latencies)}",
                flush=True,
            )
    raw, relay = statistics.median(raws), statistics.median(ours)
    body = "\n".join(
        [
            f"{args.events:,} recorded events (creations + follow-ups) in PostgreSQL, broker: "
            f"{'OPPSTREAM_KAFKA_BOOTSTRAP' if 'OPPSTREAM_KAFKA_BOOTSTRAP' in __import__('os').environ else 'embedded Tansu'}; "
            f"medians of {args.runs} runs.",
            "",
            "| figure | baseline | ours | ratio |",
            "|---|---|---|---|",
            f"| publish events/s | raw aiokafka producer {raw:,.0f} | relay (read PG → Kafka, position stored) {relay:,.0f} | {relay / raw:.2f}× (target ≥ 0.8×) |",
            f"| command → event visible at 200 commands/s, fetch_max_wait_ms 10 | | p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms | target p99 ≤ 50 ms |",
        ]
    )
    write_section("Relay", " ".join(["python bench/relay.py", *sys.argv[1:]]), body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
