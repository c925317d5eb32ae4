"""The hand-computed cohort: seven opportunities of the `new` pipeline (KA, SOE) created in
March 2026, with a skip, a revert, pauses, a deferral, a win, losses and a void.

Stages: initial_contact(0) requirements(1) proposal(2) negotiation(3) signing(4). Days are
counted from T0; the figures below are worked out by hand in each test.

    A  d0 created · d2 → requirements · d5 → proposal · d10 → negotiation · d12 → signing ·
       d15 won (1000)
    B  d0 created · d4 → proposal (skips requirements) · d6 paused · d8 resumed ·
       d10 → negotiation · d11 reverted to proposal · d14 → negotiation · d20 lost
    C  d1 created · d3 paused · d5 lost while paused
    D  d1 created · d3 → requirements · d4 voided (a duplicate: left out of every figure)
    E  d2 created (500, closes 2026-05-20) · d4 → requirements · d7 → proposal · still open
    F  d2 created (300, closes 2026-04-10) · d9 paused · still paused
    G  d3 created (200, no close date) · d5 deferred · still deferred
"""

from datetime import date

from services.projections.tests.history import History, day


def cohort() -> dict[str, History]:
    a = (
        History(day(0))
        .advance("requirements", day(2))
        .advance("proposal", day(5))
        .advance("negotiation", day(10))
        .advance("signing", day(12))
        .win(day(15), "1000.00")
    )
    b = (
        History(day(0))
        .advance("proposal", day(4), ("requirements",))
        .pause(day(6))
        .resume(day(8))
        .advance("negotiation", day(10))
        .revert("proposal", day(11))
        .advance("negotiation", day(14))
        .lose(day(20))
    )
    c = History(day(1)).pause(day(3)).lose(day(5))
    d = History(day(1)).advance("requirements", day(3)).void(day(4))
    e = (
        History(day(2), amount="500.00", expected_close_on=date(2026, 5, 20))
        .advance("requirements", day(4))
        .advance("proposal", day(7))
    )
    f = History(day(2), amount="300.00", expected_close_on=date(2026, 4, 10)).pause(day(9))
    g = History(day(3), amount="200.00").defer(day(5), date(2026, 9, 1))
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g}
