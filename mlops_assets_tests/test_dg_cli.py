"""The `dg` CLI sees the project as a create-dagster project: `dg check defs` passes and `dg list defs`
lists what `dagster -m mlops_assets.definitions` loads.

A definition that does not load fails this test with dg's own message (the test prints dg's output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"


def _dg(*args: str) -> subprocess.Popen:
    # dg warns when the active virtual environment is not the project's: run it as an activated .venv would.
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1]), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen([str(DG), *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_dg_check_and_list_defs_agree_with_the_definitions_module():
    if not DG.exists():
        pytest.fail(f"{DG} is missing: dagster-dg-cli is a dependency in pyproject.toml (pip install -e .)")
    # Both load the code location in a process of their own (about 10 s each): run them side by side.
    check, listing = _dg("check", "defs"), _dg("list", "defs", "--json")
    check_out, check_err = check.communicate(timeout=240)
    list_out, list_err = listing.communicate(timeout=240)
    assert check.returncode == 0, f"dg check defs failed:\n{check_out}\n{check_err}"
    assert "All definitions loaded successfully" in check_out + check_err
    assert listing.returncode == 0, f"dg list defs failed:\n{list_err}"

    listed = json.loads(list_out)
    graph = defs.resolve_asset_graph()
    assert {a["asset_key"] for a in listed["assets"]} == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {a["asset_key"]: a["group_name"] for a in listed["assets"]} == {
        k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {j["name"] for j in listed["jobs"]} == {
        j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert {s["name"] for s in listed["sensors"]} == {s.name for s in defs.sensors}
    assert {s["name"] for s in listed["schedules"]} == {s.name for s in defs.schedules}
    assert {r["name"] for r in listed["resources"]} >= {"warehouse", "landing", "mlflow", "monitoring"}


def test_an_install_without_the_source_tree_loads_the_same_definitions(tmp_path):
    """A wheel has no pyproject.toml to read [tool.dg] from: the defs folder is walked from the module."""
    from mlops_assets.definitions import load_defs_folder

    wheel_like = load_defs_folder(tmp_path / "site-packages" / "mlops_assets")
    assert _keys(wheel_like.assets) == _keys(defs.assets)
    assert {j.name for j in wheel_like.jobs} == {j.name for j in defs.jobs}
    assert {s.name for s in wheel_like.sensors} == {s.name for s in defs.sensors}


def _keys(assets) -> set:
    """Asset keys of AssetsDefinitions (several each) and AssetSpecs (one)."""
    return {k for a in assets for k in (a.keys if hasattr(a, "keys") else [a.key])}


def test_defs_folder_objects_are_loaded_once():
    """The autoloader meets a group's objects in its modules and in its package's `defs`: each is kept once."""
    for kind in ("assets", "jobs", "sensors", "schedules"):
        objects = list(getattr(defs, kind) or [])
        assert len(objects) == len({id(o) for o in objects}), kind
