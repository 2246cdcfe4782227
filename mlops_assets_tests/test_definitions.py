"""The whole Definitions object loads and holds what users and docs rely on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets.devtools import graph

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_with_expected_assets_jobs_and_automation():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for expected in (
        "landing/jira",
        "raw/jira_tasks",
        "raw/trello_events",
        "clean/tasks",
        "clean/quarantine",
    ):
        assert expected in keys
    assert defs.resolve_job_def("ingest_job")
    assert defs.resolve_sensor_def("landing_files_sensor")
    assert defs.resolve_schedule_def("daily_ingest_schedule")


def test_every_asset_has_a_description_and_a_group():
    asset_graph = defs.resolve_asset_graph()
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.description, f"{key.to_user_string()} has no description"


def test_architecture_doc_shows_the_current_asset_graph():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = text[text.index(graph.START) + len(graph.START) : text.index(graph.END)].strip()
    assert block == graph.mermaid(), "docs/ARCHITECTURE.md is stale: run `mlops-assets graph`"


# Every asset, check, job, sensor and schedule by name: a rename or a module the loader no longer finds
# fails here instead of dropping an asset unnoticed. Change these lists with the code (and CHANGELOG.md).
ASSETS = [f"landing/{s}" for s in ("asana", "csv", "github", "jira", "trello")] + [
    "raw/asana_tasks", "raw/csv_tasks", "raw/github_tasks", "raw/jira_comments", "raw/jira_events", "raw/jira_tasks",
    "raw/trello_comments", "raw/trello_events", "raw/trello_tasks",
    "clean/quarantine", "clean/task_events", "clean/tasks", "features/task_features", "features/task_snapshots",
    *(f"{k}" for m in ("late_risk", "cycle_time") for k in (
        f"model_input/{m}_splits", f"models/{m}_candidate", f"reporting/{m}_evaluation", f"models/{m}_champion")),
    "monitoring/data_drift", "monitoring/model_performance", "monitoring/serving_telemetry",
    "serving/task_risk_scores",
]  # fmt: skip
CHECKS = [
    "clean/quarantine:quarantine_reasons_present", "clean/quarantine:quarantine_share_small",
    "clean/task_events:task_events_schema_valid", "clean/tasks:created_before_resolved",
    "clean/tasks:records_conserved", "clean/tasks:task_id_unique", "clean/tasks:tasks_schema_valid",
    "features/task_features:one_row_per_task", "features/task_snapshots:one_creation_row_per_task",
    *(f"raw/{s}_tasks:every_landing_file_read" for s in ("asana", "csv", "github", "jira", "trello")),
    *(c for m in ("late_risk", "cycle_time") for c in (
        f"models/{m}_candidate:beats_naive_baseline", f"models/{m}_champion:reference_matches_champion",
        f"reporting/{m}_evaluation:no_dominant_feature", f"monitoring/model_performance:{m}_performance_holds")),
    "monitoring/data_drift:drift_share_below_threshold", "monitoring/data_drift:prediction_drift_small",
    "monitoring/serving_telemetry:serving_error_rate_ok", "monitoring/serving_telemetry:serving_p99_latency_ok",
]  # fmt: skip
JOBS = ["ingest_job", "monitor_job", "retrain_job", "score_job", "serving_telemetry_job"]
SENSORS = [
    "automation_condition_sensor",
    "champion_alias_sensor",
    "check_failure_alert_sensor",
    "landing_files_sensor",
    "remeasure_after_retrain_sensor",
    "retrain_sensor",
    "run_failure_alert_sensor",
]
SCHEDULES = [
    "daily_ingest_schedule",
    "daily_monitoring_schedule",
    "daily_score_schedule",
    "serving_telemetry_schedule",
]


def test_the_code_location_holds_exactly_the_named_assets_checks_jobs_sensors_and_schedules():
    asset_graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in asset_graph.get_all_asset_keys()) == sorted(ASSETS)
    assert sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in asset_graph.asset_check_keys) == sorted(
        CHECKS
    )
    assert sorted(j.name for j in defs.jobs) == JOBS
    assert sorted(s.name for s in defs.sensors) == SENSORS
    assert sorted(s.name for s in defs.schedules) == SCHEDULES


def test_shared_keys_follow_the_warehouse_tables_and_the_model_names():
    import pytest

    from mlops_assets.defs import shared
    from mlops_assets.lib import scoring

    assert shared.MODELS == scoring.MODEL_NAMES
    assert shared.key_of("clean.tasks") == dg.AssetKey(["clean", "tasks"]) == shared.TASKS
    assert shared.table_of(shared.champion_key("late_risk")) == "models.late_risk_champion"
    assert shared.raw_key("jira", "events").to_user_string() == "raw/jira_events"
    for bad in ("tasks", "clean.tasks.x", ".tasks"):
        with pytest.raises(ValueError, match="schema.table"):
            shared.key_of(bad)
    # every key shared names is an asset of the code location
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    named = [v for v in vars(shared).values() if isinstance(v, dg.AssetKey)] + shared.CHAMPIONS
    assert named and set(named) <= keys
