"""pyproject.toml lists what the package uses: every declared dependency is imported (or says why not)."""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# Declared but never imported, each for a reason a reader can check.
NOT_IMPORTED = {
    "dagster-webserver": "the UI process of `dagster dev` / `make ui`",
    "dagster-dg-cli": "the `dg` command line",
    "dagster-postgres": "named by the cluster instance's dagster.yaml (deploy/cluster/), loaded by Dagster",
}


def _imported_modules(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def test_every_declared_dependency_is_imported_by_the_package_or_says_why_not():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalized(Requirement(dep).name) for dep in project["dependencies"]}
    declared |= {_normalized(Requirement(dep).name) for dep in project["optional-dependencies"]["cluster"]}
    used = set()
    by_module = packages_distributions()
    for module in _imported_modules(ROOT / "mlops_assets"):
        used |= {_normalized(dist) for dist in by_module.get(module, [])}
    # The DuckLake extension wheels are found by importlib.util.find_spec("duckdb_extension_<name>").
    used |= {"duckdb-extension-ducklake", "duckdb-extension-postgres"}
    unused = declared - used - set(NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but never imported by mlops_assets: {sorted(unused)}"
