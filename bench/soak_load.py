"""The soak's sales team: a steady, realistic mix of commands over HTTP (reps working their
deals, managers reassigning, deals won, lost and voided) and qualified leads over Kafka.

Every command answered 2xx goes into the client log with the version it answered, so the
soak can check afterwards that each one is in the event store."""

import asyncio
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from launch import TOKENS
from loadgen import exchange, request
from stdnum.cn import uscc as stdnum_uscc

from contracts import topics

ACTIVE = frozenset({"open", "paused", "deferred", "pooled"})
TEAMS = {"east": ("rep-1", "rep-2"), "west": ("rep-3",)}
MANAGERS = {"east": "manager-east", "west": "manager-west"}


@dataclass
class Deal:
    id: str
    version: int
    status: str
    stage: str
    pipeline_id: str
    owner_id: str | None
    team_id: str
    uscc: str
    busy: bool = False

    def update(self, state: dict[str, Any]) -> None:
        self.version, self.status, self.stage = state["version"], state["status"], state["stage"]
        self.owner_id, self.team_id = state["owner_id"], state["team_id"] or self.team_id


@dataclass
class Answered:
    """One command answered 2xx: what the client knows the store must hold."""

    opportunity_id: str
    version: int
    command: str
    at: float


@dataclass
class Tally:
    answered: list[Answered] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    unavailable: int = 0
    leads: list[str] = field(default_factory=list)
    lead_messages: dict[str, bytes] = field(default_factory=dict)  # lead id → what was sent
    lead_redeliveries: int = 0
    lead_duplicates: int = 0
    lead_send_failures: int = 0  # sends the broker never acknowledged
    leads_republished: int = 0  # sent again after the broker lost its log
    elapsed: float = 0.0  # from the first command sent to the last one answered


def new_uscc(rng: random.Random) -> str:
    body = "9144" + "".join(rng.choices("0123456789", k=4))
    body += "".join(rng.choices("0123456789ABCDEFGHJKLMNPQRTUWXY", k=9))
    return body + stdnum_uscc.calc_check_digit(body)


class SalesTeam:
    """Sends `rate` commands a second on `connections` keep-alive connections."""

    def __init__(
        self,
        port: int,
        stages: dict[str, list[str]],
        rate: float,
        seed: int,
        max_active: int,
        connections: int = 64,
    ) -> None:
        self.port, self.stages, self.rate = port, stages, rate
        self.rng = random.Random(seed)
        self.max_active, self.connections = max_active, connections
        self.deals: dict[str, Deal] = {}
        self.active: list[str] = []
        self.tally = Tally()
        self.serial = 0
        self.leads_flowing = threading.Event()  # clear: the lead feed waits
        self.leads_flowing.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set."""
        queue: asyncio.Queue[bool] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.connections)]
        started = time.perf_counter()
        for i in itertools.count():
            if stopping.is_set():
                break
            delay = started + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(True)
        for _ in workers:
            queue.put_nowait(False)
        await asyncio.gather(*workers)
        self.tally.elapsed = time.perf_counter() - started

    async def _worker(self, queue: "asyncio.Queue[bool]") -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while await queue.get():
            try:
                if connection is None:
                    connection = await asyncio.open_connection("127.0.0.1", self.port)
                await self._act(*connection)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.tally.unavailable += 1
                if connection is not None:
                    connection[1].close()
                connection = None
                await asyncio.sleep(0.05)
        if connection is not None:
            connection[1].close()

    async def _act(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deal = self._pick()
        if deal is None:
            await self._create(reader, writer)
            return
        deal.busy = True
        try:
            command, method, path, token, body = self._command_for(deal)
            status, answer = await self._send(reader, writer, method, path, token, body, command)
            if 200 <= status < 300:
                deal.update(answer)
            else:
                status, answer = await self._send(
                    reader, writer, "GET", f"/opportunities/{deal.id}", TOKENS["admin"], None, ""
                )
                if status == 200:
                    deal.update(answer)
        finally:
            deal.busy = False

    def _pick(self) -> Deal | None:
        if len(self.active) < self.max_active and self.rng.random() < 0.12:
            return None
        for _ in range(4):
            if not self.active:
                return None
            index = self.rng.randrange(len(self.active))
            deal = self.deals[self.active[index]]
            if deal.status not in ACTIVE:
                self.active[index] = self.active[-1]
                self.active.pop()
                continue
            if not deal.busy:
                return deal
        return None

    async def _create(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        team = self.rng.choice(("east", "east", "west"))
        owner = self.rng.choice(TEAMS[team])
        self.serial += 1
        uscc = new_uscc(self.rng)
        body = {
            "type": "new",
            "customer": {
                "uscc": uscc,
                "name": f"浸泡测试客户 {self.serial}",
                "tier": self.rng.choice(("KA", "SMB", "SMB")),
                "ownership": self.rng.choice(("SOE", "FOREIGN", "PRIVATE", "OTHER")),
            },
            "owner_id": owner,
            "team_id": team,
            "title": f"soak deal {self.serial}",
            "amount": f"{self.rng.randrange(10, 500) * 1000}.00",
            "expected_close_on": _days(60),
        }
        status, answer = await self._send(
            reader, writer, "POST", "/opportunities", TOKENS[owner], body, "create"
        )
        if status == 201:
            deal = Deal(
                answer["id"],
                answer["version"],
                answer["status"],
                answer["stage"],
                answer["pipeline_id"],
                owner,
                team,
                uscc,
            )
            self.deals[deal.id] = deal
            self.active.append(deal.id)

    def _command_for(self, deal: Deal) -> tuple[str, str, str, str, dict[str, Any] | None]:
        """What the deal's owner (or its manager, or a rep of its team) does next."""
        rng, path = self.rng, f"/opportunities/{deal.id}"
        owner = TOKENS[deal.owner_id] if deal.owner_id in TOKENS else TOKENS["admin"]
        if deal.status == "pooled":
            if rng.random() < 0.7:
                rep = rng.choice(TEAMS.get(deal.team_id, ("rep-1",)))
                return "claim", "POST", f"{path}/claim", TOKENS[rep], {}
            rep = rng.choice(TEAMS.get(deal.team_id, ("rep-1",)))
            manager = TOKENS[MANAGERS.get(deal.team_id, "manager-east")]
            return "assign", "POST", f"{path}/assign", manager, {"owner_id": rep}
        if deal.status in ("paused", "deferred"):
            roll = rng.random()
            if roll < 0.7:
                command = "resume" if deal.status == "paused" else "reactivate"
                return command, "POST", f"{path}/{command}", owner, {}
            if roll < 0.9:
                return "follow-ups", "POST", f"{path}/follow-ups", owner, _follow_up(rng)
            return "lose", "POST", f"{path}/lose", owner, {"reason": "timing"}
        stages = self.stages[deal.pipeline_id]
        last = deal.stage == stages[-1]
        choices: list[tuple[float, str]] = [
            (30, "win" if last else "advance"),
            (25, "follow-ups"),
            (10, "update"),
            (3, "key-persons"),
            (3, "competitors"),
            (2, "documents"),
            (4, "pause"),
            (3, "defer"),
            (4, "lose"),
            (1, "void"),
            (1, "reclaim"),
        ]
        command = rng.choices([c for _, c in choices], weights=[w for w, _ in choices])[0]
        if command == "update":
            return command, "PATCH", path, owner, _body(command, deal, stages, rng)
        if command == "reclaim":
            manager = TOKENS[MANAGERS.get(deal.team_id, "manager-east")]
            return command, "POST", f"{path}/reclaim", manager, _body(command, deal, stages, rng)
        return command, "POST", f"{path}/{command}", owner, _body(command, deal, stages, rng)

    async def _send(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        token: str,
        body: dict[str, Any] | None,
        command: str,
    ) -> tuple[int, Any]:
        started = time.perf_counter()
        status, raw = await exchange(reader, writer, request(method, path, token, body))
        answer: Any = orjson.loads(raw) if raw else None
        if command:
            self.tally.statuses[f"{command} {status}"] += 1
            if 200 <= status < 300:
                self.tally.latencies.append(time.perf_counter() - started)
                self.tally.answered.append(
                    Answered(answer["id"], answer["version"], command, time.monotonic())
                )
        return status, answer


def _body(command: str, deal: Deal, stages: list[str], rng: random.Random) -> dict[str, Any]:
    match command:
        case "advance":
            return {"to_stage": stages[min(stages.index(deal.stage) + 1, len(stages) - 1)]}
        case "follow-ups":
            return _follow_up(rng)
        case "update":
            return {"amount": f"{rng.randrange(10, 900) * 1000}.00"}
        case "key-persons":
            return {"name": "王经理", "title": "采购总监"}
        case "competitors":
            return {"name": "竞争对手", "strengths": "价格"}
        case "documents":
            return {"name": "方案书", "kind": "proposal", "url": "https://docs.example/p"}
        case "pause":
            return {"reason": "客户内部调整"}
        case "defer":
            return {"reason": "tender_cycle", "revisit_on": _days(90)}
        case "lose":
            return {"reason": rng.choice(("price", "competitor", "no_budget"))}
        case "void":
            return {"reason": "重复录入"}
        case "reclaim":
            return {"reason": "经理收回"}
        case "win":
            end = {"contract_end_on": _days(30)} if rng.random() < 0.5 else {}
            return {
                "amount": f"{rng.randrange(10, 900) * 1000}.00",
                "contract_ref": f"HT-{deal.id[:8]}",
                **end,
            }
    raise ValueError(f"no body for {command!r}")


def _follow_up(rng: random.Random) -> dict[str, str]:
    return {"kind": rng.choice(("call", "visit", "meeting", "email")), "note": "跟进客户需求"}


def _days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


async def publish_leads(
    bootstrap: str, rate: float, team: SalesTeam, stopping: asyncio.Event
) -> None:
    """Qualified leads at `rate` a second until `stopping` is set; some redelivered, some
    naming a customer that already has an active deal (the service answers those as
    rejected duplicates)."""
    if rate <= 0:
        return
    rng, tally = random.Random(7), team.tally
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=60000)
    await producer.start()
    try:
        started, sent = time.perf_counter(), list[tuple[bytes, bytes]]()
        for i in itertools.count():
            if stopping.is_set():
                break
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not team.leads_flowing.is_set():
                await asyncio.to_thread(team.leads_flowing.wait)
            roll = rng.random()
            if roll < 0.05 and sent:
                key, value = rng.choice(sent)
                tally.lead_redeliveries += 1
            else:
                uscc = new_uscc(rng)
                if roll < 0.08 and team.active:
                    uscc = team.deals[rng.choice(team.active)].uscc
                    tally.lead_duplicates += 1
                key, value = _lead(f"soak-lead-{i}", uscc, rng)
                sent.append((key, value))
                tally.leads.append(key.decode())
                tally.lead_messages[key.decode()] = value
            delivery = await producer.send(topics.LEADS_QUALIFIED, key=key, value=value)
            delivery.add_done_callback(lambda done: _count_failure(done, tally))
    finally:
        await producer.stop()


def _count_failure(delivery: "asyncio.Future[Any]", tally: Tally) -> None:
    if delivery.cancelled() or delivery.exception() is not None:
        tally.lead_send_failures += 1


async def republish_leads(bootstrap: str, tally: Tally, lead_ids: list[str]) -> None:
    """What a lead service does when the broker lost its log: send again the leads it has no
    answer for (an opportunity or a rejection); a lead is taken once by its id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=60000)
    await producer.start()
    try:
        deliveries = [
            await producer.send(
                topics.LEADS_QUALIFIED, key=lead.encode(), value=tally.lead_messages[lead]
            )
            for lead in lead_ids
        ]
        await asyncio.gather(*deliveries)
        tally.leads_republished += len(lead_ids)
    finally:
        await producer.stop()


def _lead(lead_id: str, uscc: str, rng: random.Random) -> tuple[bytes, bytes]:
    team = rng.choice(("east", "west"))
    lead = {
        "lead_id": lead_id,
        "qualified_at": datetime.now(UTC).isoformat(),
        "customer": {
            "uscc": uscc,
            "name": f"线索客户 {lead_id}",
            "tier": rng.choice(("KA", "SMB")),
            "ownership": rng.choice(("SOE", "PRIVATE")),
        },
        "owner_id": rng.choice(TEAMS[team]),
        "team_id": team,
        "expected_amount": "80000.00",
    }
    return lead_id.encode(), orjson.dumps(lead)
