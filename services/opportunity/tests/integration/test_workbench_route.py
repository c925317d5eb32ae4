"""The workbench's files at `/app/` and its `/app/config.json`: where the page finds the other
services, from the settings; a bad address is refused at start naming the setting."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from contracts.rules import load_rulebook
from opportunity.main import build_app
from opportunity.settings import Settings
from tests.support.principals import PRINCIPALS, auth


def _client(tmp_path: Path, **settings: str) -> TestClient:
    service = build_app(
        Settings(eventstore_url=f"sqlite:///{tmp_path}/eventstore.db", **settings),  # type: ignore[arg-type]
        rules=load_rulebook(),
        principals=PRINCIPALS,
    )
    return TestClient(service)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as test_client:
        yield test_client


def test_config_names_the_default_public_addresses(client: TestClient) -> None:
    answer = client.get("/app/config.json")

    assert answer.status_code == 200
    assert answer.json() == {
        "projections_url": "http://127.0.0.1:8001",
        "reminders_url": "http://127.0.0.1:8002",
    }
    assert answer.headers["cache-control"] == "no-cache"


def test_config_follows_the_settings(tmp_path: Path) -> None:
    with _client(
        tmp_path,
        projections_url="https://bi.example.cn/",
        reminders_url="https://inbox.example.cn:8443",
    ) as client:
        answer = client.get("/app/config.json")

    assert answer.json() == {
        "projections_url": "https://bi.example.cn",
        "reminders_url": "https://inbox.example.cn:8443",
    }


@pytest.mark.parametrize("field", ["projections_url", "reminders_url"])
def test_an_address_a_browser_cannot_open_is_refused_naming_the_setting(
    tmp_path: Path, field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(eventstore_url=f"sqlite:///{tmp_path}/e.db", **{field: "ftp://secret-host"})  # type: ignore[arg-type]

    assert refused.value.errors()[0]["loc"] == (field,)
    assert "secret-host" not in str(refused.value.errors()[0]["msg"])


def test_the_page_and_its_vendored_libraries_are_served_without_a_token(
    client: TestClient,
) -> None:
    page = client.get("/app/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for script in ("vendor/alpine.min.js", "vendor/echarts.min.js", "workbench.js"):
        assert f'src="{script}"' in page.text
        assert client.get(f"/app/{script}").status_code == 200
    assert not re.findall(r'src="(?:https?:)?//', page.text), "a script from another host"
    assert client.get("/app", follow_redirects=False).status_code in (301, 307)


def test_me_names_the_principal_of_the_token_and_not_the_token(client: TestClient) -> None:
    answer = client.get("/me", headers=auth("manager-east"))

    assert answer.json() == {"id": "manager-east", "role": "manager", "team_id": "east"}
    assert auth("manager-east")["Authorization"].split()[1] not in answer.text
    assert client.get("/me").status_code == 401


def test_the_api_still_refuses_a_request_without_a_token(client: TestClient) -> None:
    assert client.get("/opportunities").status_code == 401
    assert client.get("/app/no-such-file.js").status_code == 404
