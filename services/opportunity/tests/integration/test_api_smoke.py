"""The API answers a create and a read on both stores."""

from fastapi.testclient import TestClient

from tests.support.principals import auth, customer


def test_created_opportunity_can_be_read_back(client: TestClient) -> None:
    created = client.post(
        "/opportunities", json={"type": "new", "customer": customer()}, headers=auth("rep-1")
    )
    assert created.status_code == 201, created.text
    read = client.get(f"/opportunities/{created.json()['id']}", headers=auth("rep-1"))
    assert read.json()["stage"] == "initial_contact"
    assert read.json()["owner_id"] == "rep-1"
