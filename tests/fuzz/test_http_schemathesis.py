"""HTTP fuzzing of each service against its own OpenAPI (schemathesis): no answer is a 5xx,
every answer is documented (status and body), and every 4xx names the problem."""

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, CheckContext, HookContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from contracts.rules import load_rulebook
from opportunity.main import build_app as build_opportunity
from opportunity.settings import Settings as OpportunitySettings
from projections.adapters.feed import read_listed
from projections.domain.periods import PERIODS
from projections.main import build_app as build_projections
from projections.settings import Settings as ProjectionsSettings
from reminders.adapters.store import Store
from reminders.domain.clock import ManualClock
from reminders.domain.timers import Planner, managers_by_team
from reminders.main import build_app as build_reminders
from reminders.settings import Settings as RemindersSettings
from services.projections.tests.history import History, day, envelopes_of
from services.reminders.tests.helpers import DAY, SHANGHAI, T0, Harness
from services.reminders.tests.helpers import Opportunity as Facts
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, TOKENS, auth, customer, new_uscc

# Examples per operation in the fuzzing phase; the coverage phase adds its own boundary
# cases (twice as many). The three services take under 20 s of CPU together.
MAX_EXAMPLES = 20
# With `deterministic`, every run (and CI) sends the same requests.
SEED = 20260302
# Who sends a fuzzed request: the first comes out most often; the last is nobody known.
CALLERS = (
    *(TOKENS[who] for who in ("admin", "service", "manager-east", "rep-1", "rep-3", "viewer")),
    "not-a-token-of-anybody-at-all",
)
INSTANTS = ["2026-03-01", "2026-04-01", "2026-03-15T09:00:00+08:00", "2026-03-31T00:00:00"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def fuzz_config(known: dict[str, list[str]]) -> SchemathesisConfig:
    """Deterministic and bounded; a parameter named in `known` (`path.opportunity_id`,
    `body.to_stage`) takes one of those values half the time, so requests reach the domain."""
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # Timing, unlike everything else here, depends on how busy the machine is.
            "suppress-health-check": ["too_slow"],
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            # Methods a path does not have are Starlette's business (405), not the services'.
            "phases": {"coverage": {"unexpected-methods": []}},
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            "parameters": {name: {"dictionary": name, "probability": 0.5} for name in known},
        }
    )


def requests_only(app: FastAPI) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app for schemathesis' client; the TestClient around it runs the lifespan, once."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("the TestClient runs the lifespan")
        await app(scope, receive, send)

    return serve


def loaded(app: FastAPI, known: dict[str, list[str]]) -> BaseSchema:
    """The app's own OpenAPI; each fuzzed request comes from one of the CALLERS."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", requests_only(app), config=fuzz_config(known)
    )

    @schema.hook
    def flatmap_headers(
        context: HookContext, headers: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(CALLERS).map(
            lambda token: {**(headers or {}), "Authorization": f"Bearer {token}"}
        )

    return schema


def names_the_problem(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 4xx body says what is wrong: FastAPI's list of fields (`loc`, `msg`), or the
    services' `{"error", "message", …}` with the rule a 403 enforces."""
    if not 400 <= response.status_code < 500:
        return None
    detail = response.json().get("detail")
    if isinstance(detail, list):
        assert detail, "an empty list of problems"
        for problem in detail:
            assert problem.get("loc"), f"a problem without the field it is about: {problem}"
            assert problem.get("msg"), f"a problem without a message: {problem}"
        return None
    assert response.status_code != 422, f"a 422 names no field: {detail}"
    assert isinstance(detail, dict), f"`detail` names no problem: {detail!r}"
    assert detail.get("error"), f"no error code: {detail}"
    assert detail.get("message"), f"no message: {detail}"
    if response.status_code == 403:
        assert detail.get("rule"), f"a 403 names no rule: {detail}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    names_the_problem,
]


def call_and_validate(case: Case) -> None:
    """The coverage phase's cases carry no caller (the hook shapes fuzzed ones): the admin
    sends them, so they reach the handlers."""
    caller = None if "Authorization" in (case.headers or {}) else auth("admin")
    case.call_and_validate(headers=caller, checks=CHECKS)


@pytest.fixture
def opportunity_schema(tmp_path: Path) -> Iterator[BaseSchema]:
    """The opportunity service on SQLite with opportunities open, advanced, paused, lost
    and voided."""
    rules = load_rulebook()
    app = build_opportunity(
        OpportunitySettings(eventstore_url=f"sqlite:///{tmp_path}/eventstore.db"),
        rules=rules,
        principals=PRINCIPALS,
    )
    with TestClient(app) as client:
        ids = []
        for command, body in SEEDED_COMMANDS:
            created = client.post(
                "/opportunities",
                json={"type": "new", "customer": customer(), "owner_id": "rep-1"},
                headers=auth("admin"),
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            if command is not None:
                answer = client.post(
                    f"/opportunities/{ids[-1]}/{command}", json=body, headers=auth("admin")
                )
                assert answer.status_code == 200, answer.text
        yield loaded(
            app,
            {
                "path.opportunity_id": ids,
                "body.to_stage": sorted({s for p in rules.pipelines for s in p.stage_ids}),
                "body.reason": [r.id for r in rules.lost_reasons],
                "body.owner_id": list(TOKENS),
                "body.customer.uscc": [new_uscc() for _ in range(MAX_EXAMPLES)],
                "header.If-Match": ["1", "2", '"3"'],
            },
        )


SEEDED_COMMANDS: list[tuple[str | None, dict[str, str]]] = [
    (None, {}),
    ("advance", {"to_stage": "requirements"}),
    ("pause", {"reason": "budget frozen until next quarter"}),
    ("lose", {"reason": "price"}),
    ("void", {"reason": "entered twice"}),
]


@pytest.fixture
def projections_schema(tmp_path: Path) -> Iterator[BaseSchema]:
    """The projections service on SQLite with opportunities of two teams projected."""
    app = build_projections(
        ProjectionsSettings(projections_db_url=f"sqlite:///{tmp_path}/projections.db"),
        rules=load_rulebook(),
        principals=PRINCIPALS,
        clock=lambda: day(30),
    )
    with TestClient(app):
        histories = [
            History(day(0), owner_id="rep-1", team_id="east").advance("requirements", day(3)),
            History(day(1), owner_id="rep-3", team_id="west", tier="SMB"),
        ]
        app.state.store.apply_events([read_listed(e) for e in envelopes_of(*histories)])
        yield loaded(
            app,
            {
                "query.owner_id": list(TOKENS),
                "query.team_id": ["east", "west"],
                "query.from": INSTANTS,
                "query.to": INSTANTS,
                "query.as_of": INSTANTS,
                "query.won_from": INSTANTS,
                "query.won_to": INSTANTS,
                "query.period": list(PERIODS),
            },
        )


@pytest.fixture
def reminders_schema(tmp_path: Path) -> Iterator[BaseSchema]:
    """The reminders service on SQLite with two opportunities' facts, of two teams."""
    url = f"sqlite:///{tmp_path}/reminders.db"
    rules = load_rulebook()
    store = Store(url)
    store.migrate()
    harness = Harness(
        store, Planner(rules, SHANGHAI, managers_by_team(PRINCIPALS.all)), ManualClock(T0)
    )
    facts = [Facts("KA", owner_id="rep-1", team_id="east"), Facts("SMB", owner_id="rep-3")]
    harness.feed(*(f.create(T0) for f in facts))
    store.close()
    app = build_reminders(
        RemindersSettings(reminders_db_url=url),
        rules=rules,
        principals=PRINCIPALS,
        clock=ManualClock(T0 + 8 * DAY),
    )
    with TestClient(app) as client:
        poll(lambda: client.get("/readyz").status_code, lambda status: status == 200, 10)
        yield loaded(app, {"path.opportunity_id": [f.id for f in facts]})


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5's `from_fixture` reads and relabels `Node._nodeid`, which pytest
    9.2 replaced by `Node._id`: give it the attribute to use."""
    request.node._nodeid = request.node.nodeid


opportunity = schemathesis.pytest.from_fixture("opportunity_schema")
projections = schemathesis.pytest.from_fixture("projections_schema")
reminders = schemathesis.pytest.from_fixture("reminders_schema")


@opportunity.parametrize()
def test_the_opportunity_service_answers_every_request_as_documented(case: Case) -> None:
    call_and_validate(case)


@projections.parametrize()
def test_the_projections_service_answers_every_request_as_documented(case: Case) -> None:
    call_and_validate(case)


@reminders.parametrize()
def test_the_reminders_service_answers_every_request_as_documented(case: Case) -> None:
    call_and_validate(case)
