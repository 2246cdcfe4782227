"""The `dg` CLI sees the project as a create-dagster project: `dg check defs` passes, and the defs folder
loads each object once, from a source checkout or an install without one.

A definition that does not load fails this test with dg's own message (the test prints dg's output).
"""

from __future__ import annotations

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
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [str(DG), *args], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_dg_check_defs_passes():
    """`dg check defs` as CI runs it: a definition that does not load fails here with dg's own message."""
    if not DG.exists():
        pytest.fail(f"{DG} is missing: dagster-dg-cli is a dependency in pyproject.toml (pip install -e .)")
    # One code-location load in a process of its own (about 10 s here); `dg list defs --json` shows the
    # same objects (checked by hand: the test budget has room for one load).
    check = _dg("check", "defs")
    out, err = check.communicate(timeout=240)
    assert check.returncode == 0, f"dg check defs failed:\n{out}\n{err}"
    assert "All definitions loaded successfully" in out + err


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
