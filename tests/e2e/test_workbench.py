"""The workbench at /app/ in a real browser (Debian's Chromium, driven by Playwright) on the
seeded system: a rep filters to a deal, advances it with the stage's guidance in view and logs
a follow-up (both seen through the API and on the timeline); a rep is refused a pooled deal in
its cooldown and reads the rule and the date; a manager reassigns a deal; a viewer gets no
action button. Every input has a label and every button is reached with Tab. Screenshots are
kept as artifacts, and the clicks a rep needs are counted."""

import random
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from oppstream.demo import tokens
from oppstream.simulation import customer
from oppstream.up import System
from tests.e2e.test_dashboard import ARTIFACTS, CHROMIUM, FLAGS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs it)"
    ),
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
Page = Any  # playwright's sync Page: imported inside the fixture, as Chromium may be missing


def api(system: System, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{system.url('opportunity')}{path}",
        json=body,
        headers={"Authorization": f"Bearer {tokens()[who]}"},
        timeout=30,
    )


def created(system: System, who: str, **fields: Any) -> dict[str, Any]:
    answer = api(system, who, "POST", "/opportunities", {"type": "new", **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def a_customer(rng: random.Random, tier: str) -> dict[str, Any]:
    return {**customer(rng), "tier": tier, "ownership": "PRIVATE"}


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


class Clicks:
    """The clicks the test makes on the page, counted for the report."""

    def __init__(self, page: Page) -> None:
        self.page, self.count = page, 0

    def __call__(self, selector: str) -> None:
        self.page.click(selector)
        self.count += 1


def inbox_of(system: System, who: str, limit: int = 50) -> list[str]:
    """The ids of `who`'s reminders, newest first, as the reminders service serves them."""
    answer = httpx.get(
        f"{system.url('reminders')}/reminders",
        params={"owner_id": who, "limit": str(limit)},
        headers={"Authorization": f"Bearer {tokens()[who]}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return [r["reminder_id"] for r in answer.json()["reminders"]]


def signed_in(
    browser: Any, system: System, who: str, inbox: list[dict[str, Any]] | None = None
) -> Page:
    """A page signed in as `who`; with `inbox`, the reminders service's `GET /reminders` (built
    apart, SPEC §10.2) answers it, as its contract says, and the queries asked are kept in
    `page.inbox_queries`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, timezone_id="Asia/Shanghai")
    if inbox is not None:
        page.inbox_queries = []

        def answer(route: Any) -> None:
            page.inbox_queries.append(parse_qs(urlsplit(route.request.url).query))
            asked = page.inbox_queries[-1].get("kind", [None])[0]
            found = [r for r in inbox if asked in (None, r["kind"])]
            route.fulfill(
                json={"reminders": found},
                headers={"Access-Control-Allow-Origin": system.url("opportunity")},
            )

        page.route(f"{system.url('reminders')}/reminders?*", answer)
    page.goto(f"{system.url('opportunity')}/app/")
    page.fill("#token", tokens()[who])
    page.click("#login-form button")
    page.wait_for_selector("body[data-loaded='1']", timeout=30_000)
    assert page.inner_text("#problem") == ""
    assert page.get_attribute("body", "data-role") == who.split("-")[0]
    return page


def settled(page: Page, act: Callable[[], None]) -> None:
    """Do `act` and wait until the page has read everything again."""
    loaded = page.get_attribute("body", "data-loaded")
    act()
    page.wait_for_function(f"document.body.dataset.loaded !== '{loaded}'", timeout=30_000)


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"workbench-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def check_accessibility(page: Page) -> None:
    """Every visible input has a label; Tab reaches every visible button."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.offsetParent !== null && e.labels.length === 0)
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    buttons = page.evaluate(
        """() => [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null)
            .map((b, i) => { b.dataset.tabProbe = String(i); return i; }).length"""
    )
    stops = page.evaluate(
        "() => document.querySelectorAll('button, input, select, textarea, a[href]').length"
    )
    reached: set[str] = set()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(stops + 5):
        page.keyboard.press("Tab")
        probe = page.evaluate("() => document.activeElement?.dataset?.tabProbe ?? null")
        if probe is not None:
            reached.add(probe)
    assert buttons > 0
    assert reached == {str(i) for i in range(buttons)}


def test_a_rep_advances_a_deal_and_logs_a_follow_up(
    seeded: System, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(1501)
    deal = created(
        seeded, "rep-1", title="工作台测试 workbench e2e", customer=a_customer(rng, "SMB")
    )
    pipelines = api(seeded, "rep-1", "GET", "/pipelines").json()["pipelines"]
    stages = next(p for p in pipelines if p["id"] == deal["pipeline_id"])["stages"]
    first, second = stages[0], stages[1]
    assert deal["stage"] == first["id"]
    persons = f"/customers/{deal['customer']['uscc']}/key-persons"
    boss = api(seeded, "rep-1", "POST", persons, {"name": "王总", "role": "decision_maker"})
    assert boss.status_code == 201, boss.text
    aide = {"name": "李经理", "role": "influencer", "reports_to": boss.json()["id"]}
    assert api(seeded, "rep-1", "POST", persons, aide).status_code == 201

    page = signed_in(browser, seeded, "rep-1", inbox=[])
    assert page.inbox_queries == [{"owner_id": ["rep-1"], "limit": ["50"]}]
    assert "没有提醒" in page.inner_text("#reminders")
    page.unroute_all()
    click = Clicks(page)
    settled(page, lambda: page.select_option("#f-status", "open"))
    settled(page, lambda: page.select_option("#f-type", "new"))
    settled(page, lambda: page.select_option("#f-stage", first["id"]))
    rows = page.eval_on_selector_all("#deals .deal-row", "rows => rows.map(r => r.dataset.id)")
    assert deal["id"] in rows
    shown = api(
        seeded,
        "rep-1",
        "GET",
        f"/opportunities?owner_id=rep-1&status=open&type=new&stage={first['id']}&limit=500",
    )
    assert set(rows) == {i["id"] for i in shown.json()["items"]}

    advance_clicks = click.count
    click(f"#deals .deal-row[data-id='{deal['id']}']")
    page.wait_for_selector(f"#deal [data-id='{deal['id']}']")
    assert first["guidance"] in page.inner_text("#guidance")
    assert "smb" in page.inner_text("#reclaim")  # the rule that explains the countdown
    assert "reclaim_after" in page.inner_text("#reclaim")
    assert page.locator("#key-persons li").all_inner_texts()[0].startswith("王总")
    page.wait_for_selector("#org-chart canvas")
    check_accessibility(page)
    click("button[data-command='advance']")
    assert page.input_value("#fld-to_stage") == second["id"]
    assert second["guidance"] in page.inner_text("#command-form")
    settled(page, lambda: click("#submit-command"))
    advance_clicks = click.count - advance_clicks
    assert (
        api(seeded, "rep-1", "GET", f"/opportunities/{deal['id']}").json()["stage"] == second["id"]
    )
    page.wait_for_selector(f".stage-bar li.current[data-stage='{second['id']}']")
    assert second["guidance"] in page.inner_text("#guidance")
    assert f"{first['labels']['zh']} → {second['labels']['zh']}" in page.inner_text("#timeline")

    follow_up_clicks = click.count
    click("button[data-command='follow-ups']")
    page.select_option("#fld-kind", "visit")
    page.fill("#fld-note", "见了财务总监 met the CFO")
    settled(page, lambda: click("#submit-command"))
    follow_up_clicks = click.count - follow_up_clicks
    state = api(seeded, "rep-1", "GET", f"/opportunities/{deal['id']}").json()
    assert state["follow_up_count"] == 1
    history = api(seeded, "rep-1", "GET", f"/opportunities/{deal['id']}/history").json()["events"]
    assert history[-1]["event_type"] == "FollowUpLogged"
    assert history[-1]["payload"]["note"] == "见了财务总监 met the CFO"
    assert "跟进(拜访):见了财务总监 met the CFO" in page.inner_text("#timeline")
    assert page.inner_text("#refusal") == ""

    # Someone else changed the deal meanwhile: the page's version is stale, the refusal says so.
    elsewhere = {"kind": "call", "note": "from the phone"}
    api(seeded, "rep-1", "POST", f"/opportunities/{deal['id']}/follow-ups", elsewhere)
    page.click("button[data-command='advance']")
    page.click("#submit-command")
    page.wait_for_function("document.querySelector('#refusal').innerText !== ''")
    assert page.inner_text("#refusal").startswith("412 ")
    after = api(seeded, "rep-1", "GET", f"/opportunities/{deal['id']}").json()
    assert (after["stage"], after["follow_up_count"]) == (second["id"], 2)
    settled(page, lambda: page.click("#refresh"))
    assert page.get_attribute("#deal [data-id]", "data-version") == str(after["version"])

    page.select_option("#lang", "en")
    page.wait_for_function("document.querySelector('#deal').innerText.includes('Timeline')")
    assert "follow-up (visit): 见了财务总监 met the CFO" in page.inner_text("#timeline")
    # Unrouted, the panel shows the reminders service's own inbox of rep-1 (reminders may fire
    # meanwhile: every shown one is served, and as many are shown as were served before).
    before = inbox_of(seeded, "rep-1")
    settled(page, lambda: page.click("#refresh"))
    shown_inbox = page.eval_on_selector_all(
        "#inbox li", "items => items.map(i => i.dataset.reminder)"
    )
    assert set(shown_inbox) <= set(inbox_of(seeded, "rep-1", limit=500))
    assert len(shown_inbox) >= min(50, len(before))
    assert "reminders service unavailable" not in page.inner_text("#reminders")
    assert shot(page, "rep").stat().st_size > 10_000
    with capsys.disabled():
        print(
            f"\nclicks: advance {advance_clicks} (open the deal, Advance, Submit), "
            f"follow-up {follow_up_clicks} on the open deal (+ typing the note)"
        )
    assert advance_clicks == 3
    assert follow_up_clicks == 2


def test_a_rep_is_refused_a_deal_in_its_cooldown_with_the_rule_and_the_date(
    seeded: System, browser: Any
) -> None:
    rng = random.Random(1502)
    deal = created(
        seeded, "manager-east", owner_id="rep-2", team_id="east", customer=a_customer(rng, "KA")
    )
    reclaimed = api(
        seeded,
        "manager-east",
        "POST",
        f"/opportunities/{deal['id']}/reclaim",
        {"reason": "no follow-up"},
    )
    assert reclaimed.status_code == 200, reclaimed.text
    assert reclaimed.json()["status"] == "pooled"

    page = signed_in(browser, seeded, "rep-2")
    row = f"#pool li[data-id='{deal['id']}']"
    page.click(f"{row} button.claim")
    page.wait_for_function("document.querySelector('#pool-refusal').innerText !== ''")
    refusal = page.inner_text("#pool-refusal")

    answer = api(seeded, "rep-2", "POST", f"/opportunities/{deal['id']}/claim", {})
    assert answer.status_code == 409
    until = datetime.fromisoformat(answer.json()["detail"]["until"]).astimezone(SHANGHAI)
    assert "pool.previous_owner_cooldown" in refusal
    assert "ka-pool" in refusal
    assert until.strftime("%Y-%m-%d %H:%M") in refusal
    state = api(seeded, "manager-east", "GET", f"/opportunities/{deal['id']}").json()
    assert (state["status"], state["owner_id"]) == ("pooled", None)
    shot(page, "cooldown")


def test_a_manager_reassigns_a_deal(seeded: System, browser: Any) -> None:
    rng = random.Random(1503)
    for owner in ("rep-1", "rep-4"):  # both reps own a deal of the team: the form offers them
        created(
            seeded, "manager-east", owner_id=owner, team_id="east", customer=a_customer(rng, "SMB")
        )
    deal = created(
        seeded, "manager-east", owner_id="rep-1", team_id="east", customer=a_customer(rng, "SMB")
    )

    escalation = {
        "reminder_id": "r-1",
        "kind": "escalation",
        "opportunity_id": deal["id"],
        "owner_id": "rep-1",
        "team_id": "east",
        "rule_id": "smb-default",
        "due_at": "2026-12-01T02:00:00+00:00",
        "fired_at": "2026-12-01T02:00:05+00:00",
        "detail": {},
        "deliveries": [{"channel_id": "east-wecom", "status": "delivered", "attempts": 1}],
    }
    page = signed_in(browser, seeded, "manager-east", inbox=[escalation])
    line = page.inner_text("#escalation-inbox li[data-reminder='r-1']")
    assert line.startswith("rep-1 · 2026-12-01 10:00 · 升级给经理")
    assert "east-wecom delivered" in line
    assert {"team_id": ["east"], "kind": ["escalation"], "limit": ["50"]} in page.inbox_queries
    page.wait_for_selector("#team .rep-group[data-owner='rep-4']")
    page.click(f"#team .deal-row[data-id='{deal['id']}']")
    page.wait_for_selector(f"#deal [data-id='{deal['id']}']")
    page.click("button[data-command='assign']")
    page.select_option("#fld-owner_id", "rep-4")
    settled(page, lambda: page.click("#submit-command"))

    assert (
        api(seeded, "manager-east", "GET", f"/opportunities/{deal['id']}").json()["owner_id"]
        == "rep-4"
    )
    assert page.inner_text("#deal-owner") == "rep-4"
    assert "分配给 rep-4" in page.inner_text("#timeline")
    assert page.inner_text("#refusal") == ""
    shot(page, "manager")


def test_a_viewer_sees_everything_and_no_action_button(seeded: System, browser: Any) -> None:
    page = signed_in(browser, seeded, "viewer")
    page.click("#deals .deal-row")
    page.wait_for_selector("#deal [data-id]")
    page.wait_for_selector("#timeline li")
    assert page.locator("button.action").count() == 0
    assert page.locator("button.claim:visible").count() == 0
    assert not page.is_visible("#command-form")
    visible = page.eval_on_selector_all(
        "button", "bs => bs.filter(b => b.offsetParent !== null).map(b => b.id || b.className)"
    )
    assert set(visible) <= {"refresh", "sign-out", "deal-row"}
    assert page.is_visible("#read-only")
    # Attainment and standings come from the projections service: it lets this page call it.
    page.wait_for_function(
        "document.querySelector('#standings').innerText.match(/暂无竞赛|\\d+\\. /)"
    )
    assert page.inner_text("#problem") == ""
    shot(page, "viewer")
    page.click("#sign-out")
    assert page.is_visible("#login")
    assert page.evaluate("sessionStorage.getItem('oppstream-workbench-token')") is None
