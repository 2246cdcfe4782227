"""Snapshot rows for training: each task at several prediction times of its life, capped per task.

A project manager asks for a task's risk while it is open, not only on the day it is created; a model
trained on creation rows alone never learns what a reassignment, a slipped deadline or three weeks in
progress mean. :func:`task_snapshots` gives each task up to ``max_points`` rows, one per prediction
point of :data:`POINTS` that falls while the task is open (before its resolution and before the data's
``as_of``), all through ``features.build_features`` (the code batch and online scoring use)::

    rows = task_snapshots(clean_tasks, clean_task_events, as_of)   # task_id, point, predicted_at, features

Points are placed by what is known at creation (the deadline as it stood then), never by the final
deadline or the resolution, so where a row sits says nothing about the outcome beyond "still open".
Labels are the task's own (unchanged); evaluation reports metrics per point.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from mlops_assets.lib import asof
from mlops_assets.lib import features as features_lib

# (name, what it is); creation always comes first. With a deadline known at creation: midway to it and
# a week before it; without one: after one and four weeks (cycle_time has such tasks).
POINTS: dict[str, str] = {
    "creation": "the task's creation",
    "midway": "half way from creation to the deadline known at creation",
    "7d_before_deadline": "7 days before the deadline known at creation",
    "week_1": "7 days after creation (tasks without a deadline at creation)",
    "week_4": "28 days after creation (tasks without a deadline at creation)",
}
DEFAULT_MAX_POINTS = 3
_US_PER_DAY = 86_400_000_000


def _duration_days(days: pl.Expr) -> pl.Expr:
    return pl.duration(microseconds=(days * _US_PER_DAY).round(0).cast(pl.Int64))


def prediction_points(
    creation: pl.DataFrame, tasks: pl.DataFrame, as_of: datetime, max_points: int
) -> pl.DataFrame:
    """task_id, point, predicted_at of every task's later points (creation excluded), at most max_points - 1 each.

    `creation` is ``build_features`` at creation (its ``deadline_horizon_days`` is the deadline known then).
    A point is kept while the task is open at it: after creation, before its resolution and by `as_of`.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1 (creation), got {max_points}")
    created = pl.col("created_at")
    horizon = pl.col("deadline_horizon_days")
    deadline0 = created + _duration_days(horizon)
    candidates = {
        "midway": pl.when(horizon > 0).then(created + _duration_days(horizon / 2)),
        "7d_before_deadline": pl.when(horizon > 0).then(deadline0 - pl.duration(days=7)),
        "week_1": pl.when(horizon.is_null()).then(created + pl.duration(days=7)),
        "week_4": pl.when(horizon.is_null()).then(created + pl.duration(days=28)),
    }
    base = creation.select("task_id", "created_at", "deadline_horizon_days").join(
        tasks.select("task_id", pl.col("resolved_at").cast(features_lib.UTC_DATETIME)),
        on="task_id",
        how="left",
    )
    frames = [base.select("task_id", pl.lit(name).alias("point"), expr.alias("predicted_at"), "created_at", "resolved_at")
              for name, expr in candidates.items()]  # fmt: skip
    t = pl.col("predicted_at")
    points = (
        pl.concat(frames)
        .filter(
            t.is_not_null() & (t > created) & (pl.col("resolved_at").is_null() | (t < pl.col("resolved_at")))
        )
        .filter(t <= pl.lit(as_of, dtype=features_lib.UTC_DATETIME))
        .sort("task_id", "predicted_at", "point")
    )
    return points.filter(pl.int_range(pl.len()).over("task_id") < max_points - 1).select(
        "task_id", "point", "predicted_at"
    )


def task_snapshots(
    tasks: pl.DataFrame,
    events: pl.DataFrame | None,
    as_of: datetime | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> pl.DataFrame:
    """Every task at creation and at its later :data:`POINTS` while open (at most `max_points` rows a task):
    task_id, point, then ``features.OUTPUT_COLUMNS`` (predicted_at = the point's time). Sorted by
    created_at, task_id, predicted_at.
    """
    history = features_lib.History.from_tasks(tasks, as_of=as_of)
    as_of = history.as_of
    task_events = asof.TaskEvents.from_frame(events)
    creation = features_lib.build_features(tasks, history, task_events)
    if as_of is None:  # no tasks
        return creation.select("task_id", pl.lit("creation").alias("point"), *features_lib.OUTPUT_COLUMNS[1:])
    points = prediction_points(creation, tasks, as_of, max_points)
    targets = tasks.join(points, on="task_id", how="inner")
    later = features_lib.build_features(targets, history, task_events).with_columns(targets["point"])
    creation = creation.with_columns(pl.lit("creation").alias("point"))
    columns = ["task_id", "point", *features_lib.OUTPUT_COLUMNS[1:]]
    return pl.concat([creation.select(columns), later.select(columns)]).sort(
        "created_at", "task_id", "predicted_at"
    )
