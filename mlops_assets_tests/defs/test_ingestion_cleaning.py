"""Ingestion and cleaning, materialized in-process on generated and real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import materialize, shared_data

PIPELINE = dg.AssetSelection.groups("ingestion", "cleaning")


@pytest.fixture
def sample(landing_dir: Path):
    from mlops_assets.lib import synthetic

    summary = synthetic.generate(landing_dir, n_tasks=2000, seed=3)
    return summary


def _clean(warehouse_path: Path) -> pl.DataFrame:
    return Warehouse(warehouse_path).read_table("clean.tasks")


def test_sample_lands_in_clean_tasks_with_conservation(sample, landing_dir, warehouse_path):
    result = materialize(PIPELINE, warehouse_path, landing_dir)
    assert result.success
    wh = Warehouse(warehouse_path)
    tasks = _clean(warehouse_path)
    assert set(tasks["source"].unique()) == {"jira", "github", "asana", "trello", "csv"}
    assert tasks["task_id"].is_unique().all()
    # Conservation: every raw task record is a clean task, a superseded version, or quarantined.
    raw_hashes = wh.query(
        "SELECT record_hash, task_id FROM ("
        + " UNION ALL ".join(
            f"SELECT record_hash, task_id FROM raw.{s}_tasks"
            for s in ("jira", "github", "asana", "trello", "csv")
        )
        + ")"
    )
    quarantined = set(
        wh.query("SELECT record_hash FROM clean.quarantine WHERE stage = 'clean'")["record_hash"]
    )
    kept = set(tasks["record_hash"])
    clean_ids = set(tasks["task_id"])
    for row in raw_hashes.iter_rows(named=True):
        assert row["record_hash"] in kept or row["record_hash"] in quarantined or row["task_id"] in clean_ids
    # The generator's deliberately broken records are quarantined with reasons, not dropped;
    # every other task it wrote is in clean.tasks (its exact duplicates collapse into one).
    q = wh.read_table("clean.quarantine")
    written = sum(s["tasks"] for s in sample["sources"].values())
    defects = sum(s["defects"] for s in sample["sources"].values())
    assert defects > 0
    assert q.height == defects
    assert q["reason"].null_count() == 0
    assert tasks.height == written - defects
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["task_id_unique"] and checks["created_before_resolved"] and checks["records_conserved"]
    assert checks["tasks_schema_valid"], result.get_asset_check_evaluations()


def test_materializing_twice_changes_nothing(sample, landing_dir, warehouse_path):
    materialize(PIPELINE, warehouse_path, landing_dir)
    first = _clean(warehouse_path)
    raw_first = Warehouse(warehouse_path).query("SELECT count(*) AS n FROM raw.jira_tasks")["n"][0]
    materialize(PIPELINE, warehouse_path, landing_dir)
    second = _clean(warehouse_path)
    assert Warehouse(warehouse_path).query("SELECT count(*) AS n FROM raw.jira_tasks")["n"][0] == raw_first
    assert first.drop("is_late", "late_outcome_known").equals(second.drop("is_late", "late_outcome_known"))


def test_newer_export_of_an_issue_adds_a_version_and_wins(landing_dir, warehouse_path):
    jira = landing_dir / "jira"
    jira.mkdir()
    issue = {
        "id": "1",
        "key": "DEMO-1",
        "fields": {
            "summary": "first title",
            "created": "2025-01-02T10:00:00.000+0000",
            "updated": "2025-01-03T10:00:00.000+0000",
            "issuetype": {"name": "Bug"},
            "priority": {"name": "Major"},
            "status": {"name": "Open", "statusCategory": {"key": "new"}},
            "project": {"key": "DEMO"},
        },
    }
    (jira / "DEMO-1.json").write_text(json.dumps(issue))
    materialize(PIPELINE, warehouse_path, landing_dir)
    issue["fields"]["summary"] = "second title"
    issue["fields"]["updated"] = "2025-01-05T10:00:00.000+0000"
    (jira / "DEMO-1-later.json").write_text(json.dumps(issue))
    materialize(PIPELINE, warehouse_path, landing_dir)
    wh = Warehouse(warehouse_path)
    assert wh.query("SELECT count(*) AS n FROM raw.jira_tasks")["n"][0] == 2
    tasks = _clean(warehouse_path)
    assert tasks.height == 1
    assert tasks["title"][0] == "second title"
    assert tasks["priority"][0] == "medium" and tasks["priority_ordinal"][0] == 3


def test_bad_files_are_quarantined_and_good_records_kept(landing_dir, warehouse_path):
    (landing_dir / "jira").mkdir()
    (landing_dir / "github").mkdir()
    (landing_dir / "jira" / "broken.json").write_text('{"issues": [ {"key": ')
    good = {
        "id": "2",
        "key": "DEMO-2",
        "fields": {
            "summary": "fine",
            "created": "2025-02-01T10:00:00.000+0000",
            "updated": "2025-02-01T10:00:00.000+0000",
            "resolutiondate": "2025-01-01T10:00:00.000+0000",
            "project": {"key": "DEMO"},
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
        },
    }
    ok = {
        **good,
        "key": "DEMO-3",
        "fields": {**good["fields"], "resolutiondate": "2025-03-01T10:00:00.000+0000"},
    }
    (landing_dir / "jira" / "page.json").write_text(
        json.dumps({"startAt": 0, "maxResults": 50, "total": 2, "issues": [good, ok]})
    )
    (landing_dir / "github" / "shape.json").write_text(json.dumps({"unexpected": True}))
    # files that cannot be read at all fail their source's blocking check, and the run (cron and CI notice),
    # naming each file and why; the good records beside them are ingested all the same
    result = materialize(PIPELINE, warehouse_path, landing_dir, raise_on_error=False)
    assert not result.success
    failed = {
        e.asset_check_evaluation_data.asset_key.path[-1]: e.asset_check_evaluation_data.description
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    }
    assert set(failed) == {"jira_tasks", "github_tasks"}
    assert "broken.json" in failed["jira_tasks"] and "shape.json" in failed["github_tasks"]
    assert "move it out of the landing folder" in failed["jira_tasks"]
    assert Warehouse(warehouse_path).query("SELECT count(*) AS n FROM raw.jira_tasks")["n"][0] == 2
    assert not Warehouse(warehouse_path).table_exists("clean.tasks")  # blocked downstream
    # the user moves the two files out: the run passes, and quarantine still records what was never read
    for path in (landing_dir / "jira" / "broken.json", landing_dir / "github" / "shape.json"):
        path.rename(landing_dir.parent / path.name)
    assert materialize(PIPELINE, warehouse_path, landing_dir).success
    tasks = _clean(warehouse_path)
    assert tasks["task_id"].to_list() == ["jira:DEMO-3"]
    q = Warehouse(warehouse_path).read_table("clean.quarantine")
    reasons = dict(
        zip(
            q["source_file"].map_elements(lambda p: Path(p).name, return_dtype=pl.String),
            q["reason"],
            strict=True,
        )
    )
    assert "broken.json" in reasons and "shape.json" in reasons
    assert any("before created_at" in r for r in q["reason"])
    # No personal data past raw: the rejected record itself stays in raw.rejects, one join away.
    assert q["payload"].null_count() == q.height
    parse = q.filter(pl.col("stage") == "parse")
    rejects = Warehouse(warehouse_path).read_table("raw.rejects")
    assert parse.height and set(parse["record_hash"]) <= set(rejects["record_hash"])
    assert rejects["payload"].null_count() < rejects.height


def test_a_wrong_csv_mapping_fails_the_run_until_it_is_fixed(landing_dir, warehouse_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(
        "ID,Created,Estimate\nL-1,2024-03-01T10:00:00Z,3\nL-2,2024-03-02T10:00:00Z,5\n"
    )
    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\nstory_points: Estimat\n")
    result = materialize(PIPELINE, warehouse_path, landing_dir, raise_on_error=False)
    assert not result.success
    [check] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.asset_key.path == ["raw", "csv_tasks"]
    ]
    assert (
        not check.passed and "lin.csv" in check.description and "did you mean 'Estimate'" in check.description
    )

    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\nstory_points: Estimate\n")
    assert materialize(PIPELINE, warehouse_path, landing_dir).success
    assert sorted(_clean(warehouse_path).select("key", "story_points").iter_rows()) == [
        ("L-1", 3.0),
        ("L-2", 5.0),
    ]
    quarantine = Warehouse(warehouse_path).read_table("clean.quarantine")
    assert quarantine.height == 0, quarantine["reason"].to_list()  # the mapping error is fixed, not pending


def test_missing_landing_directory_fails_with_one_clear_line(tmp_path, warehouse_path):
    result = materialize(
        ["raw/jira_tasks", "raw/jira_events", "raw/jira_comments"],
        warehouse_path,
        tmp_path / "nowhere",
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "does not exist" in failure and "MLOPS_LANDING_DIR" in failure


def test_real_apache_jira_issues_reach_clean_tasks(landing_dir, warehouse_path):
    issues = shared_data("jira-apache-ase2015", "issues")
    shutil.copytree(issues, landing_dir / "jira")  # a temporary landing zone, never the repository
    result = materialize(PIPELINE, warehouse_path, landing_dir)
    assert result.success
    tasks = _clean(warehouse_path)
    assert tasks.height == 501
    assert tasks["project"].n_unique() == 21
    assert tasks["resolved_at"].is_not_null().sum() == 496
    with_deadline = tasks.filter(pl.col("deadline_at").is_not_null())
    assert with_deadline.height == 368
    resolved = with_deadline.filter(pl.col("resolved_at").is_not_null())
    assert resolved.height == 367
    assert int(resolved["is_late"].sum()) == 122
    # Timestamps are UTC and exact: ANY23-174 was resolved 2014-05-09T02:39:42.734+0000.
    row = tasks.filter(pl.col("key") == "ANY23-174").row(0, named=True)
    assert row["resolved_at"].isoformat() == "2014-05-09T02:39:42.734000+00:00"
    events = Warehouse(warehouse_path).read_table("clean.task_events")
    # the history the as-of features read: status moves, hand-overs, re-prioritisation, due-date and
    # fix-version changes from the changelogs, one event per comment (issue 13)
    assert events.height > 0
    assert set(events["field"].unique()) == {
        "status",
        "assignee",
        "priority",
        "duedate",
        "fix_version",
        "comment",
    }
    assignees = events.filter(pl.col("field") == "assignee")
    assert assignees["to_value"].drop_nulls().str.starts_with("u_").all()  # pseudonymous, like assignee_id
    files = Warehouse(warehouse_path).query(
        "SELECT count(*) AS n FROM raw.ingested_files WHERE encoding = 'latin-1'"
    )
    assert files["n"][0] == 11


def test_parallel_parsing_gives_the_same_raw_rows_as_serial(sample, landing_dir, tmp_path, monkeypatch):
    from mlops_assets.lib import ingestion

    serial, parallel = Warehouse(tmp_path / "serial.duckdb"), Warehouse(tmp_path / "parallel.duckdb")
    ingestion.ingest_source(serial, landing_dir, "jira")
    monkeypatch.setattr(ingestion, "PARALLEL_MIN_BYTES", 0)  # force the worker-process path
    ingestion.ingest_source(parallel, landing_dir, "jira")
    query = "SELECT * EXCLUDE (ingested_at) FROM raw.jira_tasks ORDER BY record_hash"
    assert serial.query(query).equals(parallel.query(query))
    assert serial.query(query).height > 0


def test_selecting_clean_tasks_with_its_upstream_builds_just_that_table(sample, landing_dir, warehouse_path):
    # What `dagster asset materialize --select '*clean/tasks'` asks for.
    result = materialize(dg.AssetSelection.assets(["clean", "tasks"]).upstream(), warehouse_path, landing_dir)
    assert result.success
    wh = Warehouse(warehouse_path)
    assert wh.read_table("clean.tasks").height > 0
    assert not wh.table_exists("clean.quarantine")  # not selected, not written
    materialized = {
        m.asset_key.to_user_string() for m in result.asset_materializations_for_node("clean_tasks")
    }
    assert materialized == {"clean/tasks"}


def test_batched_writes_survive_a_crash_half_way_and_lose_nothing(sample, landing_dir, tmp_path, monkeypatch):
    from mlops_assets.lib import ingestion

    whole = Warehouse(tmp_path / "whole.duckdb")
    ingestion.ingest_source(whole, landing_dir, "jira")
    monkeypatch.setattr(ingestion, "WRITE_BATCH_BYTES", 1)  # one transaction per file
    monkeypatch.setattr(ingestion, "CHUNK_FILES", 1)
    real_write, calls = ingestion._write, []

    def dying_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed half-way")
        return real_write(*args, **kwargs)

    batched = Warehouse(tmp_path / "batched.duckdb")
    monkeypatch.setattr(ingestion, "_write", dying_write)
    with pytest.raises(RuntimeError, match="killed half-way"):
        ingestion.ingest_source(batched, landing_dir, "jira")
    committed = batched.query("SELECT count(*) AS n FROM raw.ingested_files")["n"][0]
    assert committed == 2  # the files before the crash are in, each with its manifest row
    monkeypatch.setattr(ingestion, "_write", real_write)
    report = ingestion.ingest_source(batched, landing_dir, "jira")
    assert report.files_skipped == committed
    query = "SELECT * EXCLUDE (ingested_at) FROM raw.jira_tasks ORDER BY record_hash"
    assert whole.query(query).equals(batched.query(query))


def test_a_clean_layer_that_fails_a_blocking_check_is_never_published(
    landing_dir, warehouse_path, monkeypatch
):
    """Write-audit-publish (issue 20 item 1): a failed check leaves the previous tables for readers."""
    from mlops_assets.defs.cleaning import assets as cleaning_assets
    from mlops_assets.lib.cleaning import build_clean

    (landing_dir / "jira").mkdir()
    issue = {"id": "1", "key": "DEMO-1", "fields": {"summary": "t", "created": "2025-01-02T10:00:00.000+0000",
             "project": {"key": "DEMO"}, "status": {"name": "Open", "statusCategory": {"key": "new"}},
             "comment": {"total": -5, "comments": []}}}  # fmt: skip
    good = {**issue, "id": "2", "key": "DEMO-2", "fields": {**issue["fields"], "comment": {"total": 1}}}
    (landing_dir / "jira" / "page.json").write_text(json.dumps({"issues": [good, issue]}))
    result = materialize(PIPELINE, warehouse_path, landing_dir)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["tasks_schema_valid"] and checks["task_id_unique"]
    assert _clean(warehouse_path)["task_id"].to_list() == [
        "jira:DEMO-2"
    ]  # the -5 is quarantined, not published
    q = Warehouse(warehouse_path).read_table("clean.quarantine")
    assert q.filter(pl.col("task_id") == "jira:DEMO-1")["reason"][0].startswith(
        "negative count (n_comments -5)"
    )
    published = _clean(warehouse_path)

    def duplicated(wh, now):  # a defect no rule catches: the table-level check must stop the publish
        tables, stats = build_clean(wh, now)
        tables["clean.tasks"] = pl.concat([tables["clean.tasks"], tables["clean.tasks"]])
        return tables, stats

    monkeypatch.setattr(cleaning_assets, "build_clean", duplicated)
    failed = materialize(
        dg.AssetSelection.groups("cleaning"), warehouse_path, landing_dir, raise_on_error=False
    )
    assert not failed.success
    message = str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert "not published" in message and "task_id_unique" in message
    assert "jira:DEMO-2 (" in message and "page.json" in message
    assert _clean(warehouse_path).equals(published)
