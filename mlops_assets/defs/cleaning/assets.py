"""Cleaning group: the raw layer becomes clean.tasks, clean.task_events and clean.quarantine."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mlops_assets.lib import schemas
from mlops_assets.lib.cleaning import CleanStats, build_clean
from mlops_assets.lib.ingestion import SOURCES
from mlops_assets.lib.readable import number_text
from mlops_assets.metadata import readable
from mlops_assets.resources import WarehouseResource

from ..shared import QUARANTINE, TASK_EVENTS, TASKS, WAREHOUSE_WRITE_TAGS, raw_key

RAW_KEYS = [raw_key(s, k) for s, spec in SOURCES.items() for k in spec[2]]
MAX_QUARANTINE_SHARE = 0.05

_DESCRIPTIONS = {
    TASKS: "clean.tasks: one validated row per task across all sources (its latest version), pseudonymous "
    "people, UTC timestamps, canonical priority, is_late and cycle_time_days.",
    TASK_EVENTS: "clean.task_events: status transitions from Jira changelogs and Trello list moves.",
    QUARANTINE: "clean.quarantine: every record or file that could not be used, with source, file, locator "
    "and a reason a user can act on.",
}

CHECKS = [
    dg.AssetCheckSpec(
        "tasks_schema_valid",
        asset=TASKS,
        blocking=True,
        description="clean.tasks matches its pandera schema (types, allowed values, ranges).",
    ),
    dg.AssetCheckSpec("task_id_unique", asset=TASKS, blocking=True, description="One row per task_id."),
    dg.AssetCheckSpec(
        "created_before_resolved",
        asset=TASKS,
        blocking=True,
        description="No task is resolved before it was created.",
    ),
    dg.AssetCheckSpec(
        "records_conserved",
        asset=TASKS,
        blocking=True,
        description="Every raw task record is a task, a superseded version of one, or quarantined.",
    ),
    dg.AssetCheckSpec(
        "quarantine_share_small",
        asset=QUARANTINE,
        description=f"At most {MAX_QUARANTINE_SHARE:.0%} of input records are quarantined (warning).",
    ),
    dg.AssetCheckSpec(
        "quarantine_reasons_present",
        asset=QUARANTINE,
        blocking=True,
        description="Every clean.quarantine row has a non-empty reason (schemas.QuarantineSchema).",
    ),
    dg.AssetCheckSpec(
        "task_events_schema_valid",
        asset=TASK_EVENTS,
        description="clean.task_events matches its pandera schema (warning).",
    ),
]


@dg.multi_asset(
    name="clean_tasks",
    specs=[
        dg.AssetSpec(
            key,
            description=_DESCRIPTIONS[key],
            deps=RAW_KEYS,
            group_name="cleaning",
            kinds={"duckdb", "polars", "pandera"},
            tags={"layer": "clean"},
            automation_condition=dg.AutomationCondition.eager(),
        )
        for key in (TASKS, TASK_EVENTS, QUARANTINE)
    ],
    check_specs=CHECKS,
    op_tags=WAREHOUSE_WRITE_TAGS,
    can_subset=True,  # so that `--select '*clean/tasks'` works: only the selected tables are replaced
)
def clean_tasks(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Rebuild the clean layer from the raw layer, validate it, and only then write it in one transaction."""
    wh = warehouse.get()
    # write-audit-publish: build in memory (rows the contract refuses are quarantined there), run
    # every check, and replace the tables only if the blocking ones pass: readers never see a
    # table that failed validation (a failure leaves the previous one in place)
    tables, stats = build_clean(wh, datetime.now(UTC))
    tasks, events, quarantine = tables["clean.tasks"], tables["clean.task_events"], tables["clean.quarantine"]
    task_check = stats.tasks_validation or schemas.validate(schemas.TasksSchema, tasks)
    results = list(
        _check_results(
            tasks,
            stats,
            task_check,
            schemas.validate(schemas.TaskEventsSchema, events),
            schemas.validate(schemas.QuarantineSchema, quarantine),
        )
    )
    selected = context.selected_asset_keys
    blocking = {(c.asset_key, c.name) for c in CHECKS if c.blocking}
    failed = [
        r
        for r in results
        if (r.asset_key, r.check_name) in blocking and not r.passed and r.asset_key in selected
    ]
    if failed:
        raise dg.Failure(
            description="clean layer not published (the previous tables stay): "
            + " | ".join(f"{r.check_name}: {_failure_text(r)}" for r in failed),
            metadata={r.check_name: dg.MetadataValue.json(_json_safe(r.metadata)) for r in failed},
        )
    wh.replace_tables(
        {name: frame for name, frame in tables.items() if dg.AssetKey(name.split(".")) in selected}
    )
    if TASKS in selected:
        yield dg.MaterializeResult(asset_key=TASKS, metadata=readable(_task_metadata(tasks, stats)))
    if TASK_EVENTS in selected:
        yield dg.MaterializeResult(asset_key=TASK_EVENTS, metadata={"dagster/row_count": events.height})
    if QUARANTINE in selected:
        yield dg.MaterializeResult(
            asset_key=QUARANTINE,
            metadata={
                "dagster/row_count": quarantine.height,
                "reasons": dg.MetadataValue.md(_reasons_md(quarantine)),
            },
        )
    checks = context.selected_asset_check_keys
    for result in results:
        if result.asset_key in selected and dg.AssetCheckKey(result.asset_key, result.check_name) in checks:
            yield result
    context.log.info(
        f"clean layer: {number_text(stats.tasks)} tasks, {number_text(stats.superseded)} superseded, "
        f"{number_text(stats.quarantined + stats.parse_rejects)} quarantined "
        f"({number_text(stats.refused_by_contract)} of them refused by the clean.tasks contract)"
    )


def _failure_text(result: dg.AssetCheckResult) -> str:
    meta = result.metadata
    value = meta.get("failures") or meta.get("examples") or meta
    return str(getattr(value, "value", value))[:1000]


def _json_safe(metadata) -> dict[str, object]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _task_metadata(tasks, stats: CleanStats) -> dict[str, object]:
    late = tasks["is_late"]
    return {
        "dagster/row_count": tasks.height,
        "input_records": stats.input_records,
        "superseded_versions": stats.superseded,
        "quarantined_at_cleaning": stats.quarantined,
        "rejected_at_parsing": stats.parse_rejects,
        "tasks_by_source": dg.MetadataValue.json(stats.by_source),
        "with_deadline": int(tasks["deadline_at"].is_not_null().sum()),
        "late": int(late.sum() or 0),
        "resolved": int(tasks["resolved_at"].is_not_null().sum()),
        "projects": tasks["project"].n_unique(),
    }


def _reasons_md(quarantine) -> str:
    if quarantine.height == 0:
        return "Nothing quarantined."
    top = quarantine.group_by("source", "stage", "reason").len().sort("len", descending=True).head(15)
    lines = ["| source | stage | reason | records |", "|---|---|---|---|"]
    lines += [
        f"| {r['source']} | {r['stage']} | {r['reason'][:160]} | {number_text(r['len'])} |"
        for r in top.iter_rows(named=True)
    ]
    return "\n".join(lines)


def _check_results(tasks, stats: CleanStats, task_check, event_check, quarantine_check):
    dup_ids = tasks["task_id"].filter(tasks["task_id"].is_duplicated())
    dupes = tasks.height - tasks["task_id"].n_unique()
    backwards_rows = (tasks["resolved_at"] < tasks["created_at"]).fill_null(False)
    backwards = int(backwards_rows.sum())
    total_in = stats.input_records + stats.parse_rejects
    share = (stats.quarantined + stats.parse_rejects) / total_in if total_in else 0.0
    yield dg.AssetCheckResult(
        check_name="tasks_schema_valid",
        asset_key=TASKS,
        passed=task_check.passed,
        metadata={"failures": task_check.summary(), "refused_by_contract": stats.refused_by_contract},
    )
    yield dg.AssetCheckResult(
        check_name="task_id_unique",
        asset_key=TASKS,
        passed=dupes == 0,
        metadata={
            "duplicate_rows": dupes,
            "examples": ", ".join(
                schemas.describe_rows(
                    tasks,
                    tasks.with_row_index()
                    .filter(pl.col("task_id").is_in(dup_ids.head(5).implode()))["index"]
                    .to_list()[:5],
                )
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="created_before_resolved",
        asset_key=TASKS,
        passed=backwards == 0,
        metadata={
            "violations": backwards,
            "examples": ", ".join(schemas.describe_rows(tasks, backwards_rows.arg_true().head(5).to_list())),
        },
    )
    yield dg.AssetCheckResult(
        check_name="records_conserved",
        asset_key=TASKS,
        passed=stats.conserved,
        metadata={
            "input_records": stats.input_records,
            "tasks": stats.tasks,
            "superseded": stats.superseded,
            "quarantined": stats.quarantined,
        },
    )
    yield dg.AssetCheckResult(
        check_name="quarantine_share_small",
        asset_key=QUARANTINE,
        passed=share <= MAX_QUARANTINE_SHARE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=readable({"share": share}),
    )
    yield dg.AssetCheckResult(
        check_name="quarantine_reasons_present",
        asset_key=QUARANTINE,
        passed=quarantine_check.passed,
        metadata={"failures": quarantine_check.summary()},
    )
    yield dg.AssetCheckResult(
        check_name="task_events_schema_valid",
        asset_key=TASK_EVENTS,
        passed=event_check.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failures": event_check.summary()},
    )
