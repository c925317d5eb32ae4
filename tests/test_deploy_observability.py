"""The dashboard, the alert rules and the compose file, checked without Grafana, Prometheus or
Docker: structure, the metrics they name against what the services export, schemas."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from opportunity.metrics import Metrics as OpportunityMetrics
from projections.entrypoints.instruments import Instruments as ProjectionsInstruments
from reminders.metrics import Metrics as RemindersMetrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/oppstream.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
RUNBOOKS = ROOT / "docs/operations/runbooks.md"
# Metrics the files name that no oppstream service exports: Prometheus's own `up` and
# kafka_exporter's.
EXTERNAL = {
    "up",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partition_oldest_offset",
}
PROMQL_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "absent",
}  # fmt: skip
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset"}  # fmt: skip


def exported() -> set[str]:
    """Every series name the three services' registries can carry."""
    names: set[str] = set()
    for build in (OpportunityMetrics, ProjectionsInstruments, RemindersMetrics):
        registry: CollectorRegistry = build().registry
        for family in registry.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",),
            }[family.type]
            names |= {family.name + suffix for suffix in suffixes}
    return names


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: label matchers, strings, ranges, grouping clauses and
    Grafana variables taken out, then every identifier that is not a function or a keyword."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", "", stripped)
    stripped = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped
    )
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
        name = match.group()
        if stripped[match.end() :].lstrip().startswith("("):
            assert name in PROMQL_FUNCTIONS, f"{name}( in {expr}"
        elif name not in PROMQL_WORDS:
            found.add(name)
    return found


def balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for character in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if character in depth:
            depth[character] += 1
        elif character in closing:
            depth[closing[character]] -= 1
            if depth[closing[character]] < 0:
                return False
    return not any(depth.values())


def check_expression(expr: str) -> None:
    assert balanced(expr), expr
    names = metric_names(expr)
    assert names, f"{expr} selects no series"
    unknown = names - exported() - EXTERNAL
    assert not unknown, f"{expr} names {unknown}, which no service exports"


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings."""
    headings = re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_metric_check_catches_a_name_no_service_exports() -> None:
    with pytest.raises(AssertionError, match="oppstream_no_such_thing"):
        check_expression('sum by (kind) (rate(oppstream_no_such_thing{kind="x"}[5m]))')
    check_expression('sum by (kind) (rate(oppstream_reminders_fired_total{kind="x"}[5m]))')


def test_the_dashboard_is_a_grafana_dashboard_of_prometheus_panels() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"]
    assert board["title"]
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table"}
        assert panel["title"]
        assert panel["description"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "prometheus"
            check_expression(target["expr"])


@pytest.mark.parametrize(
    ("topic", "metric"),
    [
        ("commands per second", "oppstream_commands_total"),
        ("latency", "oppstream_command_seconds_bucket"),
        ("relay lag", "oppstream_relay_lag"),
        ("consumer lag", "kafka_consumergroup_lag"),
        ("reminders fired", "oppstream_reminders_fired_total"),
        ("deliveries parked", "oppstream_deliveries_parked"),
        ("dlq", "kafka_topic_partition_current_offset"),
    ],
)
def test_the_dashboard_shows_what_the_issue_asks(topic: str, metric: str) -> None:
    panel = next(p for p in dashboard()["panels"] if topic in p["title"].lower())
    assert any(metric in metric_names(t["expr"]) for t in panel["targets"])


def test_every_alert_rule_is_complete_and_names_exported_metrics() -> None:
    rules = alert_rules()
    assert rules
    for rule in rules:
        assert re.fullmatch(r"Oppstream[A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["runbook_url"].startswith("docs/operations/runbooks.md#")
        check_expression(rule["expr"])


def test_every_runbook_url_has_its_section() -> None:
    sections = anchors(RUNBOOKS.read_text(encoding="utf-8"))
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in {RUNBOOKS.name}"


@pytest.mark.parametrize(
    "subject",
    ["relay lag", "consumer lag", "dlq", "parked", "service down", "store unavailable"],
)
def test_the_rules_alert_on_what_the_issue_asks(subject: str) -> None:
    words = {
        "relay lag": "oppstream_relay_lag",
        "consumer lag": "kafka_consumergroup_lag",
        "dlq": "dlq",
        "parked": "oppstream_deliveries_parked",
        "service down": "up",
        "store unavailable": 'status="503"',
    }
    assert any(words[subject] in rule["expr"] for rule in alert_rules())


def test_compose_file_matches_the_compose_specification() -> None:
    """check-jsonschema's vendored compose-spec schema: what `docker compose config` checks,
    without Docker."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + [str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
