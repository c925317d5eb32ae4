"""`contracts` stands alone: the order system and the lead service install it into their own
environments, so it asks for the models' libraries only (in ranges, not pins) and imports
nothing of the services' plumbing."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[1]
MODULES = sorted(
    f"contracts.{path.stem}"
    for path in (CONTRACTS / "src" / "contracts").glob("*.py")
    if path.stem != "__init__"
)
PLUMBING = ("fastapi", "sqlalchemy", "faststream", "psycopg", "aiokafka", "pydantic_settings")
MODEL_LIBRARIES = {"holidays", "pydantic", "python-stdnum", "pyyaml"}

# Run in the fresh environment: every module imported, the shipped rules file read, the
# schemas exported; then which of the plumbing libraries could be imported there.
PROBE = """
import importlib, importlib.util, json, sys
from pathlib import Path
imported = [importlib.import_module(name).__file__ for name in sys.argv[1].split(",")]
from contracts.export import export
from contracts.rules import load_rulebook
load_rulebook()
export(Path(sys.argv[2]))
print(json.dumps({
    "files": imported,
    "importable": [name for name in sys.argv[3].split(",") if importlib.util.find_spec(name)],
}))
"""


def _requirements() -> list[str]:
    project = tomllib.loads((CONTRACTS / "pyproject.toml").read_text(encoding="utf-8"))
    return list(project["project"]["dependencies"])


def test_contracts_asks_for_the_model_libraries_in_ranges_never_pins() -> None:
    requirements = _requirements()
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}
    assert names == MODEL_LIBRARIES
    for requirement in requirements:
        assert "==" not in requirement, requirement
        assert ">=" in requirement, requirement
        assert "<" in requirement.replace("<=", ""), requirement


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_contracts_installs_and_imports_alone_without_the_services_plumbing(
    tmp_path: Path,
) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is not on PATH: `make install` installs it"
    # A copy, so that nothing of the workspace around it can help.
    source = tmp_path / "oppstream-contracts"
    shutil.copytree(CONTRACTS, source, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
    }
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"

    def run(*argv: str) -> str:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500, check=False
        )
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(uv, "venv", "--quiet", "--python", sys.executable, str(venv))
    run(uv, "pip", "install", "--quiet", "--python", str(python), str(source))
    exported = tmp_path / "schemas"
    answer = json.loads(
        run(str(python), "-c", PROBE, ",".join(MODULES), str(exported), ",".join(PLUMBING))
    )

    assert all(str(venv) in file for file in answer["files"]), answer["files"]
    assert answer["importable"] == []
    # The same documents as committed (their text is test_schemas's: the newest pydantic the
    # ranges allow may word a schema differently from the one the workspace pins).
    committed = CONTRACTS / "schemas"
    assert sorted(p.relative_to(exported) for p in exported.rglob("*.json")) == sorted(
        p.relative_to(committed) for p in committed.rglob("*.json")
    )
