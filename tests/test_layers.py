"""Dependencies point one way: the `oppstream` command line → the services → `chassis` →
`contracts`. Read from the source (every import statement, also those inside functions)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("opportunity", "projections", "reminders")
PACKAGES = {
    "contracts": ROOT / "contracts/src/contracts",
    "chassis": ROOT / "services/chassis/src/chassis",
    **{name: ROOT / f"services/{name}/src/{name}" for name in SERVICES},
}
# What each package must not import.
NEVER = {
    "contracts": {"oppstream", "chassis", *SERVICES},
    "chassis": {"oppstream", *SERVICES},
    **{name: {"oppstream"} for name in SERVICES},
}


def imports(package: Path) -> dict[str, set[str]]:
    """Module path → the top-level packages it imports (relative imports stay inside)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", list(PACKAGES))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    modules = imports(PACKAGES[package])
    assert modules, f"no modules found under {PACKAGES[package]}"
    wrong = {
        module: sorted(names & NEVER[package])
        for module, names in modules.items()
        if names & NEVER[package]
    }
    assert wrong == {}


def test_the_layers_are_read_from_real_imports() -> None:
    """The check would see it: a service does import chassis and contracts."""
    found = set().union(*imports(PACKAGES["reminders"]).values())
    assert {"chassis", "contracts"} <= found
