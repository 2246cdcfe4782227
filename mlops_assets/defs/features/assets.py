"""features/task_features (every task as of its creation) and features/task_snapshots (every task at several
prediction times while open, the training rows): one feature code path for all uses.
"""

import dagster as dg
import polars as pl

from mlops_assets.lib import features, snapshots
from mlops_assets.lib.gate import data_as_of
from mlops_assets.metadata import readable
from mlops_assets.resources import WarehouseResource

from ..shared import TASK_EVENTS, TASKS, WAREHOUSE_WRITE_TAGS


class SnapshotConfig(dg.Config):
    """How many training rows a task gives at most (creation and later points while open)."""

    max_points_per_task: int = snapshots.DEFAULT_MAX_POINTS


@dg.asset(
    key=["features", "task_features"],
    deps=[TASKS, TASK_EVENTS],
    group_name="features",
    kinds={"duckdb", "polars"},
    tags={"layer": "feature"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            "one_row_per_task",
            asset=["features", "task_features"],
            blocking=True,
            description="Exactly one feature row per clean task.",
        )
    ],
)
def task_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """features.task_features: task attributes, deadline horizon, calendar and strictly-prior history features."""
    wh = warehouse.get()
    tasks = wh.read_table("clean.tasks")
    events = wh.read_table("clean.task_events") if wh.table_exists("clean.task_events") else None
    frame = features.task_features(tasks, events)
    wh.replace_tables({"features.task_features": frame})
    nulls = {c: frame[c].null_count() / max(frame.height, 1) for c in features.FEATURE_COLUMNS}
    return dg.MaterializeResult(
        metadata=readable(
            {
                "dagster/row_count": frame.height,
                "features": dg.MetadataValue.json(
                    {"numeric": features.NUMERIC_FEATURES, "categorical": features.CATEGORICAL_FEATURES}
                ),
                "null_share": dg.MetadataValue.json(nulls),
                "excluded": dg.MetadataValue.md(
                    "\n".join(f"- `{k}`: {v}" for k, v in features.EXCLUDED_FEATURES.items())
                ),
            }
        ),
        check_results=[
            dg.AssetCheckResult(
                check_name="one_row_per_task",
                passed=frame.height == tasks.height and frame["task_id"].is_unique().all(),
                metadata={"tasks": tasks.height, "feature_rows": frame.height},
            )
        ],
    )


@dg.asset(
    key=["features", "task_snapshots"],
    deps=[TASKS, TASK_EVENTS],
    group_name="features",
    kinds={"duckdb", "polars"},
    tags={"layer": "feature"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            "one_creation_row_per_task",
            asset=["features", "task_snapshots"],
            blocking=True,
            description="Every clean task has its creation row, and no task more than the cap.",
        )
    ],
)
def task_snapshots(
    context: dg.AssetExecutionContext, config: SnapshotConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """features.task_snapshots: every task at creation and at later points while open (training rows)."""
    wh = warehouse.get()
    tasks = wh.read_table("clean.tasks")
    events = wh.read_table("clean.task_events") if wh.table_exists("clean.task_events") else None
    frame = snapshots.task_snapshots(tasks, events, data_as_of(tasks), max_points=config.max_points_per_task)
    wh.replace_tables({"features.task_snapshots": frame})
    per_point = dict(frame.group_by("point").len().sort("point").iter_rows())
    creation = frame.filter(pl.col("point") == "creation")
    most = int(frame.group_by("task_id").len()["len"].max() or 0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "rows_per_point": dg.MetadataValue.json(per_point),
            "points": dg.MetadataValue.md("\n".join(f"- `{k}`: {v}" for k, v in snapshots.POINTS.items())),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="one_creation_row_per_task",
                passed=creation.height == tasks.height
                and creation["task_id"].is_unique().all()
                and most <= config.max_points_per_task,
                metadata={
                    "tasks": tasks.height,
                    "creation_rows": creation.height,
                    "most_rows_of_a_task": most,
                },
            )
        ],
    )
