"""The quality bar of the issue, on exactly what `make run` trains: the embedded sample (the
Makefile's SAMPLE_TASKS, the generator's default seed) and the default TrainingConfig.

late_risk: test ROC-AUC >= 0.78 over every test row (each task at creation and at its later
prediction points), and at least 0.75 at creation and at 7 days before the deadline on their own.
cycle_time: test MAE at least 20% below the naive baseline (the train median per project). A change
to features, splits or training that costs the models their quality fails here, not only in a
benchmark nobody reads.

The late_risk floor was 0.80 while the sample's lateness was all foreseeable at creation. Since the
sample's changelogs carry hand-overs, blocked spells and slipping due dates (issue 13), part of the
lateness happens after creation and no model can see it there: the default training reaches 0.799 on
all rows, 0.788 at creation and 0.794 at 7 days before the deadline (docs/BENCHMARKS.md, as-of risk).
The floors sit about 0.02-0.04 below those, so a regression of that size fails.
"""

from __future__ import annotations

import json
import re

import dagster as dg

from mlops_assets.cli import main as cli
from mlops_assets.definitions import build_resources, defs
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import ROOT


def _sample_tasks() -> int:
    match = re.search(r"^SAMPLE_TASKS \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile no longer sets SAMPLE_TASKS: keep this test on what `make run` lands"
    return int(match.group(1))


def test_make_runs_models_meet_the_quality_floors(tmp_path, mlflow_uri):
    landing = tmp_path / "landing"
    assert (
        cli(["generate", "--tasks", str(_sample_tasks()), "--out", str(landing)]) == 0
    )  # as `make run` does
    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("ingestion", "cleaning", "features", "training", "evaluation"),
        resources=build_resources(str(tmp_path / "wh.duckdb"), str(landing), str(tmp_path / "reports")),
    )  # no run config: the defaults `make run` uses
    assert result.success
    wh = Warehouse(tmp_path / "wh.duckdb")
    late = json.loads(wh.query("SELECT metrics FROM models.late_risk_candidate")["metrics"][0])
    cycle = json.loads(wh.query("SELECT metrics FROM models.cycle_time_candidate")["metrics"][0])
    assert late["test_roc_auc"] >= 0.78, late
    evaluation = wh.query("SELECT metric, value FROM reporting.late_risk_evaluation")
    by_point = dict(zip(evaluation["metric"], evaluation["value"], strict=True))
    for point in ("creation", "7d_before_deadline"):
        assert by_point[f"test_rows_at_{point}"] >= 200, by_point  # enough rows to judge
        assert by_point[f"test_roc_auc_at_{point}"] >= 0.75, by_point
    assert cycle["test_mae"] <= 0.80 * cycle["test_baseline_mae"], cycle
    assert cycle["test_mae_improvement"] >= 0.20
    # Both were promoted: the first champion of each model.
    decisions = wh.query(
        "SELECT promoted FROM models.late_risk_champion UNION ALL "
        "SELECT promoted FROM models.cycle_time_champion"
    )["promoted"].to_list()
    assert decisions == [True, True]
