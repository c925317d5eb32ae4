"""Who a request is from (SPEC §4.4): the auth file, one principal per token (never showing
the token), and the 401 and 403 every service answers alike."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from chassis.auth import (
    DEV_PRINCIPALS,
    SEND_BEARER,
    AuthFileError,
    Forbidden,
    Principal,
    auth_file_path,
    bearer_principal,
    load_principals,
    write_dev_principals,
)
from chassis.http import new_service
from contracts.rules import Role

TOKEN = "a-token-of-rep-1-0123456789"


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "auth.json"
    entries = [
        {"token": TOKEN, "id": "rep-1", "role": "rep", "team_id": "east"},
        {"token": "a-token-of-admin-0123456789", "id": "admin", "role": "admin"},
    ]
    path.write_text(json.dumps({"principals": entries}), encoding="utf-8")
    return path


def test_a_token_finds_its_principal_and_no_token_shows(auth_file: Path) -> None:
    principals = load_principals(auth_file)
    found = principals.find(TOKEN)
    assert found == Principal("rep-1", Role.REP, "east")
    assert principals.find(TOKEN[:-1]) is None
    assert principals.by_id("admin") == Principal("admin", Role.ADMIN)
    assert TOKEN not in repr(found)
    assert not hasattr(found, "token")
    assert all(TOKEN not in repr(c) for c in principals.credentials)
    assert TOKEN not in repr(principals.all)


def test_a_broken_auth_file_names_the_key_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"principals": [{"token": "s3cr3t!", "id": "x", "role": "rep"}]}))
    with pytest.raises(AuthFileError) as refused:
        load_principals(path)
    assert "principals.0.token" in str(refused.value)
    assert "s3cr3t!" not in str(refused.value)


def test_the_dev_auth_file_holds_one_fresh_token_per_dev_principal(tmp_path: Path) -> None:
    written = write_dev_principals(tmp_path / "auth.json")
    tokens = {c.token for c in written.principals}
    assert len(tokens) == len(written.principals)
    assert load_principals(tmp_path / "auth.json").by_id("manager-west") == Principal(
        "manager-west", Role.MANAGER, "west"
    )
    assert (tmp_path / "auth.json").stat().st_mode & 0o777 == 0o600


def test_a_dev_auth_file_of_an_earlier_version_gains_the_new_dev_principals_and_keeps_its_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    earlier = write_dev_principals(Path("var/auth.json")).principals
    rep_1 = next(c for c in earlier if c.id == "rep-1")
    old = tuple(c for c in earlier if c.id != "rep-4")
    (tmp_path / "var/auth.json").write_text(
        json.dumps({"principals": [c.model_dump() for c in old]}), encoding="utf-8"
    )

    completed = load_principals(auth_file_path(None)).credentials

    assert {c.id for c in completed} == {pid for pid, _, _ in DEV_PRINCIPALS}
    assert next(c for c in completed if c.id == "rep-1") == rep_1
    assert next(c for c in completed if c.id == "rep-4").principal == Principal(
        "rep-4", Role.REP, "east"
    )


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def client(auth_file: Path) -> TestClient:
    principals = load_principals(auth_file)
    service = new_service("test", "auth", nothing, store="test store")
    Who = Annotated[Principal, Depends(bearer_principal(principals.find))]
    Quiet = Annotated[Principal, Depends(bearer_principal(principals.find, SEND_BEARER))]

    @service.get("/mine")
    async def mine(who: Who) -> dict[str, str]:
        if who.role is not Role.ADMIN:
            raise Forbidden("only admins", rule="role.admin")
        return {"id": who.id}

    @service.get("/team")
    async def team(who: Quiet) -> dict[str, str]:
        raise Forbidden(f"not team {who.team_id}", "role.team", field="team_id")

    return TestClient(service)


def test_no_or_an_unknown_token_answers_401_with_the_bearer_challenge(client: TestClient) -> None:
    none = client.get("/mine")
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert none.content == (
        b'{"detail":{"error":"unauthenticated","message":"send Authorization: Bearer <token>"}}'
    )
    unknown = client.get("/mine", headers={"Authorization": "Bearer nobody-0123456789abcdef"})
    assert unknown.json()["detail"]["message"] == "the Bearer token belongs to no principal"
    quiet = client.get("/team", headers={"Authorization": "Bearer nobody-0123456789abcdef"})
    assert quiet.json()["detail"]["message"] == SEND_BEARER


def test_forbidden_answers_403_naming_the_rule_and_the_parameter(client: TestClient) -> None:
    rep = {"Authorization": f"Bearer {TOKEN}"}
    refused = client.get("/mine", headers=rep)
    assert refused.status_code == 403
    assert refused.content == (
        b'{"detail":{"error":"forbidden","message":"only admins","rule":"role.admin"}}'
    )
    assert client.get("/team", headers=rep).json() == {
        "detail": {
            "error": "forbidden",
            "message": "not team east",
            "rule": "role.team",
            "field": "team_id",
        }
    }
