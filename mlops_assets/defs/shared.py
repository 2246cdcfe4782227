"""What the groups under defs/ share: asset keys, the warehouse-write run tag, the table <-> key rule.

Only dagster is imported here: the sensors import this module and must not load the ML stack.
"""

from __future__ import annotations

import dagster as dg

# Every run that writes the DuckDB file carries this tag; dagster.yaml's run queue lets one such run at a time.
WAREHOUSE_WRITE_TAGS = {"mlops/warehouse": "write"}
MODELS = (
    "late_risk",
    "cycle_time",
)  # lib.scoring.MODEL_NAMES (not imported: it loads the ML stack; a test keeps them equal)


def key_of(table: str) -> dg.AssetKey:
    """The asset that writes a warehouse table: ``schema.table`` -> ``AssetKey([schema, table])``."""
    schema, _, name = table.partition(".")
    if not schema or not name or "." in name:
        raise ValueError(f"a warehouse table is named schema.table, got {table!r}")
    return dg.AssetKey([schema, name])


def table_of(key: dg.AssetKey) -> str:
    """The warehouse table an asset writes: ``AssetKey([schema, table])`` -> ``schema.table``."""
    if len(key.path) != 2:
        raise ValueError(f"{key.to_user_string()} is not a warehouse table's asset (two parts expected)")
    return ".".join(key.path)


def raw_key(source: str, kind: str) -> dg.AssetKey:
    """raw/<source>_<kind>: one raw table of a source (kind: tasks, events, comments)."""
    return key_of(f"raw.{source}_{kind}")


def splits_key(model: str) -> dg.AssetKey:
    return key_of(f"model_input.{model}_splits")


def candidate_key(model: str) -> dg.AssetKey:
    return key_of(f"models.{model}_candidate")


def evaluation_key(model: str) -> dg.AssetKey:
    return key_of(f"reporting.{model}_evaluation")


def champion_key(model: str) -> dg.AssetKey:
    return key_of(f"models.{model}_champion")


TASKS = key_of("clean.tasks")
TASK_EVENTS = key_of("clean.task_events")
QUARANTINE = key_of("clean.quarantine")
FEATURES = key_of("features.task_features")
SNAPSHOTS = key_of("features.task_snapshots")
CHAMPIONS = [champion_key(m) for m in MODELS]
SCORES = key_of("serving.task_risk_scores")
DATA_DRIFT = key_of("monitoring.data_drift")
MODEL_PERFORMANCE = key_of("monitoring.model_performance")
SERVING_TELEMETRY = key_of("monitoring.serving_telemetry")
