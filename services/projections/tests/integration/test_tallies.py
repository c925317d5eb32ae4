"""The reports through the tallies equal the reports from the tables alone (what they answer
while `projection_tallies_missing` has a row), at every instant, window and segment, after
live apply, redelivery and rebuild, on SQLite and PostgreSQL."""

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from contracts.rules import load_rulebook
from projections.adapters.feed import read_listed
from projections.adapters.schema import LIVE
from projections.adapters.store import Store
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Service, alembic
from services.projections.tests.history import History, day, envelopes_of

REPORTS = ("/funnel", "/dwell", "/win-rates", "/forecast")


def histories() -> list[History]:
    """The hand-computed cohort, last year's deals, and deals that change owners, currencies,
    amounts and segments, win in other months, are voided after a win of another, and reach
    into the small hours of a day (the business day boundary)."""
    found = list(cohort().values())
    found += [
        History(day(-300)).advance("requirements", day(-290)).win(day(-200), "70.00"),
        History(day(-310), tier="SMB", ownership="PRIVATE").lose(day(-305)),
        History(day(0.7), tier="SMB", amount="12.34", expected_close_on=date(2026, 4, 30))
        .assign("rep-2", day(1.2), "west")
        .advance("requirements", day(1.6))
        .update(day(2.65), amount="99.99", expected_close_on="2026-06-01")
        .win(day(8.64), "120.50", currency="USD"),
        History(day(0.6), ownership="FOREIGN", expected_close_on=date(2026, 3, 31))
        .pause(day(0.65))
        .resume(day(2.62))
        .advance("proposal", day(2.63), ("requirements",))
        .void(day(6.7)),
        History(day(1.64), owner_id=None, team_id=None, expected_close_on=date(2026, 5, 1))
        .assign("rep-3", day(1.66), "east")
        .defer(day(3.61), date(2026, 4, 1))
        .reactivate(day(4.62))
        .advance("requirements", day(9.63)),
    ]
    return found


def instants() -> list[str]:
    # d0 is 09:00 in Shanghai: d(n + 0.625) is midnight, d(n + 0.6249…) just before it.
    # Every day of events and the days between them (nothing changes on 5, 7 and 10), then
    # a few of the quiet weeks after.
    found = [day(-1), day(-250), day(15.3), day(21.625), day(30), day(40)]
    for n in range(0, 11):
        found += [day(n + 0.3), day(n + 0.625), day(n + 0.6)]
    found += [day(3.61), day(3.61) - timedelta(microseconds=1), day(6.7)]
    # In the hour of an event, before and after it.
    found += [day(1.65), day(2.63), day(2.635), day(3.615), day(9.64), day(8.6401)]
    # In the five-minute slot of an event (the part a report as of then replays), after it.
    found += [day(1.6401), day(2.6301), day(6.7001)]
    return [d.isoformat() for d in found]


WINDOWS: list[dict[str, str]] = [
    {},
    {"from": "2026-03-01", "to": "2026-04-01"},
    {"from": "2026-03-03", "to": "2026-03-05"},
    {"from": day(0.5).isoformat(), "to": day(2.7).isoformat()},
    {"from": day(0.65).isoformat()},
    {"to": day(1.1).isoformat()},
    {"from": day(1.1).isoformat(), "to": day(1.3).isoformat()},
    {"tier": "KA"},
    {"tier": "SMB", "from": "2026-03-02"},
    {"ownership": "FOREIGN", "include_voided": "true"},
    {"type": "new", "include_voided": "true", "to": day(1.2).isoformat()},
]


def answers(service: Service, *, few: bool = False) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    every = instants()
    for path in REPORTS:
        for n, window in enumerate(WINDOWS):
            # Every instant for the whole cohort and a segment; some for the other windows.
            moments = every[:: 7 if few else (1 if n in (0, 7) else 5)]
            for as_of in [None, *moments]:
                params = dict(window, **({} if as_of is None else {"as_of": as_of}))
                found[(path, *sorted(params.items()))] = service.get(path, **params)  # type: ignore[arg-type]
    for path in REPORTS:  # a cohort that ends at the instant the report is as of
        for as_of in every[::3]:
            params = {"as_of": as_of, "to": as_of, "from": "2025-01-01"}
            found[(path, *sorted(params.items()))] = service.get(path, **params)
    for period in ("2026", "2026-03", "2026-Q2", "2025"):
        for as_of in [None, *every[:: 7 if few else 2]]:
            params = {"period": period, **({} if as_of is None else {"as_of": as_of})}
            found[("/attainment", *sorted(params.items()))] = service.get("/attainment", **params)
    return found


def from_tables(service: Service, few: bool = False) -> dict[tuple[str, ...], Any]:
    with service.store.engine.begin() as conn:
        conn.execute(sa.insert(LIVE.tallies_missing).values(reason="test", since=day(0)))
    try:
        return answers(service, few=few)
    finally:
        with service.store.engine.begin() as conn:
            conn.execute(sa.delete(LIVE.tallies_missing))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def differing(tallied: dict[Any, Any], tables: dict[Any, Any]) -> list[Any]:
    assert tallied.keys() == tables.keys()
    return [key for key in tallied if not same(tallied[key], tables[key])]


@pytest.mark.timeout(300)  # every report at every instant, twice: minutes on a busy machine
def test_every_report_through_the_tallies_equals_the_tables_answer(service: Service) -> None:
    service.feed(*histories())

    tallied = answers(service)

    assert differing(tallied, from_tables(service)) == []
    # Not vacuous: the figures move over the instants.
    reached = {
        tallied[("/funnel", ("as_of", at))]["pipelines"][0]["stages"][1]["reached"]
        for at in instants()
    }
    assert len(reached) > 3


def test_redelivered_and_piecemeal_batches_leave_the_tallies_as_one_batch_does(
    service: Service,
) -> None:
    envelopes = envelopes_of(*histories())
    for start in range(0, len(envelopes), 7):
        service.feed_envelopes(envelopes[start : start + 7])
    service.feed_envelopes(envelopes[::3])  # redelivered

    assert differing(answers(service, few=True), from_tables(service, few=True)) == []


def test_a_migrated_database_reads_the_tables_until_rebuilt(service: Service) -> None:
    service.feed(*histories())
    with service.store.engine.begin() as conn:
        for tally in LIVE.tallies.values():
            conn.execute(sa.delete(tally.total))
            conn.execute(sa.delete(tally.by_day))

    # Empty tallies answer nothing; marked missing (as migration 0009 does), the tables answer.
    assert service.get("/funnel")["pipelines"][0]["stages"][0]["reached"] == 0
    assert service.client.get("/readyz").json()["tallies"] == "ok"
    with service.store.engine.begin() as conn:
        conn.execute(sa.insert(LIVE.tallies_missing).values(reason="migrated", since=day(0)))
    assert service.get("/funnel")["pipelines"][0]["stages"][0]["reached"] == 10
    ready = service.client.get("/readyz")
    assert (ready.status_code, ready.json()["tallies"]) == (200, "missing: migrated")


def test_revision_0009_marks_the_tallies_missing_where_events_were_applied(
    empty: sa.Engine,
) -> None:
    alembic(empty, "upgrade", "head")
    with empty.connect() as conn:
        assert conn.execute(sa.select(LIVE.tallies_missing)).all() == []  # a new database
    store = Store(empty, LIVE, Projector(PipelineIndex(load_rulebook()), ZoneInfo("Asia/Shanghai")))
    store.apply_events([read_listed(e) for e in envelopes_of(*cohort().values())])
    alembic(empty, "downgrade", "0008")

    alembic(empty, "upgrade", "0009")

    with empty.connect() as conn:
        (reason,) = conn.execute(sa.select(LIVE.tallies_missing.c.reason)).one()
        assert sa.inspect(conn).has_table("bi_tally_cohort_by_hour")
        assert sa.inspect(conn).has_table("bi_tally_cohort_by_slot")
    assert "oppstream projections rebuild" in reason
