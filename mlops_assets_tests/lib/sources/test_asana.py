"""The Asana project-CSV parser on the format sample and on small broken exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.lib.sources import asana
from mlops_assets.lib.sources.base import TASK_COLUMNS, SourceFormatError, pseudonymize
from mlops_assets_tests.conftest import shared_data

HEADER = [
    "Task ID",
    "Created At",
    "Completed At",
    "Last Modified",
    "Name",
    "Section/Column",
    "Assignee",
    "Assignee Email",
    "Start Date",
    "Due Date",
    "Tags",
    "Notes",
    "Projects",
    "Parent task",
    "Blocked By (Dependencies)",
    "Blocking (Dependencies)",
]


def _row(task_id: str, **values: str) -> list[str]:
    defaults = {
        "Created At": "2024-01-02",
        "Last Modified": "2024-01-03",
        "Name": f"Task {task_id}",
        "Projects": "Web",
    }
    merged = {**defaults, **values, "Task ID": task_id}
    return [merged.get(column, "") for column in HEADER]


def _csv(tmp_path: Path, rows: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp_path / "web-project.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


@pytest.fixture(scope="module")
def sample():
    return asana.parse(shared_data("exports", "asana", "format-sample.csv"))


def test_sample_counts_and_identical_duplicates(sample):
    tasks = sample.records["tasks"]
    with shared_data("exports", "asana", "format-sample.csv").open(newline="", encoding="utf-8") as fh:
        assert sum(1 for _ in csv.reader(fh)) - 1 == 13
    # 13 data rows: task 1244 appears three times, identical in every column -> once, 2 counted
    assert len(tasks) == 13 - 2
    assert sample.shape == "asana-project-csv; 2 identical duplicate rows dropped"
    assert sample.rejects == [] and sample.encoding == "utf-8"
    assert [t["key"] for t in tasks].count("1244") == 1
    # same name, different Task IDs: separate tasks
    assert sorted(t["key"] for t in tasks if t["title"] == "Duplicate test") == ["1241", "1242", "1243"]
    for task in tasks:
        assert set(task) == set(TASK_COLUMNS) | {"locator", "payload"}
        assert "redacted@example.invalid" not in {task["assignee_id"], task["reporter_id"]}


def test_sample_values(sample):
    tasks = {t["key"]: t for t in sample.records["tasks"]}
    done = tasks["1234"]
    assert (done["task_id"], done["project"], done["status"], done["status_category"]) == (
        "asana:1234",
        "Sample",
        "Completed",
        "done",
    )
    assert done["created_at"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert done["resolved_at"] == datetime(2024, 2, 1, tzinfo=UTC)
    assert done["due_at"] == done["deadline_at"] == datetime(2024, 1, 15, tzinfo=UTC)
    parent = tasks["1235"]
    assert (parent["n_subtasks"], parent["labels"], parent["n_labels"], parent["status"]) == (
        3,
        "Tag1,Tag2",
        2,
        "Current Focus",
    )
    assert parent["assignee_id"] == pseudonymize("asana", "redacted@example.invalid")
    for key in ("1238", "1239", "1240"):
        assert (tasks[key]["type"], tasks[key]["project"], tasks[key]["status"]) == (
            "subtask",
            "Sample",
            "Open",
        )
    emoji = tasks["1236"]
    assert emoji["title"] == "\U0001f4bb Test task 3 with an emoji"
    assert emoji["description_length"] == len("This one has some notes\nMultiple lines in fact")
    assert emoji["project"] == "Sample"  # first of "Sample, Sample2"
    assert json.loads(emoji["payload"])["Projects"] == "Sample, Sample2"
    assert tasks["1237"]["locator"] == "line 6"  # after a two-line quoted note
    assert tasks["1238"]["locator"] == "line 15"  # after a nine-line one


def test_priority_from_custom_field_else_tags_and_dependencies(tmp_path):
    header = HEADER + ["Priority", "Estimated time"]
    rows = [
        _row("1", Tags="High, frontend") + ["", "3"],
        _row("2", Tags="High") + ["Low", ""],
        _row("3", **{"Blocked By (Dependencies)": "Task 1, Task 2", "Blocking (Dependencies)": "Task 4"})
        + ["", ""],
    ]
    tasks = {t["key"]: t for t in asana.parse(_csv(tmp_path, rows, header)).records["tasks"]}
    assert (tasks["1"]["priority"], tasks["2"]["priority"], tasks["3"]["priority"]) == ("High", "Low", None)
    assert tasks["3"]["n_links"] == 3 and tasks["1"]["n_links"] == 0


def test_duplicate_ids_with_different_versions_are_both_kept(tmp_path):
    rows = [
        _row("9", **{"Last Modified": "2024-01-03"}),
        _row("9", **{"Last Modified": "2024-01-09", "Completed At": "2024-01-09"}),
    ]
    parsed = asana.parse(_csv(tmp_path, rows))
    assert [t["updated_at"].day for t in parsed.records["tasks"]] == [3, 9]
    assert parsed.shape == "asana-project-csv"


def test_open_task_in_a_doing_section_is_in_progress(tmp_path):
    rows = [_row("1", **{"Section/Column": "Doing"}), _row("2", **{"Section/Column": "Done"})]
    tasks = asana.parse(_csv(tmp_path, rows)).records["tasks"]
    # done only with Completed At: a task sitting in "Done" but not completed stays open
    assert [(t["status"], t["status_category"]) for t in tasks] == [
        ("Doing", "in_progress"),
        ("Done", "todo"),
    ]


def test_bad_rows_become_rejects_with_reasons(tmp_path):
    rows = [
        _row("1"),
        _row("2", **{"Created At": "2024-02-31"}),
        _row("3", **{"Due Date": "soon"}),
        _row("", Name="no id"),
        _row("5", **{"Created At": ""}),
        _row("6") + ["extra", "fields"],
    ]
    parsed = asana.parse(_csv(tmp_path, rows))
    assert [t["key"] for t in parsed.records["tasks"]] == ["1"]
    assert [r.reason for r in parsed.rejects] == [
        "line 7: 18 fields but the header has 16 (a comma in an unquoted value?)",
        "line 3 (Task ID 2): 'Created At' = '2024-02-31' is not a date (expected YYYY-MM-DD, e.g. 2024-01-31)",
        "line 4 (Task ID 3): 'Due Date' = 'soon' is not a date (expected YYYY-MM-DD, e.g. 2024-01-31)",
        "line 5 (Task ID ?): 'Task ID' is empty",
        "line 6 (Task ID 5): 'Created At' is empty",
    ]
    assert len(parsed.records["tasks"]) + len(parsed.rejects) == len(rows)


def test_missing_optional_columns_are_tolerated(tmp_path):
    header = ["Name", "Task ID", "Completed At", "Created At"]
    path = _csv(tmp_path, [["Write docs", "77", "", "2024-03-01"]], header)
    (task,) = asana.parse(path).records["tasks"]
    assert (task["task_id"], task["project"], task["updated_at"], task["labels"]) == (
        "asana:77",
        "web-project",
        None,
        "",
    )


@pytest.mark.parametrize("missing", ["Task ID", "Created At", "Completed At", "Name"])
def test_missing_required_column_is_named(tmp_path, missing):
    header = [c for c in HEADER if c != missing]
    path = _csv(tmp_path, [], header)
    with pytest.raises(SourceFormatError, match=f"missing required column\\(s\\) '{missing}'"):
        asana.parse(path)


def test_semicolon_export_is_a_format_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(";".join(HEADER) + "\n1;2024-01-01\n", encoding="utf-8")
    with pytest.raises(SourceFormatError, match="expected Asana's project CSV export"):
        asana.parse(path)


def test_empty_file_is_a_format_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(SourceFormatError, match="is empty"):
        asana.parse(path)


def test_non_utf8_export_is_decoded_and_flagged(tmp_path):
    path = _csv(
        tmp_path, [_row("1", Name="R\u00e9sum\u00e9 builder", Notes="na\u00efve")], encoding="latin-1"
    )
    parsed = asana.parse(path)
    assert parsed.encoding == "latin-1"
    assert parsed.records["tasks"][0]["title"] == "R\u00e9sum\u00e9 builder"


def test_subtask_counts_once_when_parent_names_repeat(tmp_path):
    rows = [
        _row("1", Name="Release", **{"Created At": "2024-01-01"}),
        _row("2", Name="Release", **{"Created At": "2024-02-01", "Projects": "Mobile"}),
        _row("3", Name="Notes", **{"Created At": "2024-02-05", "Parent task": "Release", "Projects": ""}),
        _row("4", Name="QA", **{"Created At": "2024-01-10", "Parent task": "Release", "Projects": ""}),
        _row("5", Name="Orphan", **{"Parent task": "Not in this file", "Projects": ""}),
    ]
    tasks = {t["key"]: t for t in asana.parse(_csv(tmp_path, rows)).records["tasks"]}
    # each subtask goes to the namesake created last before it: 3 -> task 2, 4 -> task 1
    assert (tasks["1"]["n_subtasks"], tasks["2"]["n_subtasks"]) == (1, 1)
    assert (tasks["3"]["project"], tasks["4"]["project"], tasks["5"]["project"]) == (
        "Mobile",
        "Web",
        "web-project",
    )
    assert sum(t["n_subtasks"] for t in tasks.values()) == 2


# --- JSON: "Export/Print -> JSON" of a project and the API's task pages ---------------------------


def _task(gid: str, **over) -> dict:
    task = {
        "gid": gid,
        "resource_type": "task",
        "name": f"Task {gid}",
        "created_at": "2024-01-02T09:30:00.000Z",
        "modified_at": "2024-01-03T10:00:00.000Z",
        "completed": False,
        "completed_at": None,
        "due_on": None,
        "due_at": None,
        "assignee": None,
        "memberships": [{"project": {"gid": "77", "name": "Web"}, "section": {"gid": "5", "name": "To do"}}],
        "projects": [{"gid": "77", "name": "Web"}],
        "tags": [],
        "parent": None,
        "notes": "",
        "custom_fields": [],
    }
    task.update(over)
    return task


def _json(tmp_path: Path, doc, name: str = "web-project.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_json_export_gives_the_columns_the_csv_export_gives_for_the_same_tasks(tmp_path):
    tasks = [
        _task("1201", name="Launch", completed=True, completed_at="2024-02-01T17:00:00.000Z",
              tags=[{"gid": "9", "name": "P1"}], notes="Ship it", due_on="2024-01-31",
              assignee={"gid": "42", "name": "Ada Lovelace", "email": "ada@example.com"},
              dependencies=[{"gid": "1202"}], dependents=[]),
        _task("1202", name="Review copy", due_at="2024-01-20T12:00:00.000Z",
              memberships=[{"project": {"gid": "77", "name": "Web"}, "section": {"gid": "6", "name": "Doing"}}],
              custom_fields=[{"gid": "3", "name": "Priority", "display_value": "High"}]),
    ]  # fmt: skip
    rows = [
        _row("1201", **{"Name": "Launch", "Completed At": "2024-02-01", "Tags": "P1", "Notes": "Ship it",
                        "Due Date": "2024-01-31", "Assignee": "Ada Lovelace", "Assignee Email": "ada@example.com",
                        "Section/Column": "To do", "Blocked By (Dependencies)": "Review copy",
                        "Created At": "2024-01-02", "Last Modified": "2024-01-03"}),
        _row("1202", **{"Name": "Review copy", "Section/Column": "Doing", "Due Date": "2024-01-20"}),
    ]  # fmt: skip
    from_json = asana.parse(_json(tmp_path, {"data": tasks}))
    from_csv = asana.parse(_csv(tmp_path, rows))

    assert from_json.shape == "asana-json" and from_json.rejects == []
    same = ("task_id", "key", "project", "title", "type", "status", "status_category", "assignee_id", "n_links",
            "n_labels", "labels", "description_length", "n_subtasks")  # fmt: skip
    for j, c in zip(from_json.records["tasks"], from_csv.records["tasks"], strict=True):
        assert {k: j[k] for k in same} == {k: c[k] for k in same}
        assert set(j) == set(TASK_COLUMNS) | {"locator", "payload"}
    launch, review = from_json.records["tasks"]
    assert launch["resolved_at"] == datetime(
        2024, 2, 1, 17, tzinfo=UTC
    )  # the JSON's time of day, not midnight
    assert launch["priority"] == "P1" and review["priority"] == "High"  # a tag / the Priority field
    assert review["due_at"] == review["deadline_at"] == datetime(2024, 1, 20, 12, tzinfo=UTC)
    assert review["status"] == "Doing" and review["status_category"] == "in_progress"
    assert launch["assignee_id"] == pseudonymize("asana", "ada@example.com")
    assert json.loads(launch["payload"])["name"] == "Launch" and launch["locator"] == "data[0]"


def test_nested_subtasks_and_an_api_page_are_read(tmp_path):
    sub = _task("2", name="Write tests", memberships=[], projects=[], parent={"gid": "1", "name": "Parent"})
    parent = _task("1", name="Parent", subtasks=[sub, _task("3", memberships=[], projects=[])])
    parsed = asana.parse(
        _json(tmp_path, {"data": [parent], "next_page": {"offset": "eyJ0", "uri": "https://x"}})
    )
    by_key = {t["key"]: t for t in parsed.records["tasks"]}
    assert sorted(by_key) == ["1", "2", "3"] and parsed.rejects == []
    assert by_key["1"]["n_subtasks"] == 2 and by_key["1"]["type"] == "task"
    assert by_key["2"]["type"] == by_key["3"]["type"] == "subtask"
    assert by_key["2"]["project"] == by_key["3"]["project"] == "Web"  # the parent's project
    assert by_key["3"]["locator"] == "data[0].subtasks[1]"
    assert "subtasks" not in json.loads(by_key["1"]["payload"])  # each subtask is its own record


def test_bad_json_tasks_become_rejects_and_the_good_ones_stay(tmp_path):
    tasks = [
        _task("1"),
        _task("", name="no gid"),
        _task("3", created_at="yesterday"),
        _task("4", completed=True, completed_at=None),
        "a string",
        _task("6", created_at="9999-12-31T23:00:00-05:00"),
        _task("7", tags={"gid": "1"}),
    ]
    parsed = asana.parse(_json(tmp_path, {"data": tasks}))
    assert [t["key"] for t in parsed.records["tasks"]] == ["1"]
    reasons = " | ".join(r.reason for r in parsed.rejects)
    assert len(parsed.rejects) == 6
    for words in ("'gid' is missing", "'created_at' = 'yesterday' is not a date", "'completed_at' is missing",
                  "not an Asana task object", "outside years 1-9999", "'tags' is a dict"):  # fmt: skip
        assert words in reasons


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"errors": [{"message": "Not Authorized"}]}', "expected Asana's project JSON export"),
        ('[{"id_x": 1}]', "no element looks like an Asana task"),
        ('{"data": [', "is not valid JSON"),
        (
            '{"data": [{"gid": "1", "name": "a", "resource_type": "task"}]}',
            "compact form .* opt_fields=name,created_at",
        ),
    ],
)
def test_a_json_file_that_is_no_asana_export_says_what_is_expected(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SourceFormatError, match=message):
        asana.parse(path)


def test_the_json_and_the_csv_export_of_one_project_are_ingested_and_a_workbook_is_named(tmp_path):
    from mlops_assets.lib import ingestion
    from mlops_assets.lib.warehouse import Warehouse

    folder = tmp_path / "landing" / "asana"
    folder.mkdir(parents=True)
    _json(folder, {"data": [_task("1"), _task("2")]})
    _csv(folder, [_row("3")])
    (folder / "export.xlsx").write_bytes(b"PK\x03\x04")
    (folder / "notes.md").write_text("how we export")
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "asana")

    assert report.files_ingested == 2 and report.files_unreadable == 0
    assert sorted(wh.query("SELECT key FROM raw.asana_tasks")["key"].to_list()) == ["1", "2", "3"]
    assert report.messages == [
        "export.xlsx: not read: an Excel workbook: save it as CSV (UTF-8); the asana folder reads .csv, .json files"
    ]
