"""The opportunity service as a real process: durability across kill -9, refusal of bad
configuration at start, the command line, and two copies sharing one event store."""

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis.auth import DEV_PRINCIPALS, Principal
from contracts import topics
from contracts.customer import Customer
from contracts.export import EVENT_PAYLOADS
from contracts.rules import DEFAULT_RULES_FILE, Role, load_rulebook
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.unit_of_work import Conflict, Context
from opportunity.domain.errors import DuplicateOpportunity
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.uniqueness import ActiveOpportunityIndex
from opportunity.main import build_app
from opportunity.settings import Settings, eventsourcing_env
from services.opportunity.tests.deployed import STORES, new_event_store
from tests.support.principals import PRINCIPALS, TOKENS, auth, customer
from tests.support.processes import (
    free_port,
    is_listening,
    run_oppstream,
    running_service,
    service_env,
    start_service,
)

pytestmark = pytest.mark.slow

# A refusal at start must come well before anything like a request timeout.
QUICK_EXIT_SECONDS = 20.0


@pytest.fixture(params=STORES)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store nobody else uses: a SQLite file in tmp_path, or a new PostgreSQL database."""
    with new_event_store(request.param, tmp_path, "oppstream_process") as url:
        yield url


@pytest.fixture
def any_store(tmp_path: Path) -> Iterator[str]:
    """A store for a start refused before the store is opened (a broken rules or auth file):
    which kind does not matter, so the quicker one."""
    with new_event_store("sqlite", tmp_path, "oppstream_process") as url:
        yield url


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The child's working directory, so nothing it writes (var/, logs) lands in the repo."""
    path = tmp_path / "run"
    path.mkdir()
    return path


# -- a command answered 2xx is durable (SPEC §7) ---------------------------------------------


UNKNOWN = "not-a-known-token-0123456789"


@dataclass
class Answer:
    version: int
    stage: str
    status: str
    event_type: str
    note: str | None = None


def test_answered_commands_survive_kill_9(fresh_store: str, workdir: Path) -> None:
    env = service_env(workdir, eventstore_url=fresh_store)
    answers: dict[str, list[Answer]] = {}
    service = start_service("opportunity", env, workdir)
    try:
        with httpx.Client(base_url=service.url, headers=auth("rep-1"), timeout=10.0) as client:
            # Sequential creates and advances, one opportunity further along than the other.
            for steps in range(4):
                created = client.post(
                    "/opportunities",
                    json={"type": "new", "customer": customer(), "amount": "1200.50"},
                )
                assert created.status_code == 201, created.text
                oid = created.json()["id"]
                answers[oid] = [_answer(created.json(), "OpportunityCreated")]
                for to_stage in ("requirements", "proposal", "negotiation")[:steps]:
                    moved = client.post(
                        f"/opportunities/{oid}/advance", json={"to_stage": to_stage}
                    )
                    assert moved.status_code == 200, moved.text
                    answers[oid].append(_answer(moved.json(), "StageAdvanced"))
            stranger = client.get("/pipelines", headers={"Authorization": f"Bearer {UNKNOWN}"})
            assert stranger.status_code == 401
            # Then concurrent follow-ups (group commit puts them in shared transactions);
            # the process is killed while some are still in flight.
            answered_follow_ups = _follow_ups_until_killed(
                service.url, list(answers), service.kill_hard
            )
    finally:
        service.stop()
    assert service.process.returncode == -9, service.output()
    for token in (*TOKENS.values(), UNKNOWN):
        assert token not in service.output()
    for oid, follow_ups in answered_follow_ups.items():
        answers[oid].extend(follow_ups)

    second = start_service("opportunity", env, workdir)
    try:
        with httpx.Client(base_url=second.url, headers=auth("rep-1"), timeout=10.0) as client:
            for oid, answered in answers.items():
                current = client.get(f"/opportunities/{oid}")
                assert current.status_code == 200, current.text
                last = max(answered, key=lambda a: a.version)
                # Commands may have been recorded and not answered before the kill, never
                # the reverse.
                assert current.json()["version"] >= last.version
                history = client.get(f"/opportunities/{oid}/history").json()["events"]
                versions = [e["version"] for e in history]
                assert versions == list(range(1, len(history) + 1))
                by_version = {e["version"]: e for e in history}
                for answer in answered:
                    recorded = by_version[answer.version]
                    assert recorded["event_type"] == answer.event_type
                    if answer.note is not None:
                        assert recorded["payload"]["note"] == answer.note
                stages = [a for a in answered if a.event_type != "FollowUpLogged"]
                assert current.json()["stage"] == stages[-1].stage
                assert current.json()["status"] == "open"
    finally:
        second.stop()


def _answer(state: dict[str, Any], event_type: str, note: str | None = None) -> Answer:
    return Answer(state["version"], state["stage"], state["status"], event_type, note)


def _follow_ups_until_killed(
    url: str, opportunity_ids: list[str], kill: Callable[[], None], enough: int = 40
) -> dict[str, list[Answer]]:
    """One thread per opportunity logs follow-ups in a loop; once `enough` were answered the
    process is killed. Returns every follow-up that was answered 201/200."""
    answered: dict[str, list[Answer]] = {oid: [] for oid in opportunity_ids}
    refused: list[str] = []
    count = threading.Semaphore(0)
    killed = threading.Event()

    def log(oid: str) -> None:
        with httpx.Client(base_url=url, headers=auth("rep-1"), timeout=10.0) as client:
            n = 0
            while not killed.is_set():
                note = f"{oid}/{n}"
                n += 1
                try:
                    answer = client.post(
                        f"/opportunities/{oid}/follow-ups", json={"kind": "call", "note": note}
                    )
                except httpx.TransportError:
                    return
                if not answer.is_success:
                    refused.append(f"{answer.status_code} {answer.text}")
                    return
                answered[oid].append(_answer(answer.json(), "FollowUpLogged", note))
                count.release()

    with ThreadPoolExecutor(len(opportunity_ids)) as pool:
        running = [pool.submit(log, oid) for oid in opportunity_ids]
        deadline = time.monotonic() + 60.0
        try:
            for _ in range(enough):
                if not count.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
        finally:
            kill()
            killed.set()
        for future in running:
            future.result(timeout=30.0)
    assert not refused, refused
    assert sum(len(a) for a in answered.values()) >= enough, "follow-ups not answered in time"
    return answered


# -- a bad rules file stops the service (SPEC §6) --------------------------------------------


def _replace_line(text: str, old: str, new: str) -> tuple[str, int]:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == old)
    lines[index] = lines[index].replace(old, new)
    return "\n".join(lines) + "\n", index + 1


def _probability_out_of_range(text: str) -> tuple[str, str, int]:
    broken, line = _replace_line(text, "probability: 0.1", "probability: 4")
    return broken, "pipelines.0.stages.0.probability", line


def _unknown_stage_key(text: str) -> tuple[str, str, int]:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("guidance:"))
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines.insert(index + 1, f"{indent}colour: blue")
    return "\n".join(lines) + "\n", "pipelines.0.stages.0.colour", index + 2


def _invalid_duration(text: str) -> tuple[str, str, int]:
    broken, line = _replace_line(text, "follow_up_after: P7D", "follow_up_after: 7 days")
    return broken, "reminders.rules.0.follow_up_after", line


@pytest.mark.parametrize(
    "breakage",
    [_probability_out_of_range, _unknown_stage_key, _invalid_duration],
    ids=["probability-4", "unknown-key", "invalid-duration"],
)
def test_broken_rules_file_stops_start_naming_key_and_line(
    breakage: Callable[[str], tuple[str, str, int]], any_store: str, workdir: Path
) -> None:
    text, key, line = breakage(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(text, encoding="utf-8")
    env = service_env(workdir, eventstore_url=any_store, rules_file=str(rules_file))

    port = free_port()
    started = time.monotonic()
    result = run_oppstream(["serve", "opportunity", "--port", str(port)], env, workdir)
    elapsed = time.monotonic() - started

    assert result.returncode != 0, result.stdout + result.stderr
    assert elapsed < QUICK_EXIT_SECONDS
    # The key and its line are named together, on one line of the message.
    assert any(
        key in said and re.search(rf"\bline {line}\b", said) for said in result.stderr.splitlines()
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert not is_listening(port)


# -- a bad auth file stops the service, without printing a token (SPEC §4.4) ------------------


def _principals(**changes: Any) -> list[dict[str, Any]]:
    """The test principals, the first changed by `changes`."""
    entries = [
        {"token": TOKENS[pid], "id": pid, "role": role.value, "team_id": team}
        for pid, role, team in DEV_PRINCIPALS
    ]
    entries[0] = {**entries[0], **changes}
    return entries


AUTH_CASES = {
    "short-token": (
        "auth.json",
        json.dumps({"principals": _principals(token="short-secret")}),
        "principals.0.token",
    ),
    "unknown-role": (
        "auth.json",
        json.dumps({"principals": _principals(role="boss")}),
        "principals.0.role",
    ),
    "unknown-key": (
        "auth.yaml",
        "principals:\n"
        f"  - token: {TOKENS['rep-1']}\n    id: rep-1\n    role: rep\n    password: hunter2hunter2\n",
        "principals.0.password",
    ),
    "no-principals": ("auth.json", json.dumps({"principals": []}), "principals: "),
    "not-json": (
        "auth.json",
        json.dumps({"principals": _principals()})[:-5],
        "not valid JSON",
    ),
    "missing": ("absent.json", None, "cannot be read"),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_broken_auth_file_stops_start_and_never_prints_a_token(
    case: str, any_store: str, workdir: Path
) -> None:
    name, content, problem = AUTH_CASES[case]
    auth_file = workdir / "secrets" / name
    if content is not None:
        auth_file.parent.mkdir()
        auth_file.write_text(content, encoding="utf-8")
    env = service_env(workdir, eventstore_url=any_store)
    env["OPPSTREAM_AUTH_FILE"] = str(auth_file)

    port = free_port()
    started = time.monotonic()
    result = run_oppstream(["serve", "opportunity", "--port", str(port)], env, workdir)
    elapsed = time.monotonic() - started

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < QUICK_EXIT_SECONDS
    assert problem in result.stderr, result.stderr
    assert str(auth_file) in result.stderr
    assert "Traceback" not in result.stderr
    for secret in [*TOKENS.values(), "short-secret", "hunter2hunter2"]:
        assert secret not in output
    assert not is_listening(port)


# -- the command line --------------------------------------------------------------------------


def test_port_that_is_not_a_number_exits_2_naming_port(workdir: Path) -> None:
    result = run_oppstream(
        ["serve", "opportunity", "--port", "notanumber"], service_env(workdir), workdir
    )
    assert result.returncode == 2
    assert "--port" in result.stderr
    assert "notanumber" in result.stderr
    assert "Traceback" not in result.stderr


def test_contracts_export_writes_schemas_and_asyncapi(workdir: Path) -> None:
    target = workdir / "exported"
    result = run_oppstream(["contracts", "export", str(target)], service_env(workdir), workdir)
    assert result.returncode == 0, result.stderr

    written = sorted(p for p in target.rglob("*") if p.is_file())
    assert sorted(Path(line) for line in result.stdout.split()) == written
    documents = {
        p.relative_to(target).as_posix(): json.loads(p.read_text("utf-8")) for p in written
    }
    for name in ("Envelope.v1.schema.json", "QualifiedLead.v1.schema.json", "Rulebook.schema.json"):
        assert documents[name]["type"] == "object"
    events = {name for name in documents if name.startswith("events/")}
    assert {name.split("/")[1].split(".")[0] for name in events} == set(EVENT_PAYLOADS)
    assert {"OpportunityCreated", "CustomerRecorded", "TargetSet", "CompetitionDefined"} <= set(
        EVENT_PAYLOADS
    )
    asyncapi = documents["asyncapi.json"]
    assert asyncapi["asyncapi"].startswith(("2.", "3."))
    channels = json.dumps(asyncapi["channels"])
    for topic in topics.ALL:
        assert topic in channels


# -- two copies on one store: at most one active opportunity per (uscc, type) (SPEC §2.4) ------

SERVICE = Principal("service", Role.SERVICE)
THREADS = 8
ROUNDS = 4


def _plain_copy(url: str) -> OpportunityApp:
    return OpportunityApp(load_rulebook(), env=eventsourcing_env(url))


def _deployed_copy(url: str) -> OpportunityApp:
    """The application exactly as build_app configures it (aggregate cache and all)."""
    service = build_app(Settings(eventstore_url=url), rules=load_rulebook(), principals=PRINCIPALS)
    app: OpportunityApp = service.state.api.app
    return app


@pytest.mark.parametrize("make_copy", [_plain_copy, _deployed_copy], ids=["plain", "as-deployed"])
def test_two_copies_racing_to_create_the_same_customer_and_type_leave_one(
    fresh_store: str, make_copy: Callable[[str], OpportunityApp]
) -> None:
    copies = [make_copy(fresh_store), make_copy(fresh_store)]
    reader = _plain_copy(fresh_store)
    try:
        for _ in range(ROUNDS):
            buyer = Customer.model_validate(customer())
            outcomes = _race_to_create(copies, buyer)

            created = [o for o in outcomes if isinstance(o, Opportunity)]
            refused = [o for o in outcomes if isinstance(o, DuplicateOpportunity | Conflict)]
            unexpected = [
                o
                for o in outcomes
                if not isinstance(o, Opportunity | DuplicateOpportunity | Conflict)
            ]
            assert not unexpected, unexpected
            assert len(created) == 1, outcomes
            winner = str(created[0].id)
            for duplicate in (o for o in refused if isinstance(o, DuplicateOpportunity)):
                assert duplicate.existing_id == winner

            index: ActiveOpportunityIndex = reader.repository.get(
                ActiveOpportunityIndex.create_id(uscc=buyer.uscc, type="new")
            )
            assert index.opportunity_id == winner
            recorded = [
                event.originator_id
                for event in map(
                    reader.mapper.to_domain_event,
                    reader.recorder.select_notifications(start=None, limit=100_000),
                )
                if type(event).__name__ == "OpportunityCreated"
                and getattr(event, "customer", {}).get("uscc") == buyer.uscc
            ]
            assert [str(i) for i in recorded] == [winner]
    finally:
        for app in (*copies, reader):
            app.close()


def _race_to_create(copies: list[OpportunityApp], buyer: Customer) -> list[object]:
    """THREADS creates of the same customer and type, alternating copies, released together."""
    start = threading.Barrier(THREADS)

    def create(n: int) -> object:
        app = copies[n % len(copies)]
        new = NewOpportunity(type="new", customer=buyer, owner_id="rep-1", team_id="east")
        start.wait(timeout=30.0)
        try:
            return app.run(lambda uow: app.create(uow, new, Context(SERVICE, datetime.now(UTC))))
        except Exception as exc:  # the outcome is what the test asserts on
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(create, range(THREADS), timeout=120.0))


# -- two copies as processes behind one load balancer: each sees what the other wrote ----------


@dataclass
class Copies:
    a: httpx.Client
    b: httpx.Client


@pytest.fixture(scope="module", params=STORES)
def copies(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Copies]:
    """Two `oppstream serve opportunity` processes on one store, shared by this section."""
    workdir = tmp_path_factory.mktemp(f"copies-{request.param}")
    with ExitStack() as stack:
        url = stack.enter_context(new_event_store(request.param, workdir, "oppstream_copies"))
        env = service_env(workdir, eventstore_url=url)
        first = stack.enter_context(running_service("opportunity", env, workdir / "a"))
        second = stack.enter_context(running_service("opportunity", env, workdir / "b"))
        a = stack.enter_context(httpx.Client(base_url=first.url, headers=auth("rep-1"), timeout=10))
        b = stack.enter_context(
            httpx.Client(base_url=second.url, headers=auth("rep-1"), timeout=10)
        )
        yield Copies(a, b)


def _create(client: httpx.Client, buyer: dict[str, str] | None = None) -> dict[str, Any]:
    created = client.post("/opportunities", json={"type": "new", "customer": buyer or customer()})
    assert created.status_code == 201, created.text
    state: dict[str, Any] = created.json()
    return state


def test_a_copy_reads_what_the_other_copy_wrote(copies: Copies) -> None:
    oid = _create(copies.a)["id"]
    moved = copies.b.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"})
    assert moved.status_code == 200, moved.text
    seen = copies.a.get(f"/opportunities/{oid}")
    assert (seen.json()["version"], seen.json()["stage"]) == (2, "requirements")


def test_a_copy_creates_again_once_the_other_copy_voided_the_active_one(copies: Copies) -> None:
    buyer = customer()
    first = _create(copies.a, buyer)
    voided = copies.b.post(f"/opportunities/{first['id']}/void", json={"reason": "mistake"})
    assert voided.status_code == 200, voided.text
    again = copies.a.post("/opportunities", json={"type": "new", "customer": buyer})
    assert again.status_code == 201, again.text


def test_if_match_of_the_version_written_by_the_other_copy_is_accepted(copies: Copies) -> None:
    oid = _create(copies.a)["id"]
    moved = copies.b.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"})
    assert moved.json()["version"] == 2, moved.text
    again = copies.a.post(
        f"/opportunities/{oid}/advance", json={"to_stage": "proposal"}, headers={"If-Match": "2"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 3


def test_a_copy_resumes_what_the_other_copy_paused(copies: Copies) -> None:
    oid = _create(copies.a)["id"]
    paused = copies.b.post(f"/opportunities/{oid}/pause", json={"reason": "budget freeze"})
    assert paused.status_code == 200, paused.text
    resumed = copies.a.post(f"/opportunities/{oid}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "open"
