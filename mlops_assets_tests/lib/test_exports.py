"""The PM exports: scores joined with the task, CSV safe from formula injection, atomic files, escaped HTML."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.lib import exports, scoring

AS_OF = datetime(2026, 10, 31, 18, tzinfo=UTC)
UTC_US = pl.Datetime("us", "UTC")


def _tasks() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task_id": ["jira:PAY-1", "jira:PAY-2", "jira:PAY-3", "github:web#4", "csv:x-5"],
            "project": ["PAY", "PAY", "PAY", "acme/web", "../evil"],
            "key": ["PAY-1", "PAY-2", "PAY-3", "web#4", "x-5"],
            "title": [
                '=HYPERLINK("http://evil","click")',
                "<script>alert(1)</script>",
                "+1 for SSO",
                "@SUM(A1)",
                "-2 days\tslack",
            ],
            "status": ["In Progress", "To Do", "To Do", "open", "\rtodo"],
            "assignee_id": ["u_1", None, "u_2", "u_3", None],
            "source": ["jira", "jira", "jira", "github", "csv"],
            "deadline_at": [datetime(2026, 11, 5, tzinfo=UTC), None, None, None, None],
            "due_at": [None, datetime(2026, 11, 9, tzinfo=UTC), None, None, None],
        },
        schema_overrides={"deadline_at": UTC_US, "due_at": UTC_US},
    )


def _scores() -> pl.DataFrame:
    rows = [
        ("jira:PAY-1", 0.2),
        ("jira:PAY-2", 0.7),
        ("jira:PAY-3", None),
        ("github:web#4", 0.3),
        ("csv:x-5", 0.9),
    ]
    return pl.DataFrame(
        [
            {
                "task_id": t,
                "late_risk": r,
                "risk_band": scoring.risk_band(r),
                "reason_1": "no assignee raises the risk" if r else None,
                "reason_2": None,
                "reason_3": None,
                "predicted_cycle_days": 3.5,
                "predicted_completion_at": datetime(2026, 11, 3, tzinfo=UTC),
                "completion_overdue": False,
                "warnings": [] if r is not None else [scoring.NO_DEADLINE],
                "late_risk_version": "2",
                "cycle_time_version": "1",
                "scored_at": AS_OF,
            }
            for t, r in rows
        ],
        schema=scoring.SCORE_SCHEMA,
    )


def test_the_view_holds_what_a_pm_reads_riskiest_first_per_project():
    view = exports.pm_view(_scores(), _tasks())
    assert view.columns == list(exports.PM_COLUMNS)
    pay = view.filter(pl.col("project") == "PAY")
    assert pay["key"].to_list() == ["PAY-2", "PAY-1", "PAY-3"]  # high, low, then no deadline
    assert pay["risk_band"].to_list() == ["high", "low", "no deadline"]
    assert pay["deadline"].to_list()[:2] == [
        datetime(2026, 11, 9, tzinfo=UTC),
        datetime(2026, 11, 5, tzinfo=UTC),
    ]
    assert pay.filter(pl.col("key") == "PAY-3")["warnings"].item() == scoring.NO_DEADLINE


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_text_cells_that_a_spreadsheet_would_evaluate_are_prefixed(tmp_path):
    result = exports.write_exports(exports.pm_view(_scores(), _tasks()), tmp_path, AS_OF)
    rows = {r["task_id"]: r for r in _read_csv(result.csv)}
    assert rows["jira:PAY-1"]["title"] == '\'=HYPERLINK("http://evil","click")'
    assert rows["jira:PAY-3"]["title"] == "'+1 for SSO"
    assert rows["github:web#4"]["title"] == "'@SUM(A1)"
    assert rows["csv:x-5"]["title"] == "'-2 days\tslack"
    assert rows["csv:x-5"]["status"] == "'\rtodo"
    assert rows["csv:x-5"]["project"] == "../evil"
    assert rows["jira:PAY-2"]["title"] == "<script>alert(1)</script>"  # not a formula: unchanged in a CSV
    assert rows["jira:PAY-2"]["late_risk"] == "0.7"  # numbers stay numbers
    assert rows["jira:PAY-3"]["late_risk"] == "" and rows["jira:PAY-3"]["risk_band"] == "no deadline"
    assert rows["jira:PAY-1"]["deadline"] == "2026-11-05T00:00:00Z"
    assert not any(
        v.startswith(("=", "+", "-", "@", "\t", "\r"))
        for r in rows.values()
        for v in r.values()
        if v and not v.replace(".", "").isdigit()
    )
    # Parquet keeps the values as they are (typed; no spreadsheet evaluates it)
    assert (
        pl.read_parquet(result.parquet)
        .filter(pl.col("task_id") == "jira:PAY-1")["title"]
        .item()
        .startswith("=")
    )


def test_html_pages_per_project_escape_every_value_and_names_stay_inside(tmp_path):
    result = exports.write_exports(
        exports.pm_view(_scores(), _tasks()), tmp_path, AS_OF, "MLOPS_AS_OF=2026-10-31"
    )
    assert set(result.projects) == {"PAY", "acme/web", "../evil"}
    for page in result.projects.values():
        assert (
            page.parent == tmp_path / exports.PROJECTS_DIR
        )  # "../evil" and "acme/web" cannot leave the folder
    pay = result.projects["PAY"].read_text()
    assert "<script>" not in pay and "&lt;script&gt;alert(1)&lt;/script&gt;" in pay
    assert "Scores as of 2026-10-31 18:00 UTC (MLOPS_AS_OF=2026-10-31)" in pay
    assert pay.index("PAY-2") < pay.index("PAY-1") < pay.index("PAY-3")
    index = result.index.read_text()
    assert f'href="{result.projects["PAY"].name}"' in index and "acme/web" in index


def test_a_project_with_no_open_task_left_loses_its_page(tmp_path):
    first = exports.write_exports(exports.pm_view(_scores(), _tasks()), tmp_path, AS_OF)
    gone = first.projects["acme/web"]
    exports.write_exports(
        exports.pm_view(_scores().filter(pl.col("task_id") != "github:web#4"), _tasks()), tmp_path, AS_OF
    )
    assert not gone.exists() and first.projects["PAY"].exists()


def test_files_are_replaced_whole_a_reader_sees_the_old_or_the_new(tmp_path):
    target = tmp_path / "task_risk_scores.csv"
    target.write_text("old export\n")

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        assert target.read_text() == "old export\n"  # while the new one is being written
        tmp.write_text("new export\n")

    exports.atomic_write(target, write)
    assert target.read_text() == "new export\n"

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        exports.atomic_write(target, crash)
    assert target.read_text() == "new export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["task_risk_scores.csv"]  # no temporary file left behind
