"""The opportunity service's `GET /notifications` as the rebuild reads it: envelopes, page by page."""

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.envelope import Envelope, NotAnEnvelope, read_envelope


class FeedError(Exception):
    """The feed answered with an error or not at all; `refused`: it refused the token."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Page:
    events: list[Envelope]
    next_after: int


def read_listed(item: Any) -> Envelope:
    """An envelope the feed lists, already parsed from JSON, read as a record's value is."""
    return read_envelope(orjson.dumps(item))


class _Listed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    envelope: Envelope


class _Listing(BaseModel):
    """A page of the feed, read in one pass: each envelope judged as `read_envelope` judges a
    record's value (strictly); a page it refuses is read item by item to name the fault."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    items: list[_Listed] = []
    next_after: int | None = None


def read_page(body: bytes) -> tuple[list[Envelope], int | None] | None:
    """The envelopes of a page and where the next begins; None when the one-pass read refuses
    it or an instant is at the edge of the calendar (read item by item then)."""
    try:
        listing = _Listing.model_validate_json(body, strict=True)
    except ValidationError:
        return None
    events = [item.envelope for item in listing.items]
    if any(e.occurred_at.year in (1, 9999) or e.recorded_at.year in (1, 9999) for e in events):
        return None
    return events, listing.next_after


class Feed:
    """A client of the feed at `source_url` with a service or admin token."""

    def __init__(
        self, source_url: str, token: str, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(
            base_url=source_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120.0,
            transport=transport,
        )

    def __enter__(self) -> "Feed":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client.close()

    def last_position(self) -> int | None:
        """How long the history is, for the progress bar (None if the service does not say)."""
        try:
            answer = self._client.get("/readyz")
            found = answer.json().get("last_position")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return int(found) if isinstance(found, int) else None

    def pages(self, page: int) -> Iterator[Page]:
        """The pages of at most `page` events, the next one fetched while the current one is
        applied."""
        ahead: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=2)

        def fetch() -> None:
            try:
                for found in self._pages(page):
                    ahead.put(found)
                ahead.put(None)
            except BaseException as exc:  # handed to the reader, which raises it
                ahead.put(exc)

        threading.Thread(target=fetch, name="rebuild-feed", daemon=True).start()
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _pages(self, page: int) -> Iterator[Page]:
        after = 0
        while (found := self._page(after, page)) is not None:
            yield found
            after = found.next_after

    def _page(self, after: int, page: int) -> Page | None:
        """The events after position `after` (None: no more); the JSON they were read from is
        let go before the page is handed on (a page of envelopes is held long enough)."""
        raw = self._get("/notifications", after=after, limit=page)
        read = read_page(raw)
        if read is not None and read[0] and read[1]:
            return Page(read[0], read[1])
        try:
            body = orjson.loads(raw)
            items = body.get("items") or []
            if not items:
                return None
            events = [read_listed(item["envelope"]) for item in items]
        except (NotAnEnvelope, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise FeedError(f"the feed after position {after} is not envelopes: {exc}") from exc
        return Page(events, int(body.get("next_after") or items[-1]["position"]))

    def _get(self, path: str, **params: Any) -> bytes:
        try:
            answer = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise FeedError(f"the feed at {self._client.base_url} does not answer: {exc}") from exc
        if answer.status_code in (401, 403):
            raise FeedError(
                f"the feed refused the token ({answer.status_code}): a service or admin token is needed",
                refused=True,
            )
        if answer.status_code != 200:
            raise FeedError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        return answer.content
