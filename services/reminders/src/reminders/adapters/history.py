"""The recorded history, read from the opportunity service's `GET /notifications` feed with a
service or admin token of the auth file."""

from pathlib import Path

import httpx

from chassis.auth import auth_file_path, load_principals
from contracts.envelope import Envelope
from contracts.rules import Role

PAGE = 5000


def fetch_history(
    source_url: str,
    token: str,
    transport: httpx.BaseTransport | None = None,
    page: int = PAGE,
) -> list[Envelope]:
    """Every recorded event, in recording order, from the opportunity service's feed."""
    found: list[Envelope] = []
    with httpx.Client(
        base_url=source_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
        transport=transport,
    ) as client:
        after = 0
        while True:
            answer = client.get("/notifications", params={"after": after, "limit": page})
            answer.raise_for_status()
            body = answer.json()
            items = body["items"]
            if not items:
                return found
            found.extend(Envelope.model_validate(item["envelope"]) for item in items)
            after = int(body["next_after"])


def service_token(auth_file: Path | None) -> str:
    """The token of the auth file's first `service` principal (else `admin`): what reads the
    history when the command line is given none."""
    credentials = load_principals(auth_file_path(auth_file)).credentials
    for role in (Role.SERVICE, Role.ADMIN):
        for credential in credentials:
            if credential.role is role:
                return credential.token
    raise LookupError("the auth file has no service or admin principal to read the history")
