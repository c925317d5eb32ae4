"""A store that cannot be reached while commands run: the batch is saved by nobody and every
caller of it hears the store's error (the HTTP side answers 503, never 2xx); a statement is
tried again only briefly."""

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.rules import Role, load_rulebook
from opportunity.adapters.pgrecorder import retry_briefly
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.group_commit import GroupCommitter
from opportunity.application.unit_of_work import Context, NotFound, UnitOfWork, Work
from opportunity.metrics import Metrics
from tests.support.principals import customer

ADMIN = Principal("admin", Role.ADMIN)


def in_memory() -> OpportunityApp:
    return OpportunityApp(load_rulebook(), env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def creating(app: OpportunityApp) -> tuple[NewOpportunity, Work[Any]]:
    new = NewOpportunity(
        type="new",
        customer=Customer.model_validate(customer()),
        owner_id="rep-1",
        team_id="east",
    )
    return new, lambda uow: app.create(uow, new, Context(ADMIN, datetime.now(UTC)))


def store_away(_: UnitOfWork) -> None:
    """A command whose read finds the store gone, as eventsourcing reports it."""
    try:
        raise psycopg.OperationalError("connection failed: Connection refused")
    except psycopg.OperationalError as exc:
        raise OperationalError(str(exc)) from exc


def refused(_: UnitOfWork) -> None:
    raise NotFound("no opportunity 42")


def test_a_batch_that_meets_a_store_gone_is_saved_by_nobody() -> None:
    app = in_memory()
    new, create = creating(app)
    with pytest.raises(OperationalError):
        app.run_batch([create, store_away])
    with pytest.raises(NotFound):
        app.opportunity(new.id)


def test_a_command_refused_for_itself_leaves_the_others_of_its_batch_saved() -> None:
    app = in_memory()
    new, create = creating(app)
    created, not_found = app.run_batch([create, refused])
    assert created.error is None
    assert isinstance(not_found.error, NotFound)
    assert app.opportunity(new.id).version == 1


async def test_every_caller_of_a_batch_that_failed_hears_the_error() -> None:
    app = in_memory()
    committer = GroupCommitter(app, max_batch=10, writers=1, batch_sizes=Metrics().batch_sizes)
    new, create = creating(app)
    saved: list[bool] = []
    committer.on_saved = lambda: saved.append(True)
    try:
        answers = await asyncio.gather(
            committer.submit(create), committer.submit(store_away), return_exceptions=True
        )
    finally:
        await committer.close()
    assert [type(answer) for answer in answers] == [OperationalError, OperationalError]
    assert saved == []
    with pytest.raises(NotFound):
        app.opportunity(new.id)


def test_a_statement_is_tried_again_only_briefly() -> None:
    attempts: list[float] = []

    def store_gone() -> None:
        attempts.append(time.monotonic())
        raise OperationalError("couldn't get a connection after 3.00 sec")

    bounded = retry_briefly(store_gone, attempts=10, pause=0.01, seconds=0.05)
    with pytest.raises(OperationalError):
        bounded()
    assert 2 <= len(attempts) < 10
    assert attempts[-1] - attempts[0] < 0.1


def test_a_lost_connection_is_replaced_by_the_next_attempt() -> None:
    answers: list[Exception | str] = [
        OperationalError("server closed the connection unexpectedly"),
        OperationalError("server closed the connection unexpectedly"),
        "recorded",
    ]

    def first_connections_lost() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_briefly(first_connections_lost, pause=0.01)() == "recorded"
