"""No token is ever logged (SPEC §4.4): the three services run as real processes, every endpoint
is called with valid, invalid and look-alike tokens, answers of every kind are provoked (401,
403, 404, 409, 412, 422, and 503 once their databases are gone), then the captured output of
each process is searched for every token; in either log format (text, and JSON lines that
each parse and carry the request id of the request they tell of). In JSON the services also
export traces, to a receiver here: the access lines carry the trace id, and no exported span
holds a token either."""

import base64
import json
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import psycopg
import pytest

from tests.support.otlp import Received, otlp_receiver
from tests.support.postgres import ADMIN_URL, fresh_database
from tests.support.principals import TOKENS, auth, customer
from tests.support.processes import Service, service_env, start_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LOOKALIKE = TOKENS["admin"][:-1] + "X"
RANDOM = secrets.token_urlsafe(24)
BASIC = base64.b64encode(f"admin:{TOKENS['admin']}".encode()).decode()
# Every secret a request below carries.
SECRETS = [*TOKENS.values(), LOOKALIKE, RANDOM, BASIC]
# A token cut short in a log is still a leak: any 12 characters in a row of one count.
FRAGMENT = 12

CREDENTIALS: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {}),
    *[(auth(principal), {}) for principal in TOKENS],
    ({"Authorization": f"Bearer {LOOKALIKE}"}, {}),
    ({"Authorization": f"Bearer {RANDOM}"}, {}),
    ({"Authorization": f"Bearer {TOKENS['admin']}{RANDOM}"}, {}),
    ({"Authorization": f"Basic {BASIC}"}, {}),
    ({"Authorization": TOKENS["admin"]}, {}),
    ({"X-Api-Key": TOKENS["admin"]}, {"access_token": TOKENS["admin"]}),
]


NAMES = ("opportunity", "projections", "reminders")


@dataclass
class System:
    services: dict[str, Service]
    databases: dict[str, str]
    log_format: str
    traces: Received | None


@pytest.fixture(params=["text", "json"])
def system(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[System]:
    """The opportunity and projections services on new PostgreSQL databases (dropped under them
    later), the reminders service on SQLite, logging in the format of the param (in JSON,
    exporting traces too); all stopped however the test ends."""
    with ExitStack() as stack:
        traces = stack.enter_context(otlp_receiver()) if request.param == "json" else None
        databases = {
            name: stack.enter_context(fresh_database(f"oppstream_logs_{name}"))
            for name in ("opportunity", "projections")
        }
        env = service_env(
            tmp_path,
            eventstore_url=databases["opportunity"],
            projections_db_url=databases["projections"],
            reminders_db_url=f"sqlite:///{tmp_path}/reminders.db",
            log_format=request.param,
        )
        if traces is not None:
            env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": traces.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        with ThreadPoolExecutor(len(NAMES)) as pool:
            starting = {
                name: pool.submit(start_service, name, env, tmp_path / name) for name in NAMES
            }
        for future in starting.values():
            if future.exception() is None:
                stack.callback(future.result().stop)
        services = {name: future.result() for name, future in starting.items()}
        yield System(services, databases, request.param, traces)


def endpoints(client: httpx.Client) -> list[tuple[str, str]]:
    """(method, path) of every documented operation, path parameters filled with a new id."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", str(uuid4()), path))
        for path, operations in paths.items()
        for method in operations
    ]


def call_everything(client: httpx.Client) -> set[int]:
    """Every endpoint with every credential; the statuses answered."""
    answered = set()
    for method, path in endpoints(client):
        for headers, params in CREDENTIALS:
            body = None if method == "GET" else {}
            answer = client.request(method, path, headers=headers, params=params, json=body)
            answered.add(answer.status_code)
    return answered


def provoke_opportunity_errors(client: httpx.Client) -> set[int]:
    """Created, refused, conflicting, stale and malformed commands; the statuses answered."""
    sent = {"type": "new", "customer": customer()}
    created = client.post("/opportunities", json=sent, headers=auth("rep-1"))
    oid = created.json()["id"]
    command = f"/opportunities/{oid}/follow-ups"
    follow_up = {"kind": "call", "note": "n"}
    answers = [
        created,
        client.post("/opportunities", json=sent, headers=auth("rep-1")),
        client.post(command, json=follow_up, headers=auth("viewer")),
        client.post(command, json=follow_up, headers=auth("rep-3")),
        client.post(command, json=follow_up, headers={**auth("rep-1"), "If-Match": "7"}),
        client.post(command, json={"kind": TOKENS["rep-1"]}, headers=auth("rep-1")),
        client.post(
            command,
            content=b'{"kind": "call", "note": ',
            headers={**auth("rep-1"), "Content-Type": "application/json"},
        ),
        client.post(
            f"/opportunities/{uuid4()}/advance", json={"to_stage": "x"}, headers=auth("admin")
        ),
        client.get("/opportunities", params={"limit": 0}, headers=auth("admin")),
    ]
    return {answer.status_code for answer in answers}


def provoke_projections_errors(client: httpx.Client) -> set[int]:
    answers = [
        client.get("/funnel", params={"owner_id": "rep-2"}, headers=auth("rep-1")),
        client.get("/funnel", params={"from": "yesterday"}, headers=auth("viewer")),
        client.get("/leaderboard", params={"period": "eon"}, headers=auth("viewer")),
    ]
    return {answer.status_code for answer in answers}


def drop(database_url: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


def fail_without_database(system: System) -> set[int]:
    """Requests once the PostgreSQL databases are gone: answered 503 (the store cannot be
    reached), each failure logged."""
    for url in system.databases.values():
        drop(url)
    answered = set()
    # uvicorn closes the connection after an unhandled error: one connection per request.
    close = {"Connection": "close"}
    for name, path in (("opportunity", "/opportunities"), ("projections", "/funnel")):
        with httpx.Client(base_url=system.services[name].url, timeout=10.0) as client:
            for principal in TOKENS:
                answer = client.get(path, headers={**auth(principal), **close})
                answered.add(answer.status_code)
            answered.add(client.get("/readyz", headers=close).status_code)
    return answered


def assert_json_lines(output: str) -> None:
    """Every line a JSON object; an access line for each request, with its request id and
    the trace id of its span (traces are on)."""
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "service", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "oppstream.access"]
    assert access
    assert all(len(line["request_id"]) == 32 for line in access)
    assert all(re.fullmatch("[0-9a-f]{32}", line["trace_id"]) for line in access)
    assert all(re.fullmatch("[0-9a-f]{16}", line["span_id"]) for line in access)


def test_no_token_appears_in_any_log(system: System) -> None:
    answered: dict[str, set[int]] = {}
    for name, service in system.services.items():
        with httpx.Client(base_url=service.url, timeout=10.0) as client:
            answered[name] = call_everything(client)
            if name == "opportunity":
                answered[name] |= provoke_opportunity_errors(client)
            if name == "projections":
                answered[name] |= provoke_projections_errors(client)
    failures = fail_without_database(system)
    for service in system.services.values():
        service.stop()

    for name, service in system.services.items():
        output = service.output()
        assert "Application startup complete" in output, output
        leaked = [
            secret[start : start + FRAGMENT]
            for secret in SECRETS
            for start in range(len(secret) - FRAGMENT + 1)
            if secret[start : start + FRAGMENT] in output
        ]
        assert not leaked, f"the {name} service logged (part of) a token: {leaked}\n{output}"
        if system.log_format == "json":
            assert_json_lines(service.stderr_path.read_text(encoding="utf-8"))
    if system.traces is not None:  # flushed as each service stopped
        exported = system.traces.bodies()
        assert {path for path, _ in system.traces.exports} == {"/v1/traces"}
        assert all(f"oppstream-{name}".encode() in exported for name in NAMES)
        leaked = [
            secret[start : start + FRAGMENT]
            for secret in SECRETS
            for start in range(len(secret) - FRAGMENT + 1)
            if secret[start : start + FRAGMENT].encode() in exported
        ]
        assert not leaked, f"a span exported (part of) a token: {leaked}"
    assert {401, 403, 404, 409, 412, 422} <= answered["opportunity"]
    assert {401, 403, 422} <= answered["projections"]
    assert {401, 404} <= answered["reminders"]
    assert failures == {503}
