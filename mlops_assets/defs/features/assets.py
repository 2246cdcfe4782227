"""features/task_features: every task's features as of its creation (events before it), one code path for all uses."""

import dagster as dg

from mlops_assets.lib import features
from mlops_assets.metadata import readable
from mlops_assets.resources import WarehouseResource

from ..ingestion.assets import WAREHOUSE_WRITE_TAGS


@dg.asset(
    key=["features", "task_features"],
    deps=[dg.AssetKey(["clean", "tasks"]), dg.AssetKey(["clean", "task_events"])],
    group_name="features",
    kinds={"duckdb", "polars"},
    tags={"layer": "feature"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[dg.AssetCheckSpec("one_row_per_task", asset=["features", "task_features"], blocking=True,
                                   description="Exactly one feature row per clean task.")],
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
        metadata=readable({
            "dagster/row_count": frame.height,
            "features": dg.MetadataValue.json({"numeric": features.NUMERIC_FEATURES,
                                               "categorical": features.CATEGORICAL_FEATURES}),
            "null_share": dg.MetadataValue.json(nulls),
            "excluded": dg.MetadataValue.md("\n".join(f"- `{k}`: {v}" for k, v in features.EXCLUDED_FEATURES.items())),
        }),
        check_results=[dg.AssetCheckResult(
            check_name="one_row_per_task", passed=frame.height == tasks.height and frame["task_id"].is_unique().all(),
            metadata={"tasks": tasks.height, "feature_rows": frame.height})],
    )
