"""The opportunity service's GET /notifications over a synthetic history, served by its own
process for the rebuild bench (the feed must not be what is measured).

    .venv/bin/python bench/notifications_feed.py PORT EVENTS
"""

import http.server
import sys
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import TOKENS  # noqa: E402
from synthetic_history import envelope  # noqa: E402

FEED_TOKEN = TOKENS["service"]


def serve_feed(port: int, count: int) -> None:
    """The opportunity service's GET /notifications over `count` generated events (pages
    made before the first request, so the feed is not what is measured)."""
    page = 10_000
    pages: dict[int, bytes] = {}
    for after in range(0, count, page):
        items = [
            {"position": p, "envelope": envelope(p)}
            for p in range(after + 1, min(after + page, count) + 1)
        ]
        pages[after] = orjson.dumps(
            {"after": after, "items": items, "next_after": items[-1]["position"]}
        )

    class Feed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            if self.headers.get("Authorization") != f"Bearer {FEED_TOKEN}":
                self._send(401, b'{"detail": "unauthenticated"}')
            elif self.path.startswith("/readyz"):
                self._send(200, orjson.dumps({"status": "ready", "last_position": count}))
            else:
                query = dict(part.split("=") for part in self.path.split("?", 1)[1].split("&"))
                after = int(query["after"])
                self._send(
                    200,
                    pages.get(
                        after, orjson.dumps({"after": after, "items": [], "next_after": after})
                    ),
                )

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Feed)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve_feed(int(sys.argv[1]), int(sys.argv[2]))
