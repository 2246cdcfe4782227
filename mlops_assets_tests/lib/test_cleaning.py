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

    outcome = schemas.validate(
        schemas.QuarantineSchema, quarantine.with_columns(pl.lit(None, pl.String).alias("reason"))
    )
    assert not outcome.passed and "reason" in outcome.summary()


@pytest.mark.parametrize("created", ["1970-01-01T00:00:00Z", "1989-12-31T23:59:59Z", "2026-12-06T00:00:00Z"])
def test_cleaning_quarantines_implausible_creation_dates_with_the_rule_serving_uses(
    landing_dir, tmp_path, created
):
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text(
        f"ID,Created,Title,Points\nL-1,{created},x,1\nL-2,2024-03-01T10:00:00Z,y,1\n"
    )
    (landing_dir / "csv" / "lin.yaml").write_text(MAPPING)

    tables = _clean(landing_dir, tmp_path, "csv")

    assert tables["clean.tasks"]["task_id"].to_list() == ["csv:lin:L-2"]
    expected = task_rules.created_at_problem(datetime.fromisoformat(created), NOW)
    assert expected is not None and _reasons(tables["clean.quarantine"]) == {"csv:lin:L-1": expected}


# --- issue 20 item 1: a negative count never reaches clean.tasks; the contract is checked before publishing


def _negative_counts(landing: Path) -> None:
    for source in ("jira", "github", "trello", "csv"):
        (landing / source).mkdir()
    bad = _issue("OPS-2", 1)
    bad["fields"]["comment"] = {"total": -5, "comments": []}
    (landing / "jira" / "page.json").write_text(json.dumps({"issues": [_issue("OPS-1", 1), bad]}))
    issues = [
        {
            "number": n,
            "title": f"task {n}",
            "state": "open",
            "created_at": "2024-03-01T10:00:00Z",
            "updated_at": "2024-03-01T10:00:00Z",
            "repository_url": "https://api.github.com/repos/acme/web",
            "user": {"login": "ada"},
            "labels": [],
            "comments": comments,
        }
        for n, comments in ((1, 2), (2, -1))
    ]
    (landing / "github" / "issues.json").write_text(json.dumps(issues))
    cards = [
        {
            "id": f"5e5471a0bcd1b15d1f6e3f{n:02x}",
            "name": f"task {n}",
            "idList": "l1",
            "dateLastActivity": "2024-03-01T10:00:00Z",
            "badges": {"comments": comments},
        }
        for n, comments in ((1, 0), (2, -3))
    ]
    (landing / "trello" / "board.json").write_text(
        json.dumps(
            {
                "id": "5e5471a0bcd1b15d1f6e3f00",
                "name": "Web",
                "lists": [{"id": "l1", "name": "To Do"}],
                "cards": cards,
                "actions": [],
            }
        )
    )
    (landing / "csv" / "lin.csv").write_text(
        "ID,Created,Title,Comments\nL-1,2024-03-01T10:00:00Z,ok,1\nL-2,2024-03-01T10:00:00Z,bad,-7\n"
    )
    (landing / "csv" / "lin.yaml").write_text(
        "key: ID\ncreated_at: Created\ntitle: Title\nn_comments: Comments\n"
    )


def test_a_negative_comment_count_is_quarantined_in_every_source_naming_task_and_file(landing_dir, tmp_path):
    _negative_counts(landing_dir)
    tables = _clean(landing_dir, tmp_path, "jira", "github", "trello", "csv")
    tasks, quarantine = tables["clean.tasks"], tables["clean.quarantine"]
    assert tasks["task_id"].to_list() == [
        "csv:lin:L-1",
        "github:acme/web#1",
        "jira:OPS-1",
        "trello:5e5471a0bcd1b15d1f6e3f01",
    ]
    assert schemas.validate(schemas.TasksSchema, tasks).passed
    rows = {r["task_id"]: r for r in quarantine.iter_rows(named=True)}
    expected = {
        "jira:OPS-2": ("n_comments -5", "page.json"),
        "github:acme/web#2": ("n_comments -1", "issues.json"),
        "trello:5e5471a0bcd1b15d1f6e3f02": ("n_comments -3", "board.json"),
        "csv:lin:L-2": ("n_comments -7", "lin.csv"),
    }
    for task_id, (what, file) in expected.items():
        assert what in rows[task_id]["reason"] and "counts must be >= 0" in rows[task_id]["reason"]
        assert Path(rows[task_id]["source_file"]).name == file and rows[task_id]["locator"]


def test_the_audit_quarantines_a_row_the_rules_let_through_and_publishes_a_valid_rest(landing_dir, tmp_path):
    from mlops_assets.lib.cleaning import audit_tasks

    (landing_dir / "jira").mkdir()
    (landing_dir / "jira" / "page.json").write_text(
        json.dumps({"issues": [_issue("OPS-1", 1), _issue("OPS-2", 2)]})
    )
    tasks = _clean(landing_dir, tmp_path, "jira")["clean.tasks"]
    # a value no cleaning rule knows of yet (here: a person id that is not pseudonymous)
    staged = tasks.with_columns(
        pl.when(pl.col("task_id") == "jira:OPS-2")
        .then(pl.lit("ada@example.com"))
        .otherwise(pl.col("reporter_id"))
        .alias("reporter_id"),
        pl.lit("issues[1]").alias("_locator"),
    )
    kept, refused, outcome = audit_tasks(staged)
    assert kept["task_id"].to_list() == ["jira:OPS-1"] and outcome.passed
    assert refused["task_id"].to_list() == ["jira:OPS-2"] and refused["locator"].to_list() == ["issues[1]"]
    assert refused["reason"][0].startswith("jira:OPS-2: reporter_id = ada@example.com fails str_startswith")
    assert schemas.validate(schemas.QuarantineSchema, refused).passed


def test_a_failed_check_names_the_task_and_the_file(landing_dir, tmp_path):
    (landing_dir / "jira").mkdir()
    (landing_dir / "jira" / "page.json").write_text(json.dumps({"issues": [_issue("OPS-1", 1)]}))
    tasks = _clean(landing_dir, tmp_path, "jira")["clean.tasks"]
    outcome = schemas.validate(schemas.TasksSchema, pl.concat([tasks, tasks]))  # a duplicate task_id
    assert not outcome.passed
    assert "jira:OPS-1 (" in outcome.summary() and "page.json" in outcome.summary()


def test_e_mail_addresses_in_free_text_are_masked_at_cleaning(landing_dir, tmp_path):
    """Issue 20 item 7: no table past raw holds an address, titles and labels included."""
    (landing_dir / "jira").mkdir()
    issue = _issue("OPS-1", 1)
    issue["fields"].update(
        summary="Ask bob.smith+ops@mail.example.co.uk or ALICE@corp.io why", labels=["owner:eve@x.org", "web"]
    )
    (landing_dir / "jira" / "page.json").write_text(json.dumps({"issues": [issue]}))
    (landing_dir / "csv").mkdir()
    (landing_dir / "csv" / "lin.csv").write_text(
        "ID,Created,Title,Labels\nL-1,2024-03-01T10:00:00Z,mail a@b.io now,x@y.dev|ok\n"
    )
    (landing_dir / "csv" / "lin.yaml").write_text(
        "key: ID\ncreated_at: Created\ntitle: Title\nlabels: {column: Labels, separator: '|'}\n"
    )
    tasks = _clean(landing_dir, tmp_path, "jira", "csv")["clean.tasks"]
    rows = {r["task_id"]: r for r in tasks.iter_rows(named=True)}
    assert rows["jira:OPS-1"]["title"] == "Ask <email> or <email> why"
    assert rows["jira:OPS-1"]["labels"] == "owner:<email>,web"
    assert (
        rows["csv:lin:L-1"]["title"] == "mail <email> now" and rows["csv:lin:L-1"]["labels"] == "<email>,ok"
    )
    text = " ".join(str(v) for r in tasks.iter_rows() for v in r)
    assert "@" not in text.replace("<email>", "")


def test_conflicting_duplicates_tie_break_in_natural_order_line_10_after_line_9(landing_dir, tmp_path):
    """Issue 20 item 8: the later line wins a tie, as "line 10" comes after "line 9" (text order had line 9 win)."""
    (landing_dir / "csv").mkdir()
    rows = [f"F-{n},2024-03-01T10:00:00Z,filler {n}" for n in range(1, 8)]
    (landing_dir / "csv" / "lin.csv").write_text(
        "ID,Created,Title\n"
        + "\n".join(rows)
        + "\nDUP,2024-03-01T10:00:00Z,on line nine\nDUP,2024-03-01T10:00:00Z,on line ten\n"
    )
    (landing_dir / "csv" / "lin.yaml").write_text("key: ID\ncreated_at: Created\ntitle: Title\n")
    tables = _clean(landing_dir, tmp_path, "csv")
    kept = tables["clean.tasks"].filter(pl.col("task_id") == "csv:lin:DUP")
    assert kept["title"].to_list() == ["on line ten"]
    [reason] = tables["clean.quarantine"].filter(pl.col("task_id") == "csv:lin:DUP")["reason"].to_list()
    assert reason.endswith("line 10, fix or remove the other export (or map an updated_at column)")


def test_a_json_object_where_text_belongs_is_rejected_not_stored_as_garbage(tmp_path):
    """Issue 20 item 8: a title {"obj": 1} used to become the text '{1}'."""
    from mlops_assets.lib.sources import github, jira

    bad = _issue("OPS-2", 1)
    bad["fields"]["summary"] = {"obj": 1}
    (tmp_path / "page.json").write_text(json.dumps({"issues": [_issue("OPS-1", 1), bad]}))
    parsed = jira.parse(tmp_path / "page.json")
    assert [t["key"] for t in parsed.records["tasks"]] == ["OPS-1"]
    [reject] = parsed.rejects
    assert 'title is a JSON object ({"obj": 1})' in reject.reason and "OPS-2" in reject.reason
    issues = [
        {
            "number": 1,
            "title": ["a", "list"],
            "state": "open",
            "created_at": "2024-03-01T10:00:00Z",
            "repository_url": "https://api.github.com/repos/acme/web",
            "user": {"login": "ada"},
            "labels": [],
        }
    ]
    (tmp_path / "issues.json").write_text(json.dumps(issues))
    parsed = github.parse(tmp_path / "issues.json")
    assert parsed.records["tasks"] == [] and "title is a JSON list" in parsed.rejects[0].reason


def test_control_bytes_of_a_file_header_never_reach_a_message(tmp_path):
    """Issue 20 item 8: an ESC sequence or CR in a CSV header stays out of reasons and log lines."""
    from mlops_assets.lib.sources import csv_mapped
    from mlops_assets.lib.sources.base import SourceFormatError

    (tmp_path / "lin.csv").write_text("I\x1b[31mD\r\x00,Created\nL-1,2024-03-01T10:00:00Z\n")
    (tmp_path / "lin.yaml").write_text("key: ID\ncreated_at: Created\n")
    with pytest.raises(SourceFormatError) as raised:
        csv_mapped.parse(tmp_path / "lin.csv")
    message = str(raised.value)
    assert "is not a column of lin.csv" in message
    assert not any(ord(c) < 32 or c == "\x7f" for c in message), repr(message)
