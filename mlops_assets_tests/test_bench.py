"""The benchmark's memory figure counts the whole process tree: a stage whose parse workers hold
the memory must not look small because the main process stayed small.
"""

from __future__ import annotations

import subprocess
import sys

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
