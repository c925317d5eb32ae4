"""What the demo acts out after the simulated year, through the HTTP API as people would, and
prints: the pool rules at work (公海规则, SPEC §8.3) — a rep stopped by the daily claim cap, a
previous owner refused during the cooldown, a reclaimed deal handed at once to the least-loaded
rep — and a KA customer's decision chain (决策链) built up on its record (§8.1); and the rules it
runs on, with its reminders delivered to the demo's webhook sink (§10.2)."""

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from contracts.customer_rules import Pool, PoolRule
from contracts.delivery import Delivery
from contracts.rules import Rulebook, load_rulebook
from oppstream.simulation import TEAMS, Deal, customer
from oppstream.sink import WebhookSink

# The demo's pool: small daily caps so that one scene shows a rep reaching one, working-day
# cooldowns, and SMB deals of foreign-owned customers redistributed to the least-loaded rep.
DEMO_POOL = Pool(
    rules=tuple(
        PoolRule.model_validate(rule)
        for rule in (
            {
                "id": "ka-pool",
                "match": {"tier": "KA"},
                "claim_limit_per_day": 2,
                "max_held": 50,
                "previous_owner_cooldown": "P30D",
            },
            {
                "id": "smb-pool",
                "match": {"tier": "SMB"},
                "claim_limit_per_day": 3,
                "max_held": 200,
                "previous_owner_cooldown": "7wd",
            },
            {
                "id": "smb-foreign-least-loaded",
                "match": {"tier": "SMB", "ownership": "FOREIGN"},
                "claim_limit_per_day": 3,
                "max_held": 200,
                "previous_owner_cooldown": "7wd",
                "redistribute": "least_loaded",
            },
        )
    )
)


def demo_delivery(sink: WebhookSink) -> Delivery:
    """Every team's reminders to the sink, escalations to its manager's channel too, and a
    front end that is down; few, quick attempts so that parking shows within the demo."""
    return Delivery.model_validate(
        {
            "attempts": 3,
            "first_backoff": "0.5s",
            "timeout": "2s",
            "channels": sink.channels(sorted(TEAMS)),
        }
    )


def demo_rules(var: Path, sink: WebhookSink | None = None) -> Rulebook:
    """The rules the demo runs on: `OPPSTREAM_RULES_FILE` if set, else the shipped rules with
    the demo's pool (and, given the demo's webhook sink, delivery to it), written to
    `var/demo-rules.yaml` and named for the services it starts."""
    configured = os.environ.get("OPPSTREAM_RULES_FILE")
    if configured:
        return load_rulebook(configured)
    shipped = load_rulebook(None)
    update: dict[str, Any] = {"version": f"{shipped.version}+demo", "pool": DEMO_POOL}
    if sink is not None:
        update["delivery"] = demo_delivery(sink)
    rules = shipped.model_copy(update=update)
    path = var / "demo-rules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(rules.model_dump(mode="json"), allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    os.environ["OPPSTREAM_RULES_FILE"] = str(path)
    return load_rulebook(path)


@dataclass
class Scene:
    """The opportunity service as the demo's people see it, each with their own token."""

    http: httpx.Client
    tokens: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, who: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body, headers=self.as_(who))


def act_out(
    console: Console, base_url: str, tokens: dict[str, str], deals: list[Deal], ids: dict[str, str]
) -> None:
    """Run the scenes and print what happened."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        scene = Scene(http, tokens)
        rng = random.Random(len(ids))  # noqa: S311 - the scenes' made-up customers
        _cooldown(scene, rng)
        _claim_cap(scene, rng)
        _least_loaded(scene, rng)
        console.print("\n[bold]Pool rules (公海规则)[/bold]")
        for line in scene.lines:
            console.print(f"  • {line}")
        console.print(_standing(scene))
        _decision_chain(console, scene, deals, ids)


def _deal_of(scene: Scene, owner: str, who: dict[str, Any]) -> dict[str, Any] | None:
    """A new deal of team east for `who`, created by its manager for `owner`; its state."""
    body = {"type": "new", "customer": who, "owner_id": owner, "team_id": "east"}
    answer = scene.post("manager-east", "/opportunities", body)
    if answer.status_code != 201:
        scene.lines.append(f"creating a deal for {owner}: HTTP {answer.status_code}")
        return None
    return dict(answer.json())


def _reclaim(scene: Scene, state: dict[str, Any], reason: str) -> dict[str, Any] | None:
    answer = scene.post(
        f"manager-{state['team_id']}", f"/opportunities/{state['id']}/reclaim", {"reason": reason}
    )
    if answer.status_code != 200:
        scene.lines.append(f"reclaim of {state['id'][:8]} refused: {answer.status_code}")
        return None
    return dict(answer.json())


def _cooldown(scene: Scene, rng: random.Random) -> None:
    """The manager reclaims rep-1's KA deal; rep-1 tries to claim it back at once."""
    deal = _deal_of(scene, "rep-1", {**customer(rng), "tier": "KA"})
    if deal is None or _reclaim(scene, deal, "客户长期未跟进 no follow-up for weeks") is None:
        return
    answer = scene.post("rep-1", f"/opportunities/{deal['id']}/claim", {})
    detail = answer.json().get("detail", {}) if answer.status_code == 409 else {}
    if detail.get("rule") == "pool.previous_owner_cooldown":
        scene.lines.append(
            f"rep-1 may not claim back {deal['customer']['name']} (reclaimed from them): "
            f"{detail['rule']} of rule {detail.get('rule_id')}, until {detail.get('until')}"
        )
    else:
        scene.lines.append(f"rep-1 claiming back {deal['id'][:8]}: HTTP {answer.status_code}")


def _claim_cap(scene: Scene, rng: random.Random) -> None:
    """The east manager puts three new KA deals into the team pool (a create without an
    owner); rep-2 claims them until the daily cap (2 in the demo's pool) stops them."""
    pooled = []
    for _ in range(3):
        body = {"type": "new", "customer": {**customer(rng), "tier": "KA"}, "team_id": "east"}
        answer = scene.post("manager-east", "/opportunities", body)
        if answer.status_code == 201:
            pooled.append(answer.json()["id"])
    claimed = 0
    for oid in pooled:
        answer = scene.post("rep-2", f"/opportunities/{oid}/claim", {})
        if answer.status_code == 200:
            claimed += 1
            continue
        detail = answer.json().get("detail", {})
        scene.lines.append(
            f"rep-2 claimed {claimed} KA deal(s) from the pool today, the next was refused: "
            f"{detail.get('rule')} of rule {detail.get('rule_id')} "
            f"(limit {detail.get('limit')}, count {detail.get('count')})"
        )
        return
    scene.lines.append(f"rep-2 claimed {claimed} KA deal(s) from the pool, none refused")


def _least_loaded(scene: Scene, rng: random.Random) -> None:
    """rep-2's SMB deal of a foreign-owned customer, reclaimed by the manager, goes at once to
    the least-loaded rep of the team (the demo's rule for that segment redistributes)."""
    who = {**customer(rng), "tier": "SMB", "ownership": "FOREIGN"}
    deal = _deal_of(scene, "rep-2", who)
    after = None if deal is None else _reclaim(scene, deal, "客户长期未跟进 no follow-up")
    if after is None:
        return
    if after.get("status") == "open":
        scene.lines.append(
            f"{who['name']} (SMB · FOREIGN) reclaimed from rep-2 went at once to "
            f"{after['owner_id']}, the least-loaded rep of team {after['team_id']}"
        )
    else:
        scene.lines.append(
            f"{who['name']} reclaimed from rep-2 stayed in the pool: no other rep of the "
            "team could take it"
        )


def _standing(scene: Scene) -> Table:
    table = Table(title="Pool standing (GET /pool/standing)")
    for column in ("rep", "held", "max held", "claims today", "limit / day", "cooling"):
        table.add_column(column, justify="left" if column == "rep" else "right")
    for rep in sorted(r for r in scene.tokens if r.startswith("rep-")):
        answer = scene.http.get(
            "/pool/standing", params={"owner_id": rep}, headers=scene.as_("admin")
        )
        if answer.status_code != 200:
            continue
        s = answer.json()
        table.add_row(
            rep,
            str(s["held"]),
            str(s["max_held"] if s["max_held"] is not None else "–"),
            str(s["claims_today"]),
            str(s["claim_limit_per_day"] if s["claim_limit_per_day"] is not None else "–"),
            str(len(s["cooling"])),
        )
    return table


CHAIN = (
    ("王建国", "总经理", "decision_maker", "supporter", None),
    ("李敏", "财务总监", "economic_buyer", "neutral", "王建国"),
    ("张伟", "信息部经理", "champion", "supporter", "王建国"),
    ("赵磊", "系统工程师", "user", "unknown", "张伟"),
)


def _decision_chain(console: Console, scene: Scene, deals: list[Deal], ids: dict[str, str]) -> None:
    """The decision chain of a KA customer that won a contract, built on its record."""
    won = [
        d
        for d in deals
        if d.tier == "KA" and d.key in ids and d.steps and d.steps[-1].command == "win"
    ]
    if not won:
        return
    # A customer the rules classified, when there is one.
    uscc = min(won, key=lambda d: "tier" in d.customer).customer["uscc"]
    rep = "admin"
    person_ids: dict[str, str] = {}
    for name, title, role, stance, boss in CHAIN:
        body = {"name": name, "title": title, "role": role, "stance": stance}
        if boss is not None:
            body["reports_to"] = person_ids[boss]
        answer = scene.post(rep, f"/customers/{uscc}/key-persons", body)
        if answer.status_code != 201:
            console.print(f"key person {name}: HTTP {answer.status_code} {answer.text[:200]}")
            return
        person_ids[name] = str(answer.json()["id"])
    scene.http.patch(
        f"/customers/{uscc}/key-persons/{person_ids['李敏']}",
        json={"stance": "supporter"},
        headers=scene.as_(rep),
    )
    cycle = scene.http.patch(
        f"/customers/{uscc}/key-persons/{person_ids['王建国']}",
        json={"reports_to": person_ids["赵磊"]},
        headers=scene.as_(rep),
    )
    record = scene.http.get(f"/customers/{uscc}", headers=scene.as_("admin")).json()
    console.print(_chain_tree(record))
    console.print(
        f"  {len(record['opportunities'])} opportunities, {len(record['contracts'])} contract(s); "
        f"making 王建国 report to 赵磊 is refused: HTTP {cycle.status_code}"
    )


def _chain_tree(record: dict[str, Any]) -> Tree:
    tree = Tree(
        f"[bold]{record['name']}[/bold] {record['uscc']} — {record['tier']} "
        f"(classified by {record.get('classified_by') or '–'})"
    )
    reports: dict[str | None, list[dict[str, Any]]] = {}
    for person in record["key_persons"]:
        reports.setdefault(person["reports_to"], []).append(person)

    def add(node: Tree, boss: str | None) -> None:
        for p in reports.get(boss, []):
            add(
                node.add(f"{p['name']} {p.get('title') or ''} · {p['role']} · {p['stance']}"),
                p["id"],
            )

    add(tree, None)
    return tree
