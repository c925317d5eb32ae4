"""The sender of deliveries: one HTTP client for every channel (httpx)."""

import httpx

from reminders.domain.delivery import Request

# More of an answer than this is not read: a vendor's verdict is in its first bytes.
MAX_ANSWER_BYTES = 64 * 1024


class HttpSender:
    def __init__(self, timeout: float) -> None:
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
