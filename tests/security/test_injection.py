"""Hostile text (SQL fragments, quotes, wildcards, NUL, Unicode controls, very long strings) in
every text field of every opportunity command and in the query filters of the opportunity,
projections and reminders services, on SQLite and on PostgreSQL.

Each answer is 2xx or a 422 naming the field, never 5xx; NUL (which PostgreSQL text cannot hold)
is refused on every store alike; what is accepted comes back verbatim; and afterwards the tables
are all there with the rows the answers promise.
"""

from collections.abc import Iterator
from typing import Any, cast, get_args
from urllib.parse import quote
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import BaseModel

from contracts.customer import GivenCustomer
from opportunity.adapters.listing import listing
from opportunity.entrypoints.http.bodies import CreateBody
from opportunity.entrypoints.http.commands import COMMANDS as ROUTED_COMMANDS
from projections.adapters.feed import read_listed
from projections.adapters.store import Store
from services.projections.tests.history import History, envelopes_of
from tests.security.apps import COMMANDS, create, prepared, send
from tests.security.conftest import StoreUrl
from tests.support.principals import auth, customer

HOSTILE = {
    "quote-drop": "'; DROP TABLE opportunity_listing; DELETE FROM opportunities_events; --",
    "double-quote-or": '" OR 1=1 --',
    "tautology": "x' OR '1'='1",
    "wildcards": "%_%",
    "backslash-sleep": "\\'; SELECT pg_sleep(10); --",
    "unicode": "客户'); 删除 -- 😀 \u202e\u200b\ufb00",
    "nul": "a\x00b",
    "very-long": "' OR 1=1 -- " * 1000,
}
# Values an opportunity can hold as its owner_id or team_id (at most 100 characters, no NUL).
HOLDABLE = [v for v in HOSTILE.values() if len(v) <= 100 and "\x00" not in v]


def is_text(annotation: Any) -> bool:
    return annotation is str or any(is_text(arg) for arg in get_args(annotation))


def text_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if is_text(field.annotation)]


# Read from the request models the service routes, so a new command or field is covered.
COMMAND_FIELDS = [
    (command, field) for command, model, _, _ in ROUTED_COMMANDS for field in text_fields(model)
]
CREATE_FIELDS = [(field,) for field in text_fields(CreateBody)] + [
    ("customer", field) for field in text_fields(GivenCustomer)
]
LISTING_FILTERS = ("owner_id", "team_id", "status", "stage", "type", "uscc")
REPORTS = ("/funnel", "/dwell", "/win-rates", "/forecast", "/stale", "/leaderboard")
FILTERS = (
    "type",
    "tier",
    "ownership",
    "classified_by",
    "owner_id",
    "team_id",
    "from",
    "to",
    "as_of",
)
REPORT_FILTERS = [(report, name) for report in REPORTS for name in FILTERS] + [
    ("/leaderboard", name) for name in ("period", "won_from", "won_to")
]


def values_in(data: Any) -> Iterator[Any]:
    """Every scalar anywhere in a JSON document."""
    if isinstance(data, dict):
        for value in data.values():
            yield from values_in(value)
    elif isinstance(data, list):
        for value in data:
            yield from values_in(value)
    else:
        yield data


def assert_accepted_or_refused_naming(answer: Response, hostile: str, loc: list[str]) -> bool:
    """True if accepted (2xx); else the answer is a 422 naming `loc` (or, for text in an
    object such as the customer, the object and, in the message, the key). NUL is always
    refused."""
    assert answer.status_code < 500, answer.text
    if hostile == "nul" or not answer.is_success:
        assert answer.status_code == 422, answer.text
        named = [
            p
            for p in answer.json()["detail"]
            if 2 <= len(p["loc"]) and p["loc"] == loc[: len(p["loc"])]
        ]
        assert named, answer.text
        assert all(p["loc"] == loc or loc[-1] in p["msg"] for p in named), answer.text
        return False
    return True


class OpportunityTables:
    """The event store and listing tables of the opportunity service, read directly."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.names = self._names()
        sqlite = self.engine.dialect.name == "sqlite"
        self.events = sa.table(
            "stored_events" if sqlite else "opportunities_events", sa.column("originator_id")
        )
        self._key = (lambda oid: UUID(oid).hex) if sqlite else UUID

    def _names(self) -> set[str]:
        return set(sa.inspect(self.engine).get_table_names())

    def assert_intact(self, client: TestClient, oid: str, version: int) -> None:
        """Every table still there; the opportunity's `version` events stored, no more, no
        less; its listing row at that version."""
        client.get("/opportunities", params={"limit": 1}, headers=auth("admin"))  # catches up
        with self.engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count())
                .select_from(self.events)
                .where(self.events.c.originator_id == self._key(oid))
            ).scalar_one()
            listed = conn.execute(
                sa.select(listing.c.version).where(listing.c.id == oid)
            ).scalar_one()
        assert self._names() == self.names
        assert (stored, listed) == (version, version)


@pytest.fixture(scope="module")
def tables(opportunity_client: TestClient, store_url: StoreUrl) -> Iterator[OpportunityTables]:
    found = OpportunityTables(store_url("opportunity"))
    assert {"opportunity_listing", found.events.name} <= found.names
    yield found
    found.engine.dispose()


def test_every_routed_command_and_text_field_is_covered() -> None:
    assert {command for command, _, _, _ in ROUTED_COMMANDS} == set(COMMANDS)
    assert ("key-persons", "role") in COMMAND_FIELDS
    assert ("customer", "name") in CREATE_FIELDS


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("path", CREATE_FIELDS, ids=[".".join(p) for p in CREATE_FIELDS])
def test_hostile_text_in_a_create_field(
    opportunity_client: TestClient, tables: OpportunityTables, path: tuple[str, ...], hostile: str
) -> None:
    value = HOSTILE[hostile]
    body: dict[str, Any] = {
        "type": "new",
        "customer": customer(),
        "owner_id": "rep-1",
        "team_id": "east",
    }
    *parents, field = path
    uscc = body["customer"]["uscc"]
    (body["customer"] if parents else body)[field] = value

    answer = opportunity_client.post("/opportunities", json=body, headers=auth("admin"))

    if assert_accepted_or_refused_naming(answer, hostile, ["body", *path]):
        state = answer.json()
        assert (state["customer"] if parents else state)[field] == value
        if field in ("owner_id", "team_id"):
            found = opportunity_client.get(
                "/opportunities", params={field: value, "uscc": uscc}, headers=auth("admin")
            )
            assert [item["id"] for item in found.json()["items"]] == [state["id"]]
        tables.assert_intact(opportunity_client, state["id"], 1)
    else:
        listed = opportunity_client.get(
            "/opportunities", params={"uscc": uscc}, headers=auth("admin")
        )
        assert listed.json()["total"] == 0


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize(
    ("command", "field"), COMMAND_FIELDS, ids=[f"{c}.{f}" for c, f in COMMAND_FIELDS]
)
def test_hostile_text_in_a_command_field(
    opportunity_client: TestClient,
    tables: OpportunityTables,
    command: str,
    field: str,
    hostile: str,
) -> None:
    body, steps = COMMANDS[command]
    state = prepared(opportunity_client, steps)

    answer = send(
        opportunity_client, state["id"], command, {**body, field: HOSTILE[hostile]}, "admin"
    )

    accepted = assert_accepted_or_refused_naming(answer, hostile, ["body", field])
    if accepted:
        history = opportunity_client.get(
            f"/opportunities/{state['id']}/history", headers=auth("admin")
        ).json()["events"]
        assert HOSTILE[hostile] in values_in(history[-1]["payload"])
    tables.assert_intact(opportunity_client, state["id"], state["version"] + int(accepted))


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize("name", LISTING_FILTERS)
def test_hostile_text_in_a_listing_filter(
    opportunity_client: TestClient, tables: OpportunityTables, name: str, hostile: str
) -> None:
    """Only opportunities whose field equals the text are listed: no tautology lists others."""
    ordinary = create(opportunity_client)

    answer = opportunity_client.get(
        "/opportunities", params={name: HOSTILE[hostile], "limit": 500}, headers=auth("admin")
    )

    if assert_accepted_or_refused_naming(answer, hostile, ["query", name]):
        items = answer.json()["items"]
        assert all(
            (item["customer"] if name == "uscc" else item)[name] == HOSTILE[hostile]
            for item in items
        )
        assert answer.json()["total"] == len(items)
    tables.assert_intact(opportunity_client, ordinary["id"], ordinary["version"])


@pytest.fixture(scope="module")
def reports(projections_client: TestClient) -> dict[str, int]:
    """Opportunities of ordinary owners and of owners and teams named with hostile text, fed
    into the projections store; the number of rows that makes in each table."""
    histories = [History(owner_id="rep-1", team_id="east"), History(owner_id="rep-3")]
    histories += [History(owner_id=value, team_id=value) for value in HOLDABLE]
    projections_store(projections_client).apply_events(
        [read_listed(e) for e in envelopes_of(*histories)]
    )
    return {"bi_opportunity": len(histories), "bi_event": len(histories)}


def projections_store(client: TestClient) -> Store:
    app = client.app
    assert isinstance(app, FastAPI)
    return cast(Store, app.state.store)


def report_rows(projections_client: TestClient) -> dict[str, int]:
    with projections_store(projections_client).engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
            for name in ("bi_opportunity", "bi_event")
        }


@pytest.mark.parametrize("hostile", list(HOSTILE))
@pytest.mark.parametrize(
    ("report", "name"), REPORT_FILTERS, ids=[f"{r}?{n}" for r, n in REPORT_FILTERS]
)
def test_hostile_text_in_a_report_filter(
    projections_client: TestClient, reports: dict[str, int], report: str, name: str, hostile: str
) -> None:
    answer = projections_client.get(report, params={name: HOSTILE[hostile]}, headers=auth("viewer"))

    accepted = assert_accepted_or_refused_naming(answer, hostile, ["query", name])
    if accepted and report == "/stale" and name in ("owner_id", "team_id"):
        owners = [item[name] for item in answer.json()["items"]]
        assert owners == ([HOSTILE[hostile]] if HOSTILE[hostile] in HOLDABLE else [])
    assert report_rows(projections_client) == reports


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_hostile_text_as_an_opportunity_id_of_the_reminders_service(
    reminders_client: TestClient, hostile: str
) -> None:
    path = f"/opportunities/{quote(HOSTILE[hostile], safe='')}/reminders"

    answer = reminders_client.get(path, headers=auth("admin"))

    assert answer.status_code == 404, answer.text
