"""The demo's webhook sink: an HTTP server in a thread of the demo process that the reminders
service delivers the simulated teams' reminders to (SPEC §10.2), checking each request's
signature; its channels for the demo's rules; and the delivery summary the demo prints."""

import hashlib
import hmac
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

# The path of a CRM front end that is down for the whole demo: its deliveries are parked.
DOWN = "/down"
# One reminder in this many meets a team channel's bad moment (503) once, and is retried.
FLAKY_ONE_IN = 5
SETTLE_SECONDS = 20.0


@dataclass
class WebhookSink:
    secret: str
    port: int = 0
    delivered: set[tuple[str, str]] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)
    refused_once: set[tuple[str, str]] = field(default_factory=set)
    signature_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def channels(self, teams: list[str]) -> list[dict[str, Any]]:
        """A webhook for each team's reps, one for each team's manager (escalations), and a
        front end that is down, sent escalations and reclamations."""
        found: list[dict[str, Any]] = []
        for team in teams:
            for to in ("team", "manager"):
                found.append(
                    {
                        "id": f"{team}-{to}-webhook",
                        "kind": "webhook",
                        "url": self.url(f"/{to}/{team}"),
                        "secret": self.secret,
                        "to": to,
                        "match": {"team_id": team},
                    }
                )
        found.append(
            {
                "id": "crm-front-end-down",
                "kind": "webhook",
                "url": self.url(DOWN),
                "secret": self.secret,
                "kinds": ["escalation", "reclaim_due"],
            }
        )
        return found

    def answer(self, path: str, key: str, body: bytes, signature: str) -> int:
        """The status the sink answers a delivery with, noting what it saw."""
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        with self._lock:
            self.requests[path] += 1
            if not hmac.compare_digest(signature, expected):
                self.signature_failures += 1
                return 401
            if path == DOWN:
                return 503
            seen = (path, key)
            flaky = int(hashlib.sha256(key.encode()).hexdigest(), 16) % FLAKY_ONE_IN == 0
            if flaky and seen not in self.refused_once:
                self.refused_once.add(seen)
                return 503
            self.delivered.add(seen)
            return 200

    def figures(self) -> tuple[Counter[str], int]:
        """Deliveries taken, by path; signature failures."""
        with self._lock:
            return Counter(path for path, _ in self.delivered), self.signature_failures


def _handler(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = sink.answer(
                self.path,
                self.headers.get("Idempotency-Key", ""),
                body,
                self.headers.get("X-Oppstream-Signature", ""),
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002 - the base's signature
            return

    return Handler


@contextmanager
def webhook_sink(secret: str) -> Iterator[WebhookSink]:
    """The sink on a free port of 127.0.0.1, stopped when the block ends."""
    sink = WebhookSink(secret)
    with served_in_thread(_handler(sink), "webhook-sink") as port:
        sink.port = port
        yield sink


@contextmanager
def served_in_thread(handler: type[BaseHTTPRequestHandler], name: str) -> Iterator[int]:
    """An HTTP server of `handler` in a thread, on a free port of 127.0.0.1 (yielded), stopped
    when the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class DeliverySummary:
    delivered: int
    retried: int
    parked: int
    pending: int
    signature_failures: int
    by_path: dict[str, int]


def summarise(sink: WebhookSink, reminders_url: str, token: str) -> DeliverySummary:
    """The sink's and the reminders service's figures, once no delivery is pending (or after
    SETTLE_SECONDS)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + SETTLE_SECONDS
    with httpx.Client(base_url=reminders_url, headers=headers, timeout=10) as http:
        while True:
            pending = http.get("/deliveries", params={"status": "pending", "limit": 500})
            waiting = len(pending.json()["deliveries"]) if pending.status_code == 200 else 0
            if waiting == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        metrics = _samples(http.get("/metrics").text)
    by_path, signature_failures = sink.figures()
    failed = [
        value
        for name, value in metrics.items()
        if name.startswith("oppstream_deliveries_total{") and 'outcome="failed"' in name
    ]
    return DeliverySummary(
        delivered=sum(by_path.values()),
        retried=int(sum(failed)),
        parked=int(metrics.get("oppstream_deliveries_parked", 0)),
        pending=waiting,
        signature_failures=signature_failures,
        by_path=dict(by_path),
    )


def print_deliveries(console: Console, summary: DeliverySummary) -> None:
    table = Table(title="Reminder delivery 提醒送达 (the demo's webhook sink)")
    table.add_column("figure")
    table.add_column("count", justify="right")
    table.add_row("delivered (reminder × channel, 2xx)", str(summary.delivered))
    for path, count in sorted(summary.by_path.items()):
        table.add_row(f"  to {path}", str(count))
    table.add_row("retried (failed attempts tried again)", str(summary.retried))
    table.add_row(f"parked (after the last attempt; {DOWN} never answers 2xx)", str(summary.parked))
    table.add_row("still pending", str(summary.pending))
    table.add_row("signature failures", str(summary.signature_failures))
    console.print(table)


def _samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found
