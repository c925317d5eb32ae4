"""The dashboard in a real browser (Debian's Chromium, driven by Playwright): its funnel
numbers are /funnel's, a filter changes them, and a screenshot is kept as an artifact."""

import shutil
from pathlib import Path

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


def served_reached(system: System, **filters: str) -> dict[tuple[str, str], int]:
    funnel = httpx.get(
        f"{system.url('projections')}/funnel",
        params=filters,
        headers={"Authorization": f"Bearer {tokens()['viewer']}"},
    ).json()
    return {
        (p["pipeline_id"], s["stage"]): s["reached"]
        for p in funnel["pipelines"]
        for s in p["stages"]
    }


def shown_reached(page: object) -> dict[tuple[str, str], int]:
    cells = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "table[data-pipeline] tr[data-stage]",
        """rows => rows.map(r => [r.closest('table').dataset.pipeline, r.dataset.stage,
                               r.querySelector('.reached').textContent])""",
    )
    return {(pipeline, stage): int(text) for pipeline, stage, text in cells}


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)"
)
def test_the_dashboard_shows_the_funnel_and_follows_a_filter(seeded: System) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(f"{seeded.url('projections')}/")
            page.fill("#token", tokens()["viewer"])
            page.click("#login-form button")
            page.wait_for_selector("body[data-loaded]")
            page.wait_for_selector("table[data-pipeline] tr[data-stage]")
            everyone = shown_reached(page)
            assert everyone == served_reached(seeded)
            assert "初次洽谈" in page.inner_text("#funnel")

            loaded = page.get_attribute("body", "data-loaded")
            page.select_option("#f-tier", "KA")
            page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=15_000)
            key_accounts = shown_reached(page)
            assert key_accounts == served_reached(seeded, tier="KA")
            assert key_accounts != everyone

            page.select_option("#lang", "en")
            page.wait_for_function(
                "document.querySelector('#funnel').innerText.includes('Initial contact')"
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
