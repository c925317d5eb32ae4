"""A local HTTP sink for delivery tests: a server on a free port, in a thread, that keeps
every request it is sent and answers each path as scripted (a status, or no answer until
released)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from oppstream.sink import served_in_thread

HANG = -1  # scripted: answer nothing until released (or until the test ends)
HOLD_SECONDS = 60.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Sink:
    """Answers `script[path]` in turn (then `after[path]`, by default 200) and keeps what came."""

    port: int = 0
    script: dict[str, list[int]] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.split("?")[0] == path]

    def answer_for(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            path = request.path.split("?")[0]
            queued = self.script.get(path, [])
            return queued.pop(0) if queued else self.after.get(path, 200)


def _handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = sink.answer_for(Received(self.path, dict(self.headers.items()), body))
            if status == HANG:
                sink.release.wait(HOLD_SECONDS)
                return
            answer = b'{"errcode":0,"errmsg":"ok"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002 - the base's signature
            return

    return Handler


@contextmanager
def running_sink(**script: list[int]) -> Iterator[Sink]:
    """A sink on a free port; `script` maps a path's name (no slash) to its first answers."""
    sink = Sink(script={f"/{name}": list(answers) for name, answers in script.items()})
    with served_in_thread(_handler(sink), "sink") as port:
        sink.port = port
        try:
            yield sink
        finally:
            sink.release.set()
