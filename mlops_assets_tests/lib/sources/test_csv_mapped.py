"""The mapped generic-CSV source: a YAML mapping next to any tool's CSV export."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.lib.sources import csv_mapped
from mlops_assets.lib.sources.base import TASK_COLUMNS, SourceFormatError, pseudonymize
from mlops_assets_tests.conftest import shared_data

LINEAR_CSV = """ID,Team,Title,State,Created,Updated,Estimate,Labels,Assignee,Priority,Description
ENG-1,Web,Fix login,Done,05.01.2024 10:07,2024-01-09T08:00:00+00:00,3,bug|auth,ada@example.com,Urgent,Steps
ENG-2,Web,Add dark mode,In Progress,06.07.2024 23:30,,"1,5",,,Low,
ENG-3,Api,Rate limits,Backlog,07.01.2024 09:00,,,ops,grace@example.com,,
"""

LINEAR_YAML = """\
source_name: linear
timezone: Europe/Berlin
key: {column: ID}
project: {column: Team}
title: Title
status: {column: State}
status_category: {column: State, map: {Done: done, "In Progress": in_progress, Backlog: todo}}
created_at: {column: Created, format: "%d.%m.%Y %H:%M"}
updated_at: {column: Updated}
story_points: {column: Estimate}
labels: {column: Labels, separator: "|"}
assignee: {column: Assignee}
priority: {column: Priority, map: {Urgent: highest}}
description: {column: Description}
"""


def _drop(
    tmp_path: Path, csv_text: str, yaml_text: str | None, name: str = "linear", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(csv_text.encode(encoding))
    if yaml_text is not None:
        (tmp_path / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
    return path


def test_linear_export_through_a_mapping(tmp_path):
    parsed = csv_mapped.parse(_drop(tmp_path, LINEAR_CSV, LINEAR_YAML))
    assert parsed.rejects == [] and parsed.shape == "csv-mapped:linear"
    first, second, third = parsed.records["tasks"]
    assert set(first) == set(TASK_COLUMNS) | {"locator", "payload"}
    assert (first["task_id"], first["source"], first["project"], first["key"]) == (
        "csv:linear:ENG-1",
        "csv",
        "Web",
        "ENG-1",
    )
    # naive times are read in Europe/Berlin: 10:07 CET is 09:07 UTC, 23:30 CEST is 21:30 UTC
    assert first["created_at"] == datetime(2024, 1, 5, 9, 7, tzinfo=UTC)
    assert second["created_at"] == datetime(2024, 7, 6, 21, 30, tzinfo=UTC)
    assert first["updated_at"] == datetime(2024, 1, 9, 8, 0, tzinfo=UTC)
    assert [t["status_category"] for t in (first, second, third)] == ["done", "in_progress", "todo"]
    assert [t["priority"] for t in (first, second, third)] == ["highest", "Low", None]
    assert (first["labels"], first["n_labels"], second["n_labels"]) == ("bug,auth", 2, 0)
    assert (first["story_points"], second["story_points"], third["story_points"]) == (3.0, 1.5, None)
    assert first["assignee_id"] == pseudonymize("csv", "ada@example.com") and second["assignee_id"] is None
    assert (first["description_length"], second["description_length"]) == (5, 0)
    assert first["locator"] == "line 2"
    assert "ada@example.com" not in {
        v for t in parsed.records["tasks"] for k, v in t.items() if k != "payload"
    }


def test_constant_project_defaults_and_status_heuristics(tmp_path):
    csv_text = "Key,Opened,Status,Done at\nA-1,2024-03-01,Closed,2024-03-02\nA-2,2024-03-01T12:00:00Z,Doing,\nA-3,2024-03-01,,\n"
    yaml_text = "key: Key\ncreated_at: Opened\nstatus: Status\nresolved_at: {column: Done at}\nproject: {value: WEB}\n"
    tasks = csv_mapped.parse(_drop(tmp_path, csv_text, yaml_text, name="tracker")).records["tasks"]
    assert [t["task_id"] for t in tasks] == ["csv:tracker:A-1", "csv:tracker:A-2", "csv:tracker:A-3"]
    assert {t["project"] for t in tasks} == {"WEB"}
    assert [t["status_category"] for t in tasks] == ["done", "in_progress", "todo"]
    assert tasks[0]["resolved_at"] == datetime(2024, 3, 2, tzinfo=UTC)
    assert tasks[1]["created_at"] == datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_bad_rows_become_rejects_with_reasons(tmp_path):
    csv_text = (
        "ID,Team,Title,State,Created,Updated,Estimate,Labels,Assignee,Priority,Description\n"
        "ENG-1,Web,ok,Done,05.01.2024 10:07,,,,,,\n"
        "ENG-2,Web,impossible date,Done,31.02.2024 10:00,,,,,,\n"
        "ENG-3,Web,not a date,Done,soon,,,,,,\n"
        "ENG-4,Web,unknown state,Blocked,05.01.2024 10:07,,,,,,\n"
        "ENG-5,Web,bad estimate,Done,05.01.2024 10:07,,lots,,,,\n"
        ",Web,no key,Done,05.01.2024 10:07,,,,,,\n"
        "ENG-7,Web,no created,Done,,,,,,,\n"
    )
    parsed = csv_mapped.parse(_drop(tmp_path, csv_text, LINEAR_YAML))
    assert [t["key"] for t in parsed.records["tasks"]] == ["ENG-1"]
    assert [r.reason for r in parsed.rejects] == [
        "line 3 (ENG-2): 'Created' = '31.02.2024 10:00' is not a timestamp in format '%d.%m.%Y %H:%M' (day is out of range for month)",
        "line 4 (ENG-3): 'Created' = 'soon' is not a timestamp in format '%d.%m.%Y %H:%M'",
        "line 5 (ENG-4): 'State' = 'Blocked' is not in status_category.map of linear.yaml (add it, e.g. 'Blocked': todo)",
        "line 6 (ENG-5): 'Estimate' = 'lots' is not a number",
        "line 7: the key column is empty",
        "line 8 (ENG-7): created_at is empty",
    ]
    assert len(parsed.records["tasks"]) + len(parsed.rejects) == 7


def test_real_jira_csv_export_through_a_mapping(tmp_path):
    """The generic path reads a real export with repeated headers and Jira's `22/Sep/25 9:26 AM` dates."""
    path = tmp_path / "jira-export.csv"
    shutil.copy(shared_data("exports", "jira-csv", "testautogen-all-fields.csv"), path)
    (tmp_path / "jira-export.yaml").write_text(
        "source_name: testautogen\nkey: Issue key\nproject: Project key\ntitle: Summary\ntype: Issue Type\n"
        "status: Status\npriority: Priority\nassignee: Assignee Id\nreporter: Reporter Id\n"
        "status_category: {column: Status Category, map: {To Do: todo, In Progress: in_progress, Done: done}}\n"
        'created_at: {column: Created, format: "%d/%b/%y %I:%M %p"}\n'
        'updated_at: {column: Updated, format: "%d/%b/%y %I:%M %p"}\n'
        'resolved_at: {column: Resolved, format: "%d/%b/%y %I:%M %p"}\n',
        encoding="utf-8",
    )
    parsed = csv_mapped.parse(path)
    assert len(parsed.records["tasks"]) == 22 and parsed.rejects == []
    by_key = {t["key"]: t for t in parsed.records["tasks"]}
    assert by_key["TES-25"]["created_at"] == datetime(2025, 9, 22, 9, 26, tzinfo=UTC)
    assert by_key["TES-24"]["status_category"] == "in_progress"
    assert all(t["resolved_at"] is not None for t in by_key.values() if t["status_category"] == "done")
    # repeated headers (Watchers x3, Comment x3) all survive in the payload
    payload = json.loads(by_key["TES-25"]["payload"])
    assert {"Watchers", "Watchers (2)", "Watchers (3)", "Comment (3)"} <= set(payload)


def test_csv_without_mapping_says_to_write_one(tmp_path):
    with pytest.raises(
        SourceFormatError, match=r"^no mapping linear\.yaml next to linear\.csv: write one, see docs"
    ):
        csv_mapped.parse(_drop(tmp_path, LINEAR_CSV, None))


def test_yml_extension_is_accepted(tmp_path):
    path = _drop(tmp_path, LINEAR_CSV, None)
    (tmp_path / "linear.yml").write_text(LINEAR_YAML, encoding="utf-8")
    assert len(csv_mapped.parse(path).records["tasks"]) == 3


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "key: {column: ID\ncreated_at: Created\n",
            r"linear\.yaml: not valid YAML \(.* at line \d+ column \d+\); fix the syntax there",
        ),
        ("- key\n- created_at\n", r"linear\.yaml: expected a YAML mapping"),
        (
            "key: ID\ncreated_at: {column: Creatd}\n",
            r"linear\.yaml: created_at\.column 'Creatd' is not a column of linear\.csv; did you mean 'Created'\?",
        ),
        (
            "key: ID\ncrated_at: Created\n",
            r"linear\.yaml: unknown field 'crated_at'; did you mean 'created_at'\?",
        ),
        ("key: ID\n", r"linear\.yaml: 'created_at' is not mapped"),
        (
            "key: ID\ncreated_at: {column: Created, fromat: '%d'}\n",
            r"created_at\.fromat is not an option; did you mean 'format'\?",
        ),
        (
            "key: ID\ncreated_at: Created\nstatus_category: {column: State, map: {Done: finished}}\n",
            r"'finished' must be one of todo, in_progress, done",
        ),
        (
            "key: ID\ncreated_at: Created\ntimezone: Mars/Olympus\n",
            r"timezone 'Mars/Olympus' is not an IANA zone name",
        ),
        (
            "key: ID\ncreated_at: {column: Created, value: x}\n",
            r"created_at must be \{column: <CSV header>\} or \{value: <constant>\}",
        ),
        (
            "key: ID\ncreated_at: {value: soon}\n",
            r"created_at\.value: 'created_at\.value' = 'soon' is not a timestamp",
        ),
    ],
)
def test_broken_mappings_say_which_file_and_what_to_fix(tmp_path, yaml_text, message):
    with pytest.raises(SourceFormatError, match=message) as err:
        csv_mapped.parse(_drop(tmp_path, LINEAR_CSV, yaml_text))
    assert "\n" not in str(err.value)  # one line


def test_non_utf8_csv_is_decoded_and_flagged(tmp_path):
    csv_text = "Key,Created,Title\nK-1,2024-01-01,Caf\u00e9 men\u00fc\n"
    parsed = csv_mapped.parse(
        _drop(tmp_path, csv_text, "key: Key\ncreated_at: Created\ntitle: Title\n", "legacy", "latin-1")
    )
    assert parsed.encoding == "latin-1"
    assert parsed.records["tasks"][0]["title"] == "Caf\u00e9 men\u00fc"


def test_semicolon_delimiter_and_padded_headers(tmp_path):
    csv_text = "Key ; Created\nK-1;2024-01-01\n"
    parsed = csv_mapped.parse(
        _drop(tmp_path, csv_text, 'delimiter: ";"\nkey: Key\ncreated_at: Created\n', "semi")
    )
    assert [t["task_id"] for t in parsed.records["tasks"]] == ["csv:semi:K-1"]


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("%d.%m.%Y %H:%M", "05.01.2024 10:07"),
        ("%d/%b/%y %I:%M %p", "22/Sep/25 9:26 AM"),
        ("%d/%b/%y %I:%M %p", "22/Sep/25 12:26 AM"),
        ("%d/%b/%y %I:%M %p", "22/Sep/25 12:05 PM"),
        ("%m/%d/%Y", "02/29/2024"),
        ("%m/%d/%y", "1/2/69"),
        ("%Y-%m-%d %H:%M:%S", "2024-12-31 23:59:59"),
        ("%d/%m/%Y", "31/02/2024"),
        ("%d/%m/%Y", "2024-02-01"),
        ("%d/%b/%Y", "01/Foo/2024"),
        ("%d.%m.%Y %H:%M", "05.01.2024 25:00"),
    ],
)
def test_fast_strptime_agrees_with_strptime(fmt, value):
    fast = csv_mapped.fast_strptime(fmt)
    assert fast is not None
    try:
        expected = datetime.strptime(value, fmt)
    except ValueError:
        with pytest.raises(ValueError):
            fast(value)
    else:
        assert fast(value) == expected


@pytest.mark.parametrize("fmt", ["%Y-%m-%dT%H:%M:%S%z", "%j/%Y", "%H:%M", "%d.%m.%Y %I:%M"])
def test_fast_strptime_declines_other_formats(fmt):
    assert csv_mapped.fast_strptime(fmt) is None
