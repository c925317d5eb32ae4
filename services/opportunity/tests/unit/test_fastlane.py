"""The fast lane takes well-formed commands only; everything else gets FastAPI's own answer."""

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from chassis.auth import Principal
from contracts.rules import Role
from opportunity.entrypoints.http.fastlane import fast_lane_route

REP = Principal("rep-1", Role.REP, "east")
TOKEN = "token-of-rep-1-0123456789"


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="unnamed", max_length=5)


def principal(token: str) -> Principal | None:
    return REP if token == TOKEN else None


async def command(
    request: Request,
    who: Principal,
    payload: Thing,
    key: str | None,
    if_match: str | None,
    thing_id: str,
    lane: str = "fast",
) -> JSONResponse:
    return JSONResponse(
        {
            "lane": lane,
            "who": who.id,
            "name": payload.name,
            "key": key,
            "if_match": if_match,
            "thing_id": thing_id,
            "path": request.url.path,
        }
    )


def app(optional: bool) -> FastAPI:
    bearer = HTTPBearer(auto_error=False)

    def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        found = principal(credentials.credentials) if credentials is not None else None
        if found is None:
            raise HTTPException(401, "unauthenticated")
        return found

    async def endpoint(
        request: Request,
        thing_id: str,
        who: Annotated[Principal, Depends(authenticate)],
        payload: Annotated[Thing, Body(default_factory=Thing) if optional else Body()],
        key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    ) -> JSONResponse:
        return await command(request, who, payload, key, if_match, thing_id, lane="fastapi")

    router = APIRouter()
    router.add_api_route(
        "/things/{thing_id}/poke",
        endpoint,
        methods=["POST"],
        route_class_override=fast_lane_route(Thing, optional, principal, command),
    )
    service = FastAPI()
    service.include_router(router)
    return service


@pytest.fixture
def client() -> TestClient:
    return TestClient(app(optional=False))


def poke(client: TestClient, body: bytes, **headers: str) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **headers}
    return client.post("/things/t-1/poke", content=body, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json; charset=utf-8"},
        {"Authorization": f"bearer {TOKEN}"},
    ],
)
def test_a_well_formed_command_takes_the_fast_lane(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = poke(client, b'{"name": "box"}', **headers, **{"Idempotency-Key": "k1"})

    assert answer.status_code == 200
    assert answer.json() == {
        "lane": "fast",
        "who": "rep-1",
        "name": "box",
        "key": "k1",
        "if_match": None,
        "thing_id": "t-1",
        "path": "/things/t-1/poke",
    }


def test_both_lanes_give_the_command_the_same_arguments(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k1", "If-Match": '"3"'}
    fast = poke(client, b'{"name": "box"}', **headers).json()
    slow = poke(client, b'{"name": "box"}', **headers, **{"Content-Type": "application/x+json"})

    assert slow.json() == {**fast, "lane": "fastapi"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "loc"),
    [
        (b'{"name": "box"}', {"Authorization": ""}, 401, None),
        (b'{"name": "box"}', {"Authorization": "Bearer someone-else"}, 401, None),
        (b'{"name": "box"}', {"Authorization": f"Basic {TOKEN}"}, 401, None),
        (b'{"name": "too long"}', {}, 422, ["body", "name"]),
        (b'{"name": "box", "extra": 1}', {}, 422, ["body", "extra"]),
        (b'{"name": ', {}, 422, ["body", 9]),
        (b'["box"]', {}, 422, ["body"]),
        (b"", {}, 422, ["body"]),
        (b'{"name": "box"}', {"Idempotency-Key": "k" * 201}, 422, ["header", "Idempotency-Key"]),
    ],
)
def test_what_the_lane_does_not_take_gets_fastapis_answer(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, loc: list[Any] | None
) -> None:
    answer = poke(client, body, **headers)

    assert answer.status_code == status, answer.text
    if loc is not None:
        assert answer.json()["detail"][0]["loc"] == loc


def test_a_body_in_another_media_type_is_left_to_fastapi(client: TestClient) -> None:
    answer = poke(client, b'{"name": "box"}', **{"Content-Type": "text/plain"})

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body"]


def test_a_command_without_a_body_takes_the_lane_where_it_needs_none() -> None:
    answer = poke(TestClient(app(optional=True)), b"", **{"Content-Type": ""})

    assert answer.status_code == 200
    assert answer.json()["lane"] == "fast"
    assert answer.json()["name"] == "unnamed"


def test_of_two_authorization_headers_the_first_counts_in_both_lanes(client: TestClient) -> None:
    def send(*tokens: str) -> Any:
        headers = [("Content-Type", "application/json")]
        headers += [("Authorization", f"Bearer {token}") for token in tokens]
        return client.post("/things/t-1/poke", content=b"{}", headers=headers)

    assert send("someone-else", TOKEN).status_code == 401
    assert send(TOKEN, "someone-else").json()["lane"] == "fast"
