"""What the demo acts out after the simulated year, through the HTTP API as people would, and
prints: the pool rules at work (公海规则, SPEC §8.3) — a rep stopped by the daily claim cap, a
previous owner refused during the cooldown, a reclaimed deal handed at once to the least-loaded
rep — and a KA customer's decision chain (决策链) built up on its record (§8.1)."""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from contracts.customer_rules import Pool, PoolRule
from contracts.rules import Rulebook, load_rulebook
from oppstream.simulation import Deal

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


def demo_rules(var: Path) -> Rulebook:
    """The rules the demo runs on: `OPPSTREAM_RULES_FILE` if set, else the shipped rules with
    the demo's pool, written to `var/demo-rules.yaml` and named for the services it starts."""
    configured = os.environ.get("OPPSTREAM_RULES_FILE")
    if configured:
        return load_rulebook(configured)
    shipped = load_rulebook(None)
    rules = shipped.model_copy(update={"version": f"{shipped.version}+demo", "pool": DEMO_POOL})
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

    def state(self, oid: str) -> dict[str, Any]:
        answer = self.http.get(f"/opportunities/{oid}", headers=self.as_("admin"))
        return dict(answer.json()) if answer.status_code == 200 else {}


def act_out(
    console: Console, base_url: str, tokens: dict[str, str], deals: list[Deal], ids: dict[str, str]
) -> None:
    """Run the scenes and print what happened."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        scene = Scene(http, tokens)
        open_ids = [ids[d.key] for d in deals if d.key in ids]
        states = [s for s in (scene.state(oid) for oid in open_ids) if s.get("status") == "open"]
        _cooldown(scene, states)
        _claim_cap(scene, states)
        _least_loaded(scene, states)
        console.print("\n[bold]Pool rules (公海规则)[/bold]")
        for line in scene.lines or ["no open deal of a rep with a token to act on"]:
            console.print(f"  • {line}")
        console.print(_standing(scene))
        _decision_chain(console, scene, deals, ids)


def _owned_by(
    states: list[dict[str, Any]], reps: set[str], **customer: str
) -> list[dict[str, Any]]:
    return [
        s
        for s in states
        if s.get("owner_id") in reps and all(s["customer"].get(k) == v for k, v in customer.items())
    ]


def _manager_of(state: dict[str, Any]) -> str:
    return f"manager-{state['team_id']}"


def _reclaim(scene: Scene, state: dict[str, Any], reason: str) -> dict[str, Any] | None:
    answer = scene.post(
        _manager_of(state), f"/opportunities/{state['id']}/reclaim", {"reason": reason}
    )
    if answer.status_code != 200:
        scene.lines.append(f"reclaim of {state['id'][:8]} refused: {answer.status_code}")
        return None
    return dict(answer.json())


def _cooldown(scene: Scene, states: list[dict[str, Any]]) -> None:
    """A manager reclaims a rep's KA deal; the rep tries to claim it back at once."""
    reps = {r for r in scene.tokens if r.startswith("rep-")}
    candidates = _owned_by(states, reps, tier="KA")
    if not candidates:
        return
    deal = candidates[0]
    states.remove(deal)
    owner = deal["owner_id"]
    if _reclaim(scene, deal, "客户长期未跟进 no follow-up for weeks") is None:
        return
    answer = scene.post(owner, f"/opportunities/{deal['id']}/claim", {})
    detail = answer.json().get("detail", {}) if answer.status_code == 409 else {}
    if detail.get("rule") == "pool.previous_owner_cooldown":
        scene.lines.append(
            f"{owner} may not claim back {deal['customer']['name']} (reclaimed from them): "
            f"{detail['rule']} of rule {detail.get('rule_id')}, until {detail.get('until')}"
        )
    else:
        scene.lines.append(f"{owner} claiming back {deal['id'][:8]}: HTTP {answer.status_code}")


def _claim_cap(scene: Scene, states: list[dict[str, Any]]) -> None:
    """The east manager reclaims three KA deals of the team that rep-2 does not own; rep-2
    claims them until the daily cap (2 in the demo's pool) stops them."""
    others = {s["owner_id"] for s in states if s.get("team_id") == "east"} - {"rep-2"}
    deals = [s for s in _owned_by(states, others, tier="KA") if s["team_id"] == "east"][:3]
    reclaimed = [
        d for d in deals if _reclaim(scene, d, "重新分配 rebalancing the team") is not None
    ]
    for d in deals:
        states.remove(d)
    claimed = 0
    for deal in reclaimed:
        answer = scene.post("rep-2", f"/opportunities/{deal['id']}/claim", {})
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
    if reclaimed:
        scene.lines.append(f"rep-2 claimed {claimed} KA deal(s) from the pool, none refused")


def _least_loaded(scene: Scene, states: list[dict[str, Any]]) -> None:
    """An SMB deal of a foreign-owned customer, reclaimed, goes at once to the least-loaded rep."""
    reps = {r for r in scene.tokens if r.startswith("rep-")}
    candidates = _owned_by(states, reps, tier="SMB", ownership="FOREIGN")
    if not candidates:
        candidates = _owned_by(states, {"rep-4", "rep-5", "rep-6"}, tier="SMB", ownership="FOREIGN")
    if not candidates:
        return
    deal = candidates[0]
    after = _reclaim(scene, deal, "客户长期未跟进 no follow-up for weeks")
    if after is None:
        return
    if after.get("status") == "open":
        scene.lines.append(
            f"{deal['customer']['name']} (SMB · FOREIGN) reclaimed from {deal['owner_id']} went "
            f"at once to {after['owner_id']}, the least-loaded rep of team {after['team_id']}"
        )
    else:
        scene.lines.append(
            f"{deal['customer']['name']} reclaimed from {deal['owner_id']} stayed in the pool: "
            "no other rep of the team could take it"
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
