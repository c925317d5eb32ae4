"""The demo prints the funnel the projections service serves."""

import time

import httpx
import pytest
from rich.console import Console

from oppstream.demo import Year, tokens
from oppstream.plans import sprint_id
from oppstream.report import print_report
from oppstream.scenes import act_out
from oppstream.up import System

pytestmark = pytest.mark.slow


def test_the_printed_funnel_equals_the_funnel_endpoint(seeded: System) -> None:
    console = Console(record=True, width=200)
    printed = print_report(console, seeded, tokens()["admin"], time.monotonic())
    served = httpx.get(
        f"{seeded.url('projections')}/funnel",
        headers={"Authorization": f"Bearer {tokens()['viewer']}"},
    ).json()
    stable = ("stage", "reached", "conversion_rate", "conversion_days", "completed_visits")

    def figures(funnel: dict) -> list:
        return [
            [{k: s[k] for k in stable} for s in p["stages"]] + [p["won"]]
            for p in funnel["pipelines"]
        ]

    assert figures(printed) == figures(served)
    text = console.export_text()
    for pipeline in served["pipelines"]:
        assert pipeline["pipeline_id"] in text
        for stage in pipeline["stages"]:
            assert stage["label"] in text
            assert f"{stage['reached']}" in text
    assert sum(p["stages"][0]["reached"] for p in served["pipelines"]) >= 80


def test_every_service_of_the_system_is_ready(seeded: System) -> None:
    for name in ("opportunity", "projections", "reminders"):
        assert httpx.get(f"{seeded.url(name)}/readyz").status_code == 200, name


def test_the_demo_scenes_show_the_pool_rules_and_a_decision_chain(
    seeded_year: tuple[System, Year],
) -> None:
    system, year = seeded_year
    console = Console(record=True, width=200)
    act_out(console, system.url("opportunity"), tokens(), year.deals, year.ids)
    text = console.export_text()
    assert "pool.previous_owner_cooldown" in text
    assert "pool.claim_limit_per_day of rule ka-pool (limit 2, count 2)" in text
    assert "the least-loaded rep of team" in text
    assert "信息部经理" in text
    assert "making 王建国 report to 赵磊 is refused: HTTP 422" in text
    assert "Pool standing" in text


def test_the_demo_sets_a_sales_plan_and_prints_its_attainment(
    seeded_year: tuple[System, Year],
) -> None:
    system, year = seeded_year
    assert year.plan.refused == []
    # The company, two teams × two metrics, six reps, two adjustments.
    assert len(year.plan.targets) == 1 + 4 + 6 + 2
    assert year.plan.competitions == [
        sprint_id(year.plan.quarter),
        f"east-follow-ups-{year.plan.quarter.lower()}",
    ]
    viewer = {"Authorization": f"Bearer {tokens()['viewer']}"}
    deadline = time.monotonic() + 30
    while True:
        attainment = httpx.get(
            f"{system.url('projections')}/attainment",
            params={"period": year.plan.quarter, "metric": "won_amount"},
            headers=viewer,
        ).json()
        targets = {(i["scope"], i["scope_id"]): i["target"] for i in attainment["items"]}
        if targets.get(("rep", "rep-4")) is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert targets[("company", "company")] is not None
    assert targets[("team", "east")] is not None
    assert targets[("rep", "rep-4")] is not None

    console = Console(record=True, width=200)
    print_report(console, system, tokens()["admin"], time.monotonic())
    text = console.export_text()
    assert f"Attainment 目标达成 {year.plan.quarter}" in text
    assert f"Competition 销售竞赛 {sprint_id(year.plan.quarter)}" in text
    for item in attainment["items"]:
        assert item["scope_id"] in text
