"""The whole Definitions object loads and holds what users and docs rely on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets import graph
from mlops_assets.definitions import defs

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_with_expected_assets_jobs_and_automation():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for expected in ("landing/jira", "raw/jira_tasks", "raw/trello_events", "clean/tasks", "clean/quarantine"):
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
    block = text[text.index(graph.START) + len(graph.START): text.index(graph.END)].strip()
    assert block == graph.mermaid(), "docs/ARCHITECTURE.md is stale: run `mlops-assets graph`"
