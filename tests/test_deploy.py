"""The deployment files name every service, port and setting the SPEC names."""

import base64
import binascii
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

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


# Where each stateful container keeps its store: the setting that names the directory.
STORES = {"kafka": "KAFKA_LOG_DIRS", "postgres": "PGDATA"}
PROBE_TIMINGS = ("interval", "timeout", "retries", "start_period")


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
        documents = list(yaml.safe_load_all((ROOT / f"deploy/k8s/base/{name}.yaml").read_text()))
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["args"][:2] == ["serve", name]


def test_kubernetes_rules_file_is_the_shipped_default() -> None:
    shipped = (ROOT / "contracts/src/contracts/default_rules.yaml").read_text(encoding="utf-8")
    assert (ROOT / "deploy/k8s/base/rules.yaml").read_text(encoding="utf-8") == shipped, (
        "copy contracts/src/contracts/default_rules.yaml to deploy/k8s/base/rules.yaml"
    )


def named_volume_targets(service: str) -> list[PurePosixPath]:
    """Where the service mounts a named (top-level) volume; bind mounts and anonymous
    volumes do not outlive `docker compose down`."""
    spec = compose()
    named = set(spec.get("volumes") or {})
    targets = []
    for volume in spec["services"][service].get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source in named:
            targets.append(PurePosixPath(target))
    return targets


def on_a_named_volume(service: str, directory: str) -> bool:
    path = PurePosixPath(directory)
    return path.is_absolute() and any(
        path == target or target in path.parents for target in named_volume_targets(service)
    )


@pytest.mark.parametrize(("service", "setting"), list(STORES.items()))
def test_compose_keeps_every_store_on_a_named_volume(service: str, setting: str) -> None:
    """SPEC §11: `docker compose down` && `up` keeps every store, Kafka's log included (the
    apache/kafka image puts its log under /tmp unless KAFKA_LOG_DIRS says otherwise)."""
    directories = compose()["services"][service]["environment"].get(setting)
    assert directories, f"{service}: {setting} unset leaves the store where the image puts it"
    for directory in str(directories).split(","):
        assert on_a_named_volume(service, directory), (
            f"{service}: {setting}={directory} is not on one of its named volumes "
            f"{[str(t) for t in named_volume_targets(service)]}"
        )


def test_compose_services_keep_no_state_in_their_containers() -> None:
    """The three services' stores are PostgreSQL (on its volume), never SQLite inside the
    container, and the auth file is mounted (unset, dev tokens would go to ./var/)."""
    services = compose()["services"]
    for name in PORTS:
        environment = services[name]["environment"]
        for setting in SETTINGS:
            if setting.endswith("_URL"):
                assert environment[setting].startswith("postgresql://"), setting
                assert "@postgres:" in environment[setting], setting
        assert environment["OPPSTREAM_AUTH_FILE"]


def test_compose_kafka_has_a_fixed_valid_cluster_id() -> None:
    """The image formats KRaft storage with CLUSTER_ID on every start and leaves a formatted
    log dir alone: the id must be a fixed base64 UUID, not left to interpolation."""
    environment = compose()["services"]["kafka"]["environment"]
    cluster_id = environment["CLUSTER_ID"]
    assert isinstance(cluster_id, str)
    assert "$" not in cluster_id
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")
    try:
        raw = base64.urlsafe_b64decode(cluster_id + "==")
    except binascii.Error as error:
        pytest.fail(f"CLUSTER_ID {cluster_id!r} is not base64: {error}")
    assert len(raw) == 16
    assert raw != bytes(16)
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id
    assert environment["KAFKA_NODE_ID"] == "1"


def probe_command(service: str) -> list[str]:
    return list(compose()["services"][service]["healthcheck"]["test"])


@pytest.mark.parametrize(("service", "port"), list(PORTS.items()))
def test_compose_service_health_check_is_python_on_its_readyz(service: str, port: int) -> None:
    healthcheck = compose()["services"][service]["healthcheck"]
    command = probe_command(service)
    assert command[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{port}/readyz" in command[3]
    assert "urlopen" in command[3]
    assert "timeout=" in command[3]
    assert all(healthcheck.get(timing) for timing in PROBE_TIMINGS)
    assert healthcheck.get("disable") is not True


class _Answer(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def answering(status: int) -> Iterator[int]:
    handler = type("Answer", (_Answer,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_compose_service_health_check_fails_unless_readyz_answers_200(
    status: int | None, healthy: bool
) -> None:
    """The check's own code, run against a stand-in: 503 and a refused connection both exit
    non-zero (urlopen raises), so `docker compose up --wait` means ready."""
    code = probe_command("opportunity")[3]
    if status is None:
        with answering(200) as port:
            pass  # the port is free again: nothing listens there now
        outcome = subprocess.run([sys.executable, "-c", code.replace(":8000/", f":{port}/")])
    else:
        with answering(status) as port:
            outcome = subprocess.run(
                [sys.executable, "-c", code.replace(":8000/", f":{port}/")], capture_output=True
            )
    assert (outcome.returncode == 0) is healthy


def test_compose_kafka_and_postgres_have_health_checks() -> None:
    services = compose()["services"]
    for name in STORES:
        healthcheck = services[name]["healthcheck"]
        assert healthcheck["test"][0] == "CMD"
        assert all(healthcheck.get(timing) for timing in PROBE_TIMINGS), name
    # Over TCP: the server the entrypoint runs for the init scripts listens on no address.
    assert "-h" in services["postgres"]["healthcheck"]["test"]


def test_compose_starts_each_service_after_what_it_needs() -> None:
    services = compose()["services"]
    for name in PORTS:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "kafka": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"


def test_compose_one_shot_jobs_are_awaited_so_up_wait_succeeds() -> None:
    """`docker compose up --wait` counts a job that exited as a failure unless a running
    service waits for it with service_completed_successfully (docker/compose#10596)."""
    services = compose()["services"]
    jobs = [name for name, service in services.items() if service.get("restart") == "no"]
    assert "topics" in jobs
    for job in jobs:
        assert any(
            (service.get("depends_on") or {}).get(job, {}).get("condition")
            == "service_completed_successfully"
            for service in services.values()
            if service.get("restart") != "no"
        ), job
    long_running = [name for name in services if name not in jobs]
    for name in long_running:
        assert "healthcheck" in services[name], f"{name}: --wait cannot tell it is ready"


def test_dockerfile_image_has_python_and_exposes_the_ports() -> None:
    """The services' health checks run `python` in the image (it has no curl)."""
    dockerfile = (ROOT / "deploy/Dockerfile").read_text(encoding="utf-8")
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert final_stage.startswith("python:3.")
    exposed = next(line for line in final_stage.splitlines() if line.startswith("EXPOSE"))
    assert {str(port) for port in PORTS.values()} <= set(exposed.split()[1:])
    assert 'ENTRYPOINT ["oppstream"]' in final_stage
