"""The Kubernetes overlays, rendered without a cluster or a kustomize binary and validated
against the API schemas of a pinned Kubernetes version (kubernetes-validate)."""

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from contracts import topics

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/k8s"
OVERLAYS = {"dev": "oppstream-dev", "prod": "oppstream"}
KUBERNETES_VERSION = "1.33.0"
SERVICES = ("opportunity", "projections", "reminders")
PARTITIONS = 6
TOPIC_FILES = ("deploy/kafka/topics.txt", "deploy/k8s/base/topics.txt")
# The kustomization fields the rendering below understands: a new one fails the test rather
# than being skipped.
UNDERSTOOD = {
    "apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images", "replicas",
    "patches",
}  # fmt: skip
CLUSTER_SCOPED = {"Namespace"}

Document = dict[str, Any]


def merge(into: Any, patch: Any) -> Any:
    """A strategic merge as kustomize does it for these files: maps merge key by key, lists
    of named items merge item by name, other lists are replaced."""
    if isinstance(into, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            into[key] = merge(into[key], value) if key in into else copy.deepcopy(value)
        return into
    named = isinstance(into, list) and isinstance(patch, list)
    if named and all(isinstance(item, dict) and "name" in item for item in into + patch):
        by_name = {item["name"]: item for item in into}
        for item in patch:
            if item["name"] in by_name:
                merge(by_name[item["name"]], item)
            else:
                into.append(copy.deepcopy(item))
        return into
    return copy.deepcopy(patch)


def containers(document: Document) -> list[Document]:
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", []))


def load(path: Path) -> list[Document]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def render(directory: Path) -> list[Document]:
    """`kustomize build directory`, for the fields in UNDERSTOOD (generated ConfigMaps keep
    their name: kustomize's hash suffix changes no schema)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(kustomization) <= UNDERSTOOD, set(kustomization) - UNDERSTOOD
    documents: list[Document] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        documents += render(path) if path.is_dir() else load(path)
    for generator in kustomization.get("configMapGenerator", []):
        data = {
            Path(f).name: (directory / f).read_text(encoding="utf-8") for f in generator["files"]
        }
        documents.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}}
            | {"data": data}
        )
    for patch in kustomization.get("patches", []):
        for change in load(directory / patch["path"]):
            targets = [
                d
                for d in documents
                if (d["kind"], d["metadata"]["name"])
                == (change["kind"], change["metadata"]["name"])
            ]
            assert targets, f"{patch['path']} patches nothing"
            for target in targets:
                merge(target, change)
    for image in kustomization.get("images", []):
        for document in documents:
            for container in containers(document):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    for replicas in kustomization.get("replicas", []):
        deployment = next(
            d
            for d in documents
            if d["kind"] == "Deployment" and d["metadata"]["name"] == replicas["name"]
        )
        deployment["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for document in documents:
            if document["kind"] not in CLUSTER_SCOPED:
                document["metadata"]["namespace"] = kustomization["namespace"]
    return documents


def of_kind(documents: list[Document], kind: str) -> dict[str, Document]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


@pytest.fixture(params=list(OVERLAYS), scope="module")
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Document]]:
    return request.param, render(K8S / "overlays" / request.param)


def test_every_manifest_is_valid_for_the_pinned_kubernetes_version(
    overlay: tuple[str, list[Document]],
) -> None:
    _, documents = overlay
    assert documents
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as error:
            name = f"{document['kind']}/{document['metadata']['name']}"
            pytest.fail(f"{name}: {error.message} at {list(error.path)}")


def test_everything_lands_in_the_overlay_namespace(overlay: tuple[str, list[Document]]) -> None:
    name, documents = overlay
    assert set(of_kind(documents, "Namespace")) == {OVERLAYS[name]}
    for document in documents:
        if document["kind"] not in CLUSTER_SCOPED:
            assert document["metadata"]["namespace"] == OVERLAYS[name]


def test_images_are_pinned_to_a_release_tag(overlay: tuple[str, list[Document]]) -> None:
    _, documents = overlay
    for document in documents:
        for container in containers(document):
            assert ":" in container["image"].rpartition("/")[2], container["image"]
            tag = container["image"].rpartition(":")[2]
            assert all(part.isdigit() for part in tag.split(".")), container["image"]


def test_every_pod_meets_the_restricted_pod_security_standard(
    overlay: tuple[str, list[Document]],
) -> None:
    _, documents = overlay
    for document in [
        *of_kind(documents, "Deployment").values(),
        *of_kind(documents, "Job").values(),
    ]:
        pod = document["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")  # noqa: S108
            assert "emptyDir" in volumes[tmp["name"]]
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]


def test_every_service_has_a_startup_probe_and_a_disruption_budget(
    overlay: tuple[str, list[Document]],
) -> None:
    _, documents = overlay
    deployments = of_kind(documents, "Deployment")
    budgets = of_kind(documents, "PodDisruptionBudget")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert "initialDelaySeconds" not in container["livenessProbe"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        # A budget of minAvailable = replicas would block every node drain.
        assert "minAvailable" not in budgets[name]["spec"]
        assert budgets[name]["spec"]["maxUnavailable"] >= 1


def test_every_config_map_and_secret_a_pod_mounts_is_there_or_documented(
    overlay: tuple[str, list[Document]],
) -> None:
    _, documents = overlay
    maps = set(of_kind(documents, "ConfigMap"))
    secrets = {d["metadata"]["name"] for d in load(K8S / "base/secret.example.yaml")}
    for document in [
        *of_kind(documents, "Deployment").values(),
        *of_kind(documents, "Job").values(),
    ]:
        pod = document["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps


def test_the_topics_job_reads_the_topic_list_from_the_generated_config_map(
    overlay: tuple[str, list[Document]],
) -> None:
    _, documents = overlay
    job = of_kind(documents, "Job")["oppstream-topics"]
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    listed = of_kind(documents, "ConfigMap")[volume["configMap"]["name"]]["data"]["topics.txt"]
    assert listed == topic_list()
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert f"{mount['mountPath']}/topics.txt" in pod["containers"][0]["args"][0]
    assert not any(name in pod["containers"][0]["args"][0] for name in topics.ALL)


def topic_list() -> str:
    lines = [
        "# topic                          partitions  (replication comes from the cluster default)"
    ]
    lines += [f"{name:<33}{PARTITIONS}" for name in topics.ALL]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", TOPIC_FILES)
def test_topic_list_is_the_contracts_topics(path: str) -> None:
    """contracts.topics is the one place topic names live; the deploy copies follow it."""
    assert (ROOT / path).read_text(encoding="utf-8") == topic_list(), (
        f"write into {path}:\n{topic_list()}"
    )
