"""lib/monitoring: the current window, late labels, performance verdicts and the retrain decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mlops_assets.lib import features, monitoring
from mlops_assets.lib.monitoring import CheckFailure, RetrainCursor, decide_retrain

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def test_the_window_is_measured_from_the_newest_task_not_the_wall_clock():
    frame = pl.DataFrame({"created_at": [T0 - timedelta(days=d) for d in (0, 10, 29, 31, 400)]})
    window = monitoring.current_window(frame, 30)
    assert window.frame.height == 3
    assert window.end == T0 and window.start == T0 - timedelta(days=30)
    assert monitoring.current_window(frame.clear(), 30).empty
    with pytest.raises(ValueError, match="window days must be > 0"):
        monitoring.current_window(frame, 0)


def test_monitored_and_unmonitored_features_partition_the_feature_set():
    watched = set(monitoring.MONITORED_NUMERIC) | set(monitoring.MONITORED_CATEGORICAL)
    assert watched.isdisjoint(monitoring.UNMONITORED)
    assert watched | set(monitoring.UNMONITORED) == set(features.FEATURE_COLUMNS)


def test_new_labels_are_those_known_after_training():
    tasks = pl.DataFrame(
        {
            "task_id": ["a", "b", "c", "d"],
            "project": ["P"] * 4,
            "created_at": [T0 - timedelta(days=30)] * 4,
            "resolved_at": [T0 - timedelta(days=20), T0 + timedelta(days=2), None, T0 + timedelta(days=5)],
            "deadline_at": [T0 - timedelta(days=25), T0 + timedelta(days=10), T0 - timedelta(days=1), None],
        }
    )
    late = monitoring.new_labels(tasks, "is_late", trained_as_of=T0, as_of=T0 + timedelta(days=6))
    # a: known (late) before training; b: resolved on time after it; c: became late on its deadline, before
    assert late.sort("task_id").to_dicts() == [
        {"task_id": "b", "target": 0.0, "known_at": T0 + timedelta(days=2)}
    ]
    cycle = monitoring.new_labels(tasks, "cycle_time_days", trained_as_of=T0, as_of=T0 + timedelta(days=6))
    assert sorted(cycle["task_id"]) == ["b", "d"]
    assert cycle.filter(pl.col("task_id") == "d")["target"].item() == pytest.approx(35.0)


@pytest.mark.parametrize(
    ("kind", "live", "test", "status", "words"),
    [
        (
            "binary",
            {"live_roc_auc": 0.74, "live_ece": 0.05},
            {"test_roc_auc": 0.76, "test_ece": 0.04},
            "ok",
            "within",
        ),
        (
            "binary",
            {"live_roc_auc": 0.62, "live_ece": 0.05},
            {"test_roc_auc": 0.76, "test_ece": 0.04},
            "degraded",
            "ROC-AUC 0.620",
        ),
        (
            "binary",
            {"live_roc_auc": 0.76, "live_ece": 0.20},
            {"test_roc_auc": 0.76, "test_ece": 0.04},
            "degraded",
            "ECE",
        ),
        ("binary", {"live_roc_auc": float("nan")}, {"test_roc_auc": 0.76}, "skipped", "single class"),
        ("regression", {"live_mae": 6.0}, {"test_mae": 5.0}, "ok", "MAE 6.00"),
        ("regression", {"live_mae": 8.0}, {"test_mae": 5.0}, "degraded", "60% above"),
    ],
)
def test_performance_verdicts(kind, live, test, status, words):
    verdict = monitoring.judge_performance("m", kind, live, test, n_labels=200)
    assert verdict.status == status and words in verdict.reason


def test_too_few_new_labels_is_a_skip_with_the_count():
    verdict = monitoring.judge_performance(
        "m", "binary", {}, {"test_roc_auc": 0.7}, n_labels=12, min_labels=50
    )
    assert verdict.status == "skipped" and "only 12 new labels" in verdict.reason and not verdict.degraded


def _failure(
    storage_id: int, severity: str = "ERROR", check: str = monitoring.DRIFT_CHECK, version: str = "v1"
):
    return CheckFailure(
        storage_id, "run", "monitoring/data_drift", check, severity, 0.0, {"data_version": version}
    )


def test_one_request_then_cool_down_then_same_data_is_not_retrained_twice():
    first = decide_retrain(
        [_failure(5), _failure(6, check=monitoring.PERFORMANCE_CHECKS[0])],
        RetrainCursor(),
        last_storage_id=6,
        now=1000.0,
        cooldown_s=600,
    )
    assert first.request and first.run_key == "retrain-5" and first.cursor.after_storage_id == 6
    cooling = decide_retrain(
        [_failure(9, version="v2")], first.cursor, last_storage_id=9, now=1300.0, cooldown_s=600
    )
    assert (
        not cooling.request
        and cooling.reason.startswith("cool-down")
        and cooling.cursor.after_storage_id == 9
    )
    same = decide_retrain([_failure(12)], cooling.cursor, last_storage_id=12, now=5000.0, cooldown_s=600)
    assert not same.request and "already retrained on this data" in same.reason
    new = decide_retrain(
        [_failure(15, version="v3")], same.cursor, last_storage_id=15, now=5000.0, cooldown_s=600
    )
    assert new.request and new.cursor.last_data_version == "v3"


def test_warnings_and_other_checks_never_trigger_and_a_running_retrain_blocks():
    ignored = [_failure(1, severity="WARN"), _failure(2, check="task_id_unique")]
    assert not decide_retrain(ignored, RetrainCursor(), last_storage_id=2, now=0.0, cooldown_s=0).request
    busy = decide_retrain(
        [_failure(3)], RetrainCursor(), last_storage_id=3, now=0.0, cooldown_s=0, retrain_running=True
    )
    assert not busy.request and "already queued or running" in busy.reason


def test_cursor_round_trips_and_tolerates_garbage():
    cursor = RetrainCursor(7, 123.5, "v1")
    assert RetrainCursor.parse(cursor.dump()) == cursor
    assert RetrainCursor.parse("{not json") == RetrainCursor()
    assert RetrainCursor.parse(None) == RetrainCursor()
