"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): every panel's
figures are its endpoint's for the same filters, it opens on the last 90 days with both
standards' windows, a filter changes the figures, and a screenshot is kept as an artifact."""

import shutil
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from oppstream.demo import tokens
from oppstream.up import System

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


Page = Any  # playwright's sync Page: imported inside the test, as Chromium may be missing


def served(system: System, path: str, **params: str) -> Any:
    answer = httpx.get(
        f"{system.url('projections')}{path}",
        params=params,
        headers={"Authorization": f"Bearer {tokens()['viewer']}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def reload(page: Page) -> None:
    loaded = page.get_attribute("body", "data-loaded")
    page.click("#refresh")
    page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=15_000)


def agree(page: Page, shown: Callable[[Page], Any], expected: Callable[[], Any]) -> None:
    """The panel shows what the endpoint answers: the figures may move between the page's
    reading and the test's (the reminders service acts on the seeded year), so both are read
    again, after a refresh, until they agree or 30 s have passed."""
    deadline = time.monotonic() + 30
    while True:
        seen, wanted = shown(page), expected()
        if seen == wanted or time.monotonic() > deadline:
            break
        reload(page)
    assert seen == wanted


def rows(page: Page, selector: str, script: str, arg: Any = None) -> list[Any]:
    return list(page.eval_on_selector_all(selector, script, arg))


def number(text: str) -> Decimal | None:
    return None if text == "–" else Decimal(text)


def served_number(value: float | str | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def share(text: str) -> float | None:
    return None if text == "–" else round(float(text.rstrip("%")) / 100, 3)


def served_share(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- funnel -------------------------------------------------------------------------------


def shown_reached(page: Page) -> dict[tuple[str, str], int]:
    cells = rows(
        page,
        "table[data-pipeline] tr[data-stage]",
        """rows => rows.map(r => [r.closest('table').dataset.pipeline, r.dataset.stage,
                               r.querySelector('.reached').textContent])""",
    )
    return {(pipeline, stage): int(text) for pipeline, stage, text in cells}


def served_reached(system: System, **filters: str) -> dict[tuple[str, str], int]:
    funnel = served(system, "/funnel", **filters)
    return {
        (p["pipeline_id"], s["stage"]): s["reached"]
        for p in funnel["pipelines"]
        for s in p["stages"]
    }


def shown_windows(page: Page) -> dict[str, tuple[str, str]]:
    # The cohort ends at now when no `to` is chosen: its days are compared, not its instants.
    return {
        name: tuple(page.inner_text(f"#window-{name}").split(" – "))
        for name in ("cohort", "company")
    }


def served_windows(system: System, **filters: str) -> dict[str, tuple[str, str]]:
    windows = served(system, "/funnel", **filters)["standard_windows"]
    return {
        name: tuple((w[end] or "–")[:10] for end in ("from", "to")) for name, w in windows.items()
    }


# -- attainment, standings, forecast categories, deferrals --------------------------------


def shown_attainment(page: Page) -> list[tuple[Any, ...]]:
    cells = rows(
        page,
        "table[data-attainment] tr[data-scope]",
        """rows => rows.map(r => [r.dataset.scope, r.dataset.scopeId, r.dataset.metric,
            ...['target', 'actual', 'attainment', 'gap', 'weighted-open'].map(
                c => r.querySelector('.' + c).textContent)])""",
    )
    return [
        (scope, scope_id, metric, number(t), number(a), share(pct), number(g), number(w))
        for scope, scope_id, metric, t, a, pct, g, w in cells
    ]


def served_attainment(system: System, period: str) -> list[tuple[Any, ...]]:
    return [
        (
            i["scope"],
            i["scope_id"],
            i["metric"],
            served_number(i["target"]),
            served_number(i["actual"]),
            served_share(i["attainment"]),
            served_number(i["gap"]),
            served_number(i["weighted_open"]),
        )
        for i in served(system, "/attainment", period=period)["items"]
    ]


def shown_standings(page: Page) -> tuple[str | None, list[tuple[Any, ...]]]:
    competition = page.evaluate(
        "document.querySelector('table[data-standings]')?.dataset.standings ?? null"
    )
    cells = rows(
        page,
        "table[data-standings] tr[data-owner]",
        """rows => rows.map(r => [r.dataset.owner, r.querySelector('.rank').textContent,
                               r.querySelector('.value').textContent])""",
    )
    return competition, [(owner, int(rank), value) for owner, rank, value in cells]


def served_standings(system: System) -> tuple[str | None, list[tuple[Any, ...]]]:
    listed = served(system, "/competitions")["competitions"]
    if not listed:
        return None, []
    newest = listed[0]["id"]
    found = served(system, f"/competitions/{newest}/standings")["standings"]
    return newest, [(s["owner_id"], s["rank"], str(s["value"])) for s in found]


CATEGORIES = ("pipeline", "best-case", "commit", "closed")


def shown_categories(page: Page) -> dict[str, dict[str, tuple[str, int]]]:
    cells = rows(
        page,
        "table[data-forecast-categories] tr[data-month]",
        """(rows, categories) => rows.map(r => [r.dataset.month, categories.map(c => [c,
            r.querySelector('td.' + c + ' .amount').textContent,
            r.querySelector('td.' + c + ' .count').textContent])])""",
        CATEGORIES,
    )
    return {
        month: {c: (amount, int(count.strip("()"))) for c, amount, count in figures}
        for month, figures in cells
    }


def served_categories(system: System, **filters: str) -> dict[str, dict[str, tuple[str, int]]]:
    return {
        m["month"]: {
            c: (
                m["categories"][c.replace("-", "_")]["amount"],
                m["categories"][c.replace("-", "_")]["count"],
            )
            for c in CATEGORIES
        }
        for m in served(system, "/forecast", **filters)["months"]
    }


DEFERRAL_CELLS = ("deferred", "reactivated", "won-after", "lost", "still-deferred", "median-days")


def shown_deferrals(page: Page) -> dict[str, tuple[Any, ...]]:
    cells = rows(
        page,
        "table[data-deferrals] tr[data-reason]",
        """(rows, cells) => rows.map(r => [r.dataset.reason,
            ...cells.map(c => r.querySelector('.' + c).textContent)])""",
        DEFERRAL_CELLS,
    )
    return {
        reason: (*(int(n) for n in counts), None if median == "–" else float(median))
        for reason, *counts, median in cells
    }


def served_deferrals(system: System, **filters: str) -> dict[str, tuple[Any, ...]]:
    return {
        r["reason"]: (
            r["deferred"],
            r["reactivated"],
            r["won_after_reactivation"],
            r["lost"],
            r["still_deferred"],
            None if r["median_days_deferred"] is None else round(r["median_days_deferred"], 1),
        )
        for r in served(system, "/deferrals", **filters)["reasons"]
    }


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)"
)
def test_the_dashboard_shows_each_endpoint_s_figures_and_follows_a_filter(
    seeded: System,
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.goto(f"{seeded.url('projections')}/")
            page.fill("#token", tokens()["viewer"])
            page.click("#login-form button")
            page.wait_for_selector("body[data-loaded]")
            page.wait_for_selector("table[data-pipeline] tr[data-stage]")
            assert page.inner_text("#error") == ""

            # It opens on the last 90 days, and shows the company standard's window apart.
            today = date(
                *page.evaluate(
                    "(d => [d.getFullYear(), d.getMonth() + 1, d.getDate()])(new Date())"
                )
            )
            start = page.input_value("#f-from")
            assert start == (today - timedelta(days=90)).isoformat()
            window = {"from": start}
            agree(page, shown_reached, lambda: served_reached(seeded, **window))
            everyone = shown_reached(page)
            assert "初次洽谈" in page.inner_text("#funnel")
            agree(page, shown_windows, lambda: served_windows(seeded, **window))
            cohort, company = shown_windows(page)["cohort"], shown_windows(page)["company"]
            assert cohort[0] == start
            assert company[1] == start
            assert company[0] < start

            period = page.input_value("#attainment-period")
            assert period == f"{today.year}-Q{(today.month - 1) // 3 + 1}"
            agree(page, shown_attainment, lambda: served_attainment(seeded, period))
            # No target is set in the simulated year: the actuals of the quarter still show.
            assert shown_attainment(page), "no attainment row though the quarter has deals"

            agree(page, shown_standings, lambda: served_standings(seeded))
            if shown_standings(page)[0] is None:
                assert "no competition" in page.inner_text("#standings")

            agree(page, shown_categories, lambda: served_categories(seeded, **window))
            assert shown_categories(page), "no forecast month though deals are open"

            agree(page, shown_deferrals, lambda: served_deferrals(seeded, **window))
            assert shown_deferrals(page), "no deferral reason row"

            loaded = page.get_attribute("body", "data-loaded")
            page.select_option("#f-tier", "KA")
            page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=15_000)
            key_accounts = {**window, "tier": "KA"}
            agree(page, shown_reached, lambda: served_reached(seeded, **key_accounts))
            assert shown_reached(page) != everyone
            agree(page, shown_categories, lambda: served_categories(seeded, **key_accounts))
            agree(page, shown_deferrals, lambda: served_deferrals(seeded, **key_accounts))

            loaded = page.get_attribute("body", "data-loaded")
            page.select_option("#lang", "en")
            # Every panel renders again in English before `data-loaded` changes.
            page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=15_000)
            page.wait_for_function(
                "document.querySelector('#funnel').innerText.includes('Initial contact')"
            )
            reason = served(seeded, "/deferrals", **key_accounts)["reasons"][0]
            label = page.inner_text(f"tr[data-reason='{reason['reason']}'] td:first-child")
            assert label == reason["label"]["en"]
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
