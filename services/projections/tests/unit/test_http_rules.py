"""Filters as the HTTP API reads them, and who may read what (SPEC §4.2, §4.4)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.exceptions import RequestValidationError

from chassis.auth import Forbidden, Principal
from contracts.rules import Role
from projections.application.read_model import Query
from projections.entrypoints.http import parse_instant, scoped

ZONE = ZoneInfo("Asia/Shanghai")


def test_a_date_is_midnight_in_the_business_time_zone() -> None:
    assert parse_instant("2026-03-03", "from", ZONE) == datetime(2026, 3, 2, 16, tzinfo=UTC)


def test_an_instant_keeps_its_offset_and_a_naive_one_is_read_in_the_business_zone() -> None:
    assert parse_instant("2026-03-03T09:00:00Z", "as_of", ZONE) == datetime(
        2026, 3, 3, 9, tzinfo=UTC
    )
    assert parse_instant("2026-03-03T09:00:00", "as_of", ZONE) == datetime(
        2026, 3, 3, 1, tzinfo=UTC
    )


def test_an_unreadable_instant_names_its_field() -> None:
    with pytest.raises(RequestValidationError) as raised:
        parse_instant("soon", "as_of", ZONE)
    assert raised.value.errors()[0]["loc"] == ("query", "as_of")


def test_readers_of_everything_get_the_query_unchanged() -> None:
    q = Query(team_id="west")
    for role in (Role.VIEWER, Role.ADMIN, Role.SERVICE):
        assert scoped(Principal("x", role), q) == q


def test_a_manager_is_kept_to_the_own_team() -> None:
    assert scoped(Principal("m", Role.MANAGER, "east"), Query()).scope_team_id == "east"
    with pytest.raises(Forbidden) as raised:
        scoped(Principal("m", Role.MANAGER, "east"), Query(team_id="west"))
    assert raised.value.field == "team_id"
    with pytest.raises(Forbidden):
        scoped(Principal("m", Role.MANAGER, None), Query())


def test_a_rep_is_kept_to_the_own_opportunities() -> None:
    assert scoped(Principal("rep-1", Role.REP, "east"), Query()).scope_owner_id == "rep-1"
    with pytest.raises(Forbidden) as raised:
        scoped(Principal("rep-1", Role.REP, "east"), Query(owner_id="rep-2"))
    assert raised.value.field == "owner_id"
    with pytest.raises(Forbidden) as raised:
        scoped(Principal("rep-1", Role.REP, "east"), Query(team_id="west"))
    assert raised.value.field == "team_id"
