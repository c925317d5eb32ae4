"""The role matrix of SPEC §4.4 over HTTP: each kind of principal against each command and query
of the opportunity service, on SQLite and on PostgreSQL.

A column is a principal and the opportunity it acts on. Unless the column says otherwise, that is
rep-1's opportunity in team east, first brought (by an admin) to where the command succeeds:
advanced for `revert`, paused for `resume`, deferred for `reactivate`, at signing for `win`,
in the pool for `claim`. A refusal must record nothing and name a `role.*` rule.

"Acts on own and pooled opportunities of own team" reads as: a rep reads a pooled opportunity
of the own team and claims it; every other command waits until the rep owns it (`rep-pool`).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.security.apps import COMMANDS, TO_POOL, Step, prepared, send, version_of
from tests.support.principals import auth, customer

# A cell is the status answered; a refusal (403) carries a letter for the rule it names:
# o role.owner (not the rep's own), t role.team (another team's), v role.viewer (a viewer only
# reads), m role.reclaim / role.assign (managing commands are not a rep's), i role.occurred_at
# (only service and admin import history), r role.read, n role.notifications.
# On the `list` row: 200, with the opportunity listed or hidden.
MATRIX_TEXT = """
                rep-own  rep-mate  rep-pool  rep-west  mgr-east  mgr-west  admin  service  viewer
create              201       201       201       201       201       201    201      201    403v
import             403i      403i      403i      403i      403i      403i    201      201    403i
advance             200      403o      403o      403t       200      403t    200      200    403v
revert              200      403o      403o      403t       200      403t    200      200    403v
follow-ups          200      403o      403o      403t       200      403t    200      200    403v
pause               200      403o      403o      403t       200      403t    200      200    403v
resume              200      403o      403o      403t       200      403t    200      200    403v
defer               200      403o      403o      403t       200      403t    200      200    403v
reactivate          200      403o      403o      403t       200      403t    200      200    403v
reclaim            403m      403m      403m      403t       200      403t    200      200    403v
assign             403m      403m      403m      403t       200      403t    200      200    403v
claim               200       200       200      403t       200      403t    200      200    403v
win                 200      403o      403o      403t       200      403t    200      200    403v
lose                200      403o      403o      403t       200      403t    200      200    403v
void                200      403o      403o      403t       200      403t    200      200    403v
update              200      403o      403o      403t       200      403t    200      200    403v
key-persons         200      403o      403o      403t       200      403t    200      200    403v
competitors         200      403o      403o      403t       200      403t    200      200    403v
documents           200      403o      403o      403t       200      403t    200      200    403v
import-command     403i      403i      403i      403i      403i      403i    200      200    403i
read                200      403r       200      403r       200      403r    200      200     200
history             200      403r       200      403r       200      403r    200      200     200
list             listed    hidden    listed    hidden    listed    hidden listed   listed  listed
pipelines           200       200       200       200       200       200    200      200     200
notifications      403n      403n      403n      403n      403n      403n    200      200    403n
"""
RULES = {
    "o": "role.owner",
    "t": "role.team",
    "v": "role.viewer",
    "i": "role.occurred_at",
    "r": "role.read",
    "n": "role.notifications",
}

# Column → (who acts, on what): "own" is rep-1's opportunity in team east; "pooled" one of team
# east in the pool.
COLUMNS = {
    "rep-own": ("rep-1", "own"),
    "rep-mate": ("rep-2", "own"),
    "rep-pool": ("rep-2", "pooled"),
    "rep-west": ("rep-3", "own"),
    "mgr-east": ("manager-east", "own"),
    "mgr-west": ("manager-west", "own"),
    "admin": ("admin", "own"),
    "service": ("service", "own"),
    "viewer": ("viewer", "own"),
}


def parse(text: str) -> dict[tuple[str, str], str]:
    header, *rows = text.strip().splitlines()
    columns = header.split()
    table = {}
    for row in rows:
        name, *cells = row.split()
        assert len(cells) == len(columns), row
        table.update({(name, column): cell for column, cell in zip(columns, cells, strict=True)})
    return table


MATRIX = parse(MATRIX_TEXT)
QUERIES = ("read", "history", "list", "pipelines", "notifications")


def test_the_matrix_has_a_row_for_every_command_and_query_and_no_other() -> None:
    assert {column for _, column in MATRIX} == set(COLUMNS)
    rows = {*COMMANDS, "create", "import", "import-command", *QUERIES}
    assert {row for row, _ in MATRIX} == rows


def target(client: TestClient, kind: str, steps: list[Step]) -> dict[str, Any]:
    """rep-1's opportunity after `steps` ("own"), or one in team east's pool ("pooled")."""
    return prepared(client, [TO_POOL] if kind == "pooled" else steps)


def listed(client: TestClient, uscc: str) -> int:
    answer = client.get("/opportunities", params={"uscc": uscc}, headers=auth("admin"))
    return int(answer.json()["total"])


def expected_status(row: str, column: str) -> int:
    cell = MATRIX[row, column]
    return 200 if cell in ("listed", "hidden") else int(cell[:3])


def assert_refused(answer: Response, row: str, column: str) -> None:
    letter = MATRIX[row, column][3:]
    rule = f"role.{row}" if letter == "m" else RULES[letter]
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["rule"] == rule, answer.text


@pytest.mark.parametrize("column", list(COLUMNS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_is_answered_as_the_matrix_says(
    opportunity_client: TestClient, command: str, column: str
) -> None:
    principal, kind = COLUMNS[column]
    body, steps = COMMANDS[command]
    oid = target(opportunity_client, kind, steps)["id"]
    before = version_of(opportunity_client, oid)

    answer = send(opportunity_client, oid, command, body, principal)

    if expected_status(command, column) == 403:
        assert_refused(answer, command, column)
        assert version_of(opportunity_client, oid) == before
    else:
        assert answer.status_code == expected_status(command, column), answer.text
        assert answer.json()["version"] == before + 1


@pytest.mark.parametrize("column", list(COLUMNS))
def test_a_command_importing_history_is_answered_as_the_matrix_says(
    opportunity_client: TestClient, column: str
) -> None:
    principal, kind = COLUMNS[column]
    oid = target(opportunity_client, kind, [])["id"]
    before = version_of(opportunity_client, oid)
    body = {"kind": "call", "note": "n", "occurred_at": datetime.now(UTC).isoformat()}

    answer = send(opportunity_client, oid, "follow-ups", body, principal)

    if expected_status("import-command", column) == 403:
        assert_refused(answer, "import-command", column)
        assert version_of(opportunity_client, oid) == before
    else:
        assert answer.status_code == expected_status("import-command", column), answer.text
        assert answer.json()["version"] == before + 1


@pytest.mark.parametrize("row", ["create", "import"])
@pytest.mark.parametrize("column", list(COLUMNS))
def test_a_create_is_answered_as_the_matrix_says(
    opportunity_client: TestClient, row: str, column: str
) -> None:
    """Within the principal's own reach (owner and team left to their defaults); `import`
    passes occurred_at."""
    principal, _ = COLUMNS[column]
    sent = customer()
    body: dict[str, Any] = {"type": "new", "customer": sent}
    if row == "import":
        body["occurred_at"] = (datetime.now(UTC) - timedelta(days=30)).isoformat()

    answer = opportunity_client.post("/opportunities", json=body, headers=auth(principal))

    if expected_status(row, column) == 403:
        assert_refused(answer, row, column)
        assert listed(opportunity_client, sent["uscc"]) == 0
    else:
        assert answer.status_code == expected_status(row, column), answer.text
        assert listed(opportunity_client, sent["uscc"]) == 1


@pytest.mark.parametrize("row", QUERIES)
@pytest.mark.parametrize("column", list(COLUMNS))
def test_a_query_is_answered_as_the_matrix_says(
    opportunity_client: TestClient, row: str, column: str
) -> None:
    principal, kind = COLUMNS[column]
    state = target(opportunity_client, kind, [])
    oid = state["id"]
    paths = {
        "read": (f"/opportunities/{oid}", {}),
        "history": (f"/opportunities/{oid}/history", {}),
        "list": ("/opportunities", {"uscc": state["customer"]["uscc"]}),
        "pipelines": ("/pipelines", {}),
        "notifications": ("/notifications", {"limit": 1}),
    }
    path, params = paths[row]

    answer = opportunity_client.get(path, params=params, headers=auth(principal))

    if expected_status(row, column) == 403:
        assert_refused(answer, row, column)
    else:
        assert answer.status_code == expected_status(row, column), answer.text
    if row == "list":
        ids = {item["id"] for item in answer.json()["items"]}
        assert (oid in ids) is (MATRIX[row, column] == "listed")
