"""The mlops-assets command line, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_generate_refuses_nothing_and_respects_if_empty(tmp_path):
    out = tmp_path / "landing"
    first = _cli("generate", "--tasks", "300", "--out", str(out), "--seed", "2")
    assert first.returncode == 0, first.stderr
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert {p.parts[0] for p in files} == {"jira", "github", "asana", "trello", "csv"}
    again = _cli("generate", "--tasks", "300", "--out", str(out), "--if-empty")
    assert again.returncode == 0
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == files


def test_rollback_without_a_champion_says_so_in_one_line(mlflow_uri):
    import os

    result = _cli("rollback", "late_risk", env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri})
    assert result.returncode == 1
    assert "has no champion" in result.stderr
    assert "Traceback" not in result.stderr
