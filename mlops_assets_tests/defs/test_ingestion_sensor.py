"""The landing sensor against a real (ephemeral) DagsterInstance."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from mlops_assets.defs.ingestion.sensors import landing_files_sensor
from mlops_assets.resources import LandingZoneResource


def _tick(instance, landing_dir: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": LandingZoneResource(path=str(landing_dir))}
    )
    return landing_files_sensor(context), context.cursor


def test_sensor_requests_one_run_per_change(landing_dir, tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result, cursor = _tick(instance, landing_dir, None)
        assert isinstance(result, dg.SkipReason)
        (landing_dir / "jira").mkdir()
        (landing_dir / "jira" / "a.json").write_text(json.dumps({"key": "A-1"}))
        result, cursor = _tick(instance, landing_dir, cursor)
        assert isinstance(result, dg.RunRequest)
        assert {k.path[1] for k in result.asset_selection} == {"jira_tasks", "jira_events", "jira_comments"}
        assert result.tags["mlops/warehouse"] == "write"
        # Same files again: nothing to do, so no duplicate run.
        again, cursor2 = _tick(instance, landing_dir, cursor)
        assert isinstance(again, dg.SkipReason)
        assert cursor2 == cursor
        # A new file in another source: a run for that source only, with a new run key.
        (landing_dir / "trello").mkdir()
        (landing_dir / "trello" / "board.json").write_text("{}")
        third, _ = _tick(instance, landing_dir, cursor)
        assert isinstance(third, dg.RunRequest)
        assert {k.path[1].split("_")[0] for k in third.asset_selection} == {"trello"}
        assert third.run_key != result.run_key


def test_sensor_skips_with_reason_when_landing_zone_is_missing(tmp_path):
    with dg.DagsterInstance.ephemeral() as instance:
        result, _ = _tick(instance, tmp_path / "absent", None)
        assert isinstance(result, dg.SkipReason)
        assert "does not exist" in result.skip_message
