"""The sender of deliveries: one HTTP client for every channel (httpx), whose request log
lines name the host of a url, never its path, query or user info."""

import logging
from typing import Any

import httpx

from reminders.domain.delivery import Request

# More of an answer than this is not read: a vendor's verdict is in its first bytes.
MAX_ANSWER_BYTES = 64 * 1024


class WithoutCredentials(logging.Filter):
    """httpx logs every request's url at INFO; a robot's url holds its token in the query
    (企业微信, 钉钉 and its signature) or the path (飞书), and a url may hold a password: only
    the scheme, host and port are logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_bare(arg) for arg in record.args)
        return True


def _bare(arg: Any) -> Any:
    if isinstance(arg, httpx.URL):
        return f"{arg.scheme}://{arg.netloc.decode('ascii')}/…"
    return arg


_WITHOUT_CREDENTIALS = WithoutCredentials()


class HttpSender:
    def __init__(self, timeout: float) -> None:
        logging.getLogger("httpx").addFilter(_WITHOUT_CREDENTIALS)
        # Each phase within `timeout`; the caller bounds the whole exchange with it too.
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=timeout)

    async def send(self, request: Request) -> tuple[int, bytes]:
        """POST the request; the status and the first bytes of the answer."""
        async with self._client.stream(
            "POST", request.url, content=request.body, headers=request.headers
        ) as answer:
            body = b""
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) >= MAX_ANSWER_BYTES:
                    break
            return answer.status_code, body[:MAX_ANSWER_BYTES]

    async def close(self) -> None:
        await self._client.aclose()
