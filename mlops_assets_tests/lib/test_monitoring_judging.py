"""lib/monitoring, the monitoring assets' computation without Dagster: the window before the current one, the
champions' scores, the drift and performance records and the drift table (issue 21 item 2).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import drift, monitoring

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _days(*ago: float) -> pl.DataFrame:
    return pl.DataFrame(
        {"task_id": [f"t{i}" for i in range(len(ago))], "created_at": [T0 - timedelta(days=d) for d in ago]}
    )


def test_the_previous_window_is_the_days_before_the_current_one_less_the_training_window():
    features = _days(0, 10, 35, 45, 55, 65, 200)
    window = monitoring.current_window(features, 30)
    trained_until = pl.DataFrame({"created_at": [T0 - timedelta(days=50)]})
    before = monitoring.previous_window(features, trained_until, window, 30)
    # (T0-60, T0-30] less what the champion was fitted on (created up to T0-50): 35 and 45 days ago
    assert sorted(before["task_id"]) == ["t2", "t3"]
    long_ago = pl.DataFrame({"created_at": [T0 - timedelta(days=365)]})
    assert sorted(monitoring.previous_window(features, long_ago, window, 30)["task_id"]) == ["t2", "t3", "t4"]
    assert monitoring.previous_window(features, trained_until.clear(), window, 30).height == 0
    assert (
        monitoring.previous_window(
            features, trained_until, monitoring.current_window(features.clear(), 30), 30
        ).height
        == 0
    )


class _Model:
    def __init__(self, name: str):
        self.name = name

    def matrix(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame

    def predict(self, matrix: pl.DataFrame, num_threads: int = 1) -> np.ndarray:
        self.threads = num_threads
        return np.linspace(0.1, 0.9, matrix.height)


def test_champion_scores_are_named_per_model_and_late_risk_only_with_a_deadline():
    frame = pl.DataFrame({"has_deadline": [1, 0, None]})
    late = monitoring.champion_scores(_Model("late_risk"), frame)
    assert late.name == "late_risk_score" and late.to_list() == [pytest.approx(0.1), None, None]
    model = _Model("cycle_time")
    cycle = monitoring.champion_scores(model, frame)
    assert cycle.name == "predicted_cycle_days" and cycle.to_list() == pytest.approx([0.1, 0.5, 0.9])
    assert model.threads == (os.cpu_count() or 1)  # every core, as the batch scores (the same values)
    empty = monitoring.champion_scores(_Model("cycle_time"), frame.clear())
    assert empty.len() == 0 and empty.dtype == pl.Float64


def _column(name: str, score: float | None, drifted: bool, reason: str | None = None) -> drift.ColumnDrift:
    status = drift.SKIPPED if score is None else drift.OK
    return drift.ColumnDrift(
        name,
        drift.NUMERIC,
        status,
        "wasserstein" if score is not None else None,
        score,
        0.15,
        drifted,
        100,
        50,
        0.0,
        0.0,
        reason,
    )


def _results() -> tuple[drift.DriftResult, drift.DriftResult]:
    features = drift.DriftResult(
        [_column("story_points", 0.31234567, True), _column("title_length", 0.02, False)], 0.15, 0.1, 100, 50
    )
    scores = drift.DriftResult([_column("late_risk_score", None, False, "only 3 tasks")], 0.15, 1.0, 0, 50)
    return features, scores


def test_the_drift_table_shows_every_column_and_score_with_readable_numbers():
    table = monitoring.drift_columns_md(*_results()).splitlines()
    assert table[0] == "| column | method | score | threshold | drifted | note |"
    assert table[2] == "| story_points | wasserstein | 0.3123 | 0.15 | yes |  |"
    assert table[4] == "| late_risk_score |  |  | 0.15 |  | only 3 tasks |"


def test_a_drift_reading_replaces_the_current_table_and_adds_to_the_history(warehouse):
    base = {"window": "a .. b", "data_version": "50@x", "champion_version": "late_risk v2"}
    for run in ("run-1", "run-2"):
        rows = monitoring.record_drift(warehouse, run, *_results(), base, now=T0)
    assert rows.height == 3 and set(rows["target"]) == {"feature", "prediction"}
    current = warehouse.read_table("monitoring.data_drift")
    assert current["run_id"].unique().to_list() == ["run-2"] and current["drift_share"][0] == pytest.approx(
        0.5
    )
    assert warehouse.read_table("monitoring.drift_history").height == 6


def test_a_performance_reading_has_a_row_per_model_and_metric(warehouse):
    late = monitoring.PerformanceVerdict(
        "late_risk",
        "ok",
        "fine",
        80,
        {"live_roc_auc": 0.7, "live_ece": 0.05},
        {"test_roc_auc": 0.72, "test_ece": 0.04, "test_brier": 0.2},
    )
    cycle = monitoring.PerformanceVerdict("cycle_time", "not judged", "no champion", 0)
    frame = monitoring.record_performance(warehouse, "run-1", [(late, "3"), (cycle, None)], now=T0)
    assert frame.select("model", "metric").rows() == [
        ("late_risk", "roc_auc"),
        ("late_risk", "ece"),
        ("late_risk", "brier"),
        ("cycle_time", "mae"),
    ]
    assert frame["live_value"].to_list() == [0.7, 0.05, None, None]
    assert frame["champion_version"].to_list() == ["3", "3", "3", None]
    monitoring.record_performance(warehouse, "run-2", [(cycle, None)], now=T0)
    assert warehouse.read_table("monitoring.model_performance").height == 1
    assert warehouse.read_table("monitoring.performance_history").height == 5


class _NoChampion:
    def get_model_version_by_alias(self, name, alias):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        raise MlflowException("no alias", error_code=RESOURCE_DOES_NOT_EXIST)


def test_without_a_champion_there_is_no_reference_and_the_scores_are_skipped_with_the_reason(tmp_path):
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(tmp_path / "wh.duckdb")
    with pytest.raises(monitoring.NoReference, match="late_risk has no champion yet"):
        monitoring.load_reference(wh, _NoChampion(), "late_risk")
    features = _days(0, 1, 2)
    result = monitoring.prediction_drift(
        _NoChampion(), wh, features, monitoring.current_window(features, 30), days=30, threshold=0.15
    )
    assert [c.column for c in result.skipped] == ["late_risk_score", "predicted_cycle_days"]
    assert all("no champion yet" in c.reason for c in result.skipped) and result.share_drifted is None
