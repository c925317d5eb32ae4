"""Every endpoint of every service answers 401 to a request without a valid bearer token, except
the few that are public on purpose (SPEC §4.4).

The endpoints come from each app's route table (the routes FastAPI serves, documented or not),
so an endpoint added later is checked without anyone listing it here. Authentication does not
depend on the store, so the apps run on SQLite only.
"""

import re
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response

from tests.security.apps import BUILDERS, service_app, wait_ready
from tests.support.principals import TOKENS, auth

Endpoint = tuple[str, str]

DOCS: set[Endpoint] = {
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
PROBES: set[Endpoint] = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}

# Public on purpose, and nothing else:
# - /healthz, /readyz: probes of the platform (Kubernetes asks without credentials);
# - /metrics: scraped by Prometheus without credentials; counters and latencies, no business data;
# - /openapi.json, /docs, /docs/oauth2-redirect, /redoc: the API's description, no data;
# - the dashboard page `/` of the projections service and its script `/dashboard.js`: static
#   (stage labels from the rules file); they ask the user for a token and send it with each
#   report request;
# - the workbench's `/app/config.json` of the opportunity service: the public addresses of the
#   projections and reminders services (its files under `/app/` are a static mount, no route:
#   like the dashboard page, they ask for a token and send it with each call).
PUBLIC: dict[str, set[Endpoint]] = {
    "opportunity": PROBES | DOCS | {("GET", "/app/config.json")},
    "projections": PROBES | DOCS | {("GET", "/"), ("GET", "/dashboard.js")},
    "reminders": PROBES | DOCS,
}

REAL = TOKENS["admin"]
LOOKALIKE = REAL[:-1] + ("X" if REAL[-1] != "X" else "Y")

# (headers, query parameters) that carry no valid bearer token.
REFUSED: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "no Authorization header": ({}, {}),
    "empty bearer": ({"Authorization": "Bearer "}, {}),
    "unknown token": ({"Authorization": "Bearer not-a-known-token-0000"}, {}),
    "random token shaped like a real one": (
        {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"},
        {},
    ),
    "real token with its last character changed": ({"Authorization": f"Bearer {LOOKALIKE}"}, {}),
    "real token without its last character": ({"Authorization": f"Bearer {REAL[:-1]}"}, {}),
    "real token with one character more": ({"Authorization": f"Bearer {REAL}0"}, {}),
    "real token in upper case": ({"Authorization": f"Bearer {REAL.upper()}"}, {}),
    "real token without a scheme": ({"Authorization": REAL}, {}),
    "real token under another scheme": ({"Authorization": f"Token {REAL}"}, {}),
    "real token in another header": ({"X-Api-Key": REAL}, {}),
    "real token in the query string": ({}, {"access_token": REAL, "token": REAL}),
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    folder: Path = tmp_path_factory.mktemp("auth")
    with ExitStack() as stack:
        opened = {
            name: stack.enter_context(
                TestClient(service_app(name, f"sqlite:///{folder}/{name}.db"))
            )
            for name in BUILDERS
        }
        for client in opened.values():
            wait_ready(client)
        yield opened


def endpoints(client: TestClient) -> set[Endpoint]:
    """(method, path) of every route the app serves; HEAD is GET without the body."""
    app = client.app
    assert isinstance(app, FastAPI)
    return {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path is not None
        for method in route.methods or ()
        if method != "HEAD"
    }


def call(
    client: TestClient,
    endpoint: Endpoint,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    """The endpoint, its path parameters filled with a new id; an empty JSON body if it takes
    one (authentication must come before the body is validated)."""
    method, template = endpoint
    path = re.sub(r"\{[^}]+\}", str(uuid4()), template)
    body = None if method == "GET" else {}
    return client.request(method, path, headers=headers, params=params, json=body)


def protected(name: str, client: TestClient) -> list[Endpoint]:
    return sorted(endpoints(client) - PUBLIC[name])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_route_table_holds_every_documented_operation(
    clients: dict[str, TestClient], name: str
) -> None:
    """The enumeration the other tests rely on must not silently come up short."""
    app = clients[name].app
    assert isinstance(app, FastAPI)
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }

    assert documented
    assert documented <= endpoints(clients[name])


@pytest.mark.parametrize("name", list(BUILDERS))
def test_exactly_the_public_endpoints_answer_without_a_token(
    clients: dict[str, TestClient], name: str
) -> None:
    client = clients[name]

    answered = {e for e in endpoints(client) if call(client, e).status_code != 401}

    assert answered == PUBLIC[name]
    for endpoint in PUBLIC[name]:
        assert call(client, endpoint).status_code == 200, endpoint


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_other_endpoint_refuses_a_request_without_a_valid_token_with_401(
    clients: dict[str, TestClient], name: str, case: str, subtests: pytest.Subtests
) -> None:
    client = clients[name]
    headers, params = REFUSED[case]

    for endpoint in protected(name, client):
        with subtests.test(endpoint=endpoint):
            answer = call(client, endpoint, headers, params)
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert answer.json()["detail"]["error"] == "unauthenticated"
            assert REAL not in answer.text


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_valid_token_gets_past_authentication_on_every_endpoint(
    clients: dict[str, TestClient], name: str
) -> None:
    """The refusals above come from the token, not from an endpoint that refuses everyone."""
    client = clients[name]

    for endpoint in protected(name, client):
        assert call(client, endpoint, auth("admin")).status_code != 401, endpoint
