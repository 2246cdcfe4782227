"""Every way of loading the project names its code location as pyproject.toml does."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workspace", ["workspace.yaml", "deploy/cluster/workspace.yaml"])
def test_workspace_files_name_the_code_location_as_pyproject_does(workspace):
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["code_location_name"]
    assert name == "mlops_assets"
    [entry] = yaml.safe_load((ROOT / workspace).read_text())["load_from"]
    assert entry["python_module"]["module_name"] == "mlops_assets.definitions"
    assert entry["python_module"].get("location_name") == name
