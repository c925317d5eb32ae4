"""A page of the workbench's origin may call a service from the browser; any other origin is
given no CORS permission, and a service without configured origins gives none at all."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient

from chassis.http import new_service

WORKBENCH = "http://127.0.0.1:8000"


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def client(origins: list[str]) -> TestClient:
    service = new_service("test", "cors", nothing, store="test store", cors_origins=origins)

    @service.get("/figures")
    async def figures() -> dict[str, int]:
        return {"won": 1}

    return TestClient(service)


def preflight(test: TestClient, origin: str) -> dict[str, str]:
    answer = test.options(
        "/figures",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return dict(answer.headers)


def test_the_workbench_origin_may_send_a_bearer_token() -> None:
    headers = preflight(client([WORKBENCH]), WORKBENCH)
    assert headers["access-control-allow-origin"] == WORKBENCH
    assert "authorization" in headers["access-control-allow-headers"].lower()
    answer = client([WORKBENCH]).get("/figures", headers={"Origin": WORKBENCH})
    assert answer.headers["access-control-allow-origin"] == WORKBENCH


def test_another_origin_is_given_no_permission() -> None:
    answer = client([WORKBENCH]).get("/figures", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


def test_without_configured_origins_no_cors_header_is_sent() -> None:
    answer = client([]).get("/figures", headers={"Origin": WORKBENCH})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
