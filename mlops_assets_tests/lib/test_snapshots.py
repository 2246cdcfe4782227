"""Snapshot training rows: where the points fall, the cap, splits by task and prediction time, metrics per point,
and the sample's event histories that make later points worth more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import asof, reporting, snapshots, synthetic, training
from mlops_assets.lib import splits as splits_lib
from mlops_assets.lib.features import History, build_features
from mlops_assets.serving.sandbox import clean_tasks

D = timedelta(days=1)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
TASKS = clean_tasks(1500, seed=13)
AS_OF = TASKS.select(pl.max_horizontal(pl.col("created_at").max(), pl.col("resolved_at").max())).item()


@pytest.fixture(scope="module")
def snaps() -> pl.DataFrame:
    return snapshots.task_snapshots(TASKS, None, AS_OF)


def test_every_task_has_its_creation_row_and_at_most_the_cap(snaps):
    creation = snaps.filter(pl.col("point") == "creation")
    assert sorted(creation["task_id"]) == sorted(TASKS["task_id"])
    assert (creation["predicted_at"] == creation["created_at"]).all()
    assert snaps.group_by("task_id").len()["len"].max() <= snapshots.DEFAULT_MAX_POINTS
    capped = snapshots.task_snapshots(TASKS, None, AS_OF, max_points=2)
    assert capped.group_by("task_id").len()["len"].max() == 2
    assert set(snaps["point"]) == set(snapshots.POINTS)
    with pytest.raises(ValueError, match="max_points must be at least 1"):
        snapshots.task_snapshots(TASKS, None, AS_OF, max_points=0)


def test_later_points_fall_while_the_task_is_open(snaps):
    later = snaps.filter(pl.col("point") != "creation").join(
        TASKS.select("task_id", "resolved_at"), on="task_id"
    )
    t = pl.col("predicted_at")
    assert later.height > 0
    assert later.filter((t <= pl.col("created_at")) | (t >= pl.col("resolved_at")) | (t > AS_OF)).height == 0
    # the features are those of build_features at that time (one code path)
    one = later.row(0, named=True)
    task = TASKS.filter(pl.col("task_id") == one["task_id"])
    direct = build_features(task, History.from_tasks(TASKS, as_of=AS_OF), at=one["predicted_at"])
    assert direct["age_days"][0] == one["age_days"] > 0


def test_points_follow_the_deadline_known_at_creation_not_the_final_one():
    tasks = pl.DataFrame([
        {"task_id": "a", "project": "P", "created_at": T0, "due_at": T0 + 30 * D, "deadline_at": T0 + 30 * D,
         "resolved_at": None},
    ])  # fmt: skip
    # the due date was 20 days out at creation and moved out by 10 days on day 12
    events = pl.DataFrame([{"task_id": "a", "changed_at": T0 + 12 * D, "field": "duedate",
                            "from_value": "2024-01-21", "to_value": "2024-01-31"}], schema=asof.EVENT_COLUMNS)  # fmt: skip
    rows = snapshots.task_snapshots(tasks, events, T0 + 60 * D)
    times = dict(zip(rows["point"], rows["predicted_at"], strict=True))
    assert times["midway"] == T0 + 10 * D and times["7d_before_deadline"] == T0 + 13 * D
    late = rows.filter(pl.col("point") == "7d_before_deadline").row(0, named=True)
    assert (
        late["n_deadline_moves"] == 1 and late["deadline_moved_days"] == 10 and late["days_to_deadline"] == 17
    )


def test_snapshot_splits_keep_a_task_on_one_side_and_train_before_validation(snaps):
    spec = training.MODEL_SPECS["late_risk"]
    frame = training.model_input(spec, TASKS, snaps, AS_OF)
    assert frame["task_id"].is_duplicated().any()
    parts = splits_lib.time_split(frame)
    ids = {name: set(part["task_id"]) for name, part in parts.items()}
    assert (
        not ids["train"] & ids["validation"]
        and not ids["train"] & ids["test"]
        and not ids["validation"] & ids["test"]
    )
    assert parts["train"]["predicted_at"].max() < parts["validation"]["created_at"].min()
    assert parts["validation"]["predicted_at"].max() < parts["test"]["created_at"].min()
    # labels are the task's own at every point
    labels = frame.group_by("task_id").agg(pl.col("target").n_unique())
    assert (labels["target"] == 1).all()


def test_evaluation_reports_metrics_per_point():
    spec = training.MODEL_SPECS["late_risk"]
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"point": ["creation"] * 50 + ["7d_before_deadline"] * 50,
                          "target": rng.integers(0, 2, 100).astype(float)})  # fmt: skip
    frame = frame.with_columns(prediction=pl.col("target") * 0.4 + pl.Series(rng.random(100)) * 0.6)
    metrics = reporting.metrics_by_point(spec, frame)
    assert metrics["test_rows_at_creation"] == 50 and metrics["test_rows_at_7d_before_deadline"] == 50
    assert 0.5 < metrics["test_roc_auc_at_creation"] <= 1.0 and "test_brier_at_7d_before_deadline" in metrics
    assert reporting.metrics_by_point(spec, frame.drop("point")) == {}


def test_the_sample_has_event_histories_that_drive_lateness():
    truth = synthetic.synthetic_tasks(6000, seed=7)
    jira_api = truth.filter(pl.col("source") == "jira")
    share = {c: jira_api[c].is_not_null().mean() for c in ("reassigned_at", "blocked_at", "due_moved_at")}
    assert all(0.02 < v < 0.4 for v in share.values()), share
    deadline = truth.filter(pl.col("is_late").is_not_null())
    late_rate = {c: deadline.group_by(pl.col(c).is_not_null().alias("had")).agg(pl.col("is_late").mean())
                 .sort("had")["is_late"].to_list() for c in ("reassigned_at", "blocked_at", "due_moved_at")}  # fmt: skip
    for column, (without, with_) in late_rate.items():
        assert with_ > without + 0.05, (column, without, with_)
    # events happen while the task is open, in order
    had = truth.filter(pl.col("blocked_at").is_not_null())
    assert (had["blocked_at"] < had["unblocked_at"]).all() and (had["blocked_at"] > had["started_at"]).all()
    moved = truth.filter(pl.col("due_moved_at").is_not_null())
    assert (moved["due_from"] < moved["due_at"]).all() and (moved["due_moved_at"] > moved["created_at"]).all()
