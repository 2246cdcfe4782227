"""The benchmark's memory figure counts the whole process tree: a stage whose parse workers hold
the memory must not look small because the main process stayed small.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.devtools.bench import TreeMemory, speed_probe, to_markdown, whole_graph_markdown

# A parent of ~20 MB whose child holds ~300 MB for a second.
_PARENT = r"""
import subprocess, sys
child = "b = bytearray(300 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
subprocess.run([sys.executable, "-c", child], check=True)
"""


def test_tree_memory_counts_the_children_of_the_measured_process():
    proc = subprocess.Popen([sys.executable, "-c", _PARENT])
    memory = TreeMemory(proc.pid, interval_s=0.05)
    assert proc.wait(timeout=60) == 0
    peak_mb = memory.stop()
    assert 290 <= peak_mb < 600, peak_mb


def test_the_table_says_how_much_of_a_training_is_lightgbm_itself():
    rows = [
        {
            "n_tasks": 1000,
            "stage": "train late_risk",
            "step_s": 12.0,
            "process_s": 14.0,
            "peak_rss_mb": 500.0,
            "rows": 1000,
            "lightgbm_s": 10.0,
        }
    ]
    assert "train late_risk: LightGBM 10.0 s of 12.0 s; the rest 2.0 s = 20% on top" in to_markdown(rows, "x")


def test_a_whole_graph_figure_carries_the_speed_of_the_machine_that_made_it():
    probe = speed_probe()
    assert 0.05 < probe["python_s"] < 30 and 0.05 < probe["lightgbm_s"] < 120, probe
    quality = {
        "late_risk": {"test_roc_auc": 0.85, "n_trials": 15},
        "cycle_time": {"test_mae": 3.5, "n_trials": 15},
    }
    result = {"n_tasks": 1000, "wall_s": 10.0, "steps_s": 9.5, "tree_mb": 900.0, "quality": quality,
              "scores": 100, "steps": [], "generate_s": 1.0, "probe": probe}  # fmt: skip
    header = whole_graph_markdown([result], "mlops-assets bench --tasks 1000").splitlines()[0]
    assert f"Python loop {probe['python_s']:.2f} s, LightGBM fit {probe['lightgbm_s']:.2f} s" in header
    after = {"python_s": 0.5, "lightgbm_s": 2.25}
    header = whole_graph_markdown([{**result, "probe_after": after}], "x").splitlines()[0]
    assert f"before / after the graph: Python loop {probe['python_s']:.2f} / 0.50 s" in header
    assert f"LightGBM fit {probe['lightgbm_s']:.2f} / 2.25 s" in header


# --against REV: the same bench with another commit's code, back to back (the machine's speed moves by
# tens of percent within an hour on these VMs; a pair run minutes apart does not)


def test_the_code_of_another_commit_is_checked_out_beside_and_removed_after():
    from mlops_assets.devtools.bench import code_at

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    with code_at("HEAD") as code:
        assert (code / "mlops_assets" / "cli.py").is_file()
        listed = subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True, text=True)
        assert str(code) in listed.stdout
    assert not code.exists()
    assert str(code) not in subprocess.run(["git", "-C", str(root), "worktree", "list"], capture_output=True,
                                           text=True).stdout  # fmt: skip
    with pytest.raises(ValueError, match="--against no-such-commit-4711: no such commit"):
        with code_at("no-such-commit-4711"):
            pass


def test_without_git_the_pairing_says_it_needs_git_not_that_the_commit_is_missing(monkeypatch):
    from mlops_assets.devtools.bench import code_at

    monkeypatch.setenv("PATH", "")
    with pytest.raises(ValueError, match="--against HEAD needs git to check that commit out"):
        with code_at("HEAD"):
            pass


def _fake_code(tmp_path: Path, body: str) -> Path:
    """A checkout whose `python -m mlops_assets.cli` runs `body` (it shadows the installed package)."""
    package = tmp_path / "code" / "mlops_assets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(body)
    return package.parent


def test_the_other_code_runs_its_own_bench_and_its_figures_are_read(tmp_path):
    from mlops_assets.devtools.bench import whole_graph_at

    code = _fake_code(tmp_path, "import sys\nassert sys.argv[1:4] == ['bench', '--tasks', '1000']\n"
                                "print('generating...')\nprint('1,000 tasks: whole graph 12.5 s, 1,234 MB')\n")  # fmt: skip
    assert whole_graph_at(code, 1000) == {"wall_s": 12.5, "tree_mb": 1234.0}
    broken = _fake_code(tmp_path / "b", "raise SystemExit('no dagster here')\n")
    with pytest.raises(RuntimeError, match="(?s)at 1,000 tasks failed \\(exit 1\\).*no dagster here"):
        whole_graph_at(broken, 1000)


def test_a_paired_run_reports_both_figures_and_their_ratio():
    quality = {
        "late_risk": {"test_roc_auc": 0.85, "n_trials": 15},
        "cycle_time": {"test_mae": 3.5, "n_trials": 15},
    }
    result = {"n_tasks": 1000, "wall_s": 30.0, "steps_s": 29.0, "tree_mb": 900.0, "quality": quality,
              "scores": 100, "steps": [], "generate_s": 1.0}  # fmt: skip
    text = whole_graph_markdown(
        [result], "x", against=("3492ad2", {1000: {"wall_s": 40.0, "tree_mb": 950.0}})
    )
    assert (
        "- 1,000 tasks: 30.0 s here against 40.0 s at `3492ad2`: x0.75 (-25%); 900 MB against 950 MB" in text
    )


def test_a_work_dir_run_again_starts_from_an_empty_warehouse_and_keeps_other_files(tmp_path):
    # A rerun in the same --work dir measured an incremental run: the warehouse's manifest knew every
    # landed file, so 1M tasks "ingested" in 2 s. Everything a run leaves goes; nothing else does.
    from mlops_assets.devtools.bench import RUN_STATE, clear_run_state

    for name in (
        "landing/jira",
        "mlflow-artifacts/1",
        "dagster_home/history",
        "reports",
        "exports",
        "model-cache",
    ):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "landing" / "jira" / "CORE-search-9999.json").write_text("[]")
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "mlflow.db", "mlflow.db.gate-late_risk.lock",
                 "materialize.log", "notes.txt"):  # fmt: skip
        (tmp_path / name).write_text("x")
    (tmp_path / "mine").mkdir()

    removed = clear_run_state(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]
    assert set(removed) == set(RUN_STATE)  # every name was there
    assert clear_run_state(tmp_path) == []  # an empty or fresh dir: nothing to say


def test_a_fresh_work_dir_is_removed_after_the_run_and_kept_when_it_fails_or_was_given(
    tmp_path, monkeypatch, capsys
):
    # Without --work every 1M run left ~9 GB in the temp dir (landing zone, warehouse, MLflow store).
    import tempfile

    from mlops_assets.devtools.bench import work_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with work_dir(None, 1000) as work:
        (work / "warehouse.duckdb").write_text("x")
        assert work.parent == tmp_path and work.name.startswith("mlops-bench-1000-")
    assert not work.exists()

    with pytest.raises(RuntimeError, match="stage failed"), work_dir(None, 1000) as failed:
        (failed / "materialize.log").write_text("the step's error")
        raise RuntimeError("stage failed")
    assert (failed / "materialize.log").read_text() == "the step's error"
    assert f"its work dir is kept for its logs: {failed}" in capsys.readouterr().err

    given = tmp_path / "mine"
    given.mkdir()
    with work_dir(given, 1000) as work:
        assert work == given
    assert given.is_dir()
