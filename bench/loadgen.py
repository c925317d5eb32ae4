"""A lean HTTP/1.1 keep-alive load generator (asyncio, raw sockets): cheap enough on the
client side that a 2-core machine measures the server, not the client."""

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RequestFactory = Callable[[int], bytes]


def request(method: str, path: str, token: str, body: dict[str, Any] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies),
            "rate": round(self.rate, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2),
            "statuses": dict(self.statuses),
        }


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def closed_loop(
    host: str, port: int, make: RequestFactory, total: int, concurrency: int, keep: bool = False
) -> Run:
    """`concurrency` clients, each sending its next request when the last one is answered."""
    run, counter = Run(), iter(range(total))

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                started = time.perf_counter()
                status, body = await exchange(reader, writer, make(i))
                run.latencies.append(time.perf_counter() - started)
                run.statuses[status] += 1
                if keep:
                    run.bodies.append(body)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    run.elapsed = time.perf_counter() - started
    return run


async def open_loop(
    host: str, port: int, make: RequestFactory, rate: float, seconds: float, connections: int
) -> Run:
    """Requests sent on a fixed schedule (`rate` per second), latency from the scheduled time."""
    run = Run()
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                i, due = await queue.get()
                if i < 0:
                    return
                status, _ = await exchange(reader, writer, make(i))
                run.latencies.append(time.perf_counter() - due)
                run.statuses[status] += 1
        finally:
            writer.close()

    clients = [asyncio.create_task(client()) for _ in range(connections)]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in clients:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*clients)
    run.elapsed = time.perf_counter() - started
    return run
