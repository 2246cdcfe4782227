"""Raw layer -> clean layer on hostile records: the good ones survive, each bad one is quarantined with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.lib import ingestion, schemas, task_rules
from mlops_assets.lib.cleaning import build_clean
from mlops_assets.lib.warehouse import Warehouse

NOW = datetime(2026, 12, 4, tzinfo=UTC)
MAPPING = "key: ID\ncreated_at: Created\ntitle: Title\nstory_points: Points\n"


def _issue(key: str, points: object, created: str = "2024-03-01T10:00:00.000+0000") -> dict:
    return {"id": key.split("-")[1], "key": key, "fields": {
        "summary": f"task {key}", "created": created, "updated": "2024-03-02T10:00:00.000+0000",
        "status": {"name": "Open", "statusCategory": {"key": "new"}}, "project": {"key": "OPS"},
        "customfield_10016": points}}  # fmt: skip


def _clean(landing: Path, tmp_path: Path, *sources: str) -> dict[str, pl.DataFrame]:
    wh = Warehouse(tmp_path / "wh.duckdb")
    for source in sources:
        ingestion.ingest_source(wh, landing, source, now=NOW)
    tables, stats = build_clean(wh, NOW)
    assert stats.conserved
    return tables


def _reasons(quarantine: pl.DataFrame) -> dict[str, str]:
    return dict(quarantine.select("task_id", "reason").iter_rows())


def test_non_finite_story_points_are_quarantined_for_json_and_csv_alike(landing_dir, tmp_path):
    # NaN, Infinity and 1e400 are what Python's JSON reader accepts (1e400 overflows to inf)
    issues = ", ".join(
        json.dumps(_issue(key, 0)).replace('"customfield_10016": 0', f'"customfield_10016": {points}')
        for key, points in (("OPS-1", "3"), ("OPS-2", "NaN"), ("OPS-3", "Infinity"), ("OPS-4", "1e400"))
    )
    page = '{"names": {"customfield_10016": "Story Points"}, "issues": [' + issues + "]}"
    (landing_dir / "jira").mkdir()
    (landing_dir / "jira" / "page.json").write_text(page)
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text(
        "ID,Created,Title,Points\nL-1,2024-03-01T10:00:00Z,ok,2\nL-2,2024-03-01T10:00:00Z,nan,nan\n"
        "L-3,2024-03-01T10:00:00Z,inf,inf\nL-4,2024-03-01T10:00:00Z,huge,1e400\n"
    )
    (landing_dir / "csv" / "lin.yaml").write_text(MAPPING)

    tables = _clean(landing_dir, tmp_path, "jira", "csv")

    assert tables["clean.tasks"]["task_id"].to_list() == ["csv:lin:L-1", "jira:OPS-1"]
    assert tables["clean.tasks"]["story_points"].to_list() == [2.0, 3.0]
    reasons = _reasons(tables["clean.quarantine"])
    for task_id, shown in (("jira:OPS-2", "nan"), ("jira:OPS-3", "inf"), ("jira:OPS-4", "inf"),
                           ("csv:lin:L-2", "nan"), ("csv:lin:L-3", "inf"), ("csv:lin:L-4", "inf")):  # fmt: skip
        assert reasons[task_id] == (f"estimate is not a finite number (story_points {shown}): "
                                    "fix or clear the estimate in the source")  # fmt: skip


def test_a_conflicting_duplicate_without_updated_at_is_quarantined_with_a_reason(landing_dir, tmp_path):
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text(
        "ID,Created,Title,Points\nL-1,2024-03-01T10:00:00Z,first,1\nL-1,2024-03-01T10:00:00Z,second,1\n"
        "L-2,2024-03-01T10:00:00Z,other,1\n"
    )
    (landing_dir / "csv" / "lin.yaml").write_text(MAPPING)

    tables = _clean(landing_dir, tmp_path, "csv")

    assert tables["clean.tasks"]["task_id"].to_list() == ["csv:lin:L-1", "csv:lin:L-2"]
    (reason,) = tables["clean.quarantine"]["reason"].to_list()
    assert reason is not None
    assert reason.startswith("conflicting duplicate of csv:lin:L-1: neither version has an updated_at")
    assert reason.endswith("fix or remove the other export (or map an updated_at column)")
    assert schemas.validate(schemas.QuarantineSchema, tables["clean.quarantine"]).passed


def test_the_quarantine_schema_refuses_a_row_without_a_reason(landing_dir, tmp_path):
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text("ID,Created,Title,Points\nL-1,1970-01-01T00:00:00Z,old,1\n")
    (landing_dir / "csv" / "lin.yaml").write_text(MAPPING)
    quarantine = _clean(landing_dir, tmp_path, "csv")["clean.quarantine"]
    assert schemas.validate(schemas.QuarantineSchema, quarantine).passed

    outcome = schemas.validate(schemas.QuarantineSchema, quarantine.with_columns(pl.lit(None, pl.String).alias("reason")))
    assert not outcome.passed and "reason" in outcome.summary()


@pytest.mark.parametrize("created", ["1970-01-01T00:00:00Z", "1989-12-31T23:59:59Z", "2026-12-06T00:00:00Z"])
def test_cleaning_quarantines_implausible_creation_dates_with_the_rule_serving_uses(landing_dir, tmp_path, created):
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text(f"ID,Created,Title,Points\nL-1,{created},x,1\nL-2,2024-03-01T10:00:00Z,y,1\n")
    (landing_dir / "csv" / "lin.yaml").write_text(MAPPING)

    tables = _clean(landing_dir, tmp_path, "csv")

    assert tables["clean.tasks"]["task_id"].to_list() == ["csv:lin:L-2"]
    expected = task_rules.created_at_problem(datetime.fromisoformat(created), NOW)
    assert expected is not None and _reasons(tables["clean.quarantine"]) == {"csv:lin:L-1": expected}
