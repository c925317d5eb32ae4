"""The deployment files name every service, port and setting the SPEC names."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"opportunity": 8000, "projections": 8001, "reminders": 8002}
SETTINGS = (
    "OPPSTREAM_KAFKA_BOOTSTRAP",
    "OPPSTREAM_EVENTSTORE_URL",
    "OPPSTREAM_PROJECTIONS_DB_URL",
    "OPPSTREAM_REMINDERS_DB_URL",
    "OPPSTREAM_RULES_FILE",
    "OPPSTREAM_AUTH_FILE",
)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_runs_kafka_postgres_and_the_three_services_on_their_ports() -> None:
    services = compose()["services"]
    assert {"kafka", "postgres", *PORTS} <= set(services)
    for name, port in PORTS.items():
        assert f"{port}:{port}" in services[name]["ports"]
        assert services[name]["command"][:2] == ["serve", name]


@pytest.mark.parametrize("service", list(PORTS))
def test_compose_gives_each_service_every_setting_the_spec_names(service: str) -> None:
    environment = compose()["services"][service]["environment"]
    assert set(SETTINGS) <= set(environment)
    assert environment["OPPSTREAM_EVENTSTORE_URL"].startswith("postgresql://")


def test_compose_kafka_runs_in_kraft_mode_and_topics_are_created() -> None:
    services = compose()["services"]
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    topics = (ROOT / "deploy/kafka/topics.txt").read_text(encoding="utf-8")
    from contracts import topics as names

    assert all(name in topics for name in names.ALL)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_accepts_the_file() -> None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_kubernetes_manifests_probe_and_scrape_every_service() -> None:
    for name, port in PORTS.items():
        documents = list(yaml.safe_load_all((ROOT / f"deploy/k8s/{name}.yaml").read_text()))
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["args"][:2] == ["serve", name]


def test_kubernetes_rules_file_is_the_shipped_default() -> None:
    shipped = (ROOT / "contracts/src/contracts/default_rules.yaml").read_text(encoding="utf-8")
    assert (ROOT / "deploy/k8s/rules.yaml").read_text(encoding="utf-8") == shipped, (
        "copy contracts/src/contracts/default_rules.yaml to deploy/k8s/rules.yaml"
    )
