"""The Jira parser on real API payloads, a real CSV export, v3 (ADF) payloads and broken input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.lib.sources import jira
from mlops_assets.lib.sources.base import TASK_COLUMNS, SourceFormatError, pseudonymize
from mlops_assets_tests.conftest import shared_data

PSEUDONYM = re.compile(r"^u_[0-9a-f]{12}$")


def _apache_files(suffix: str) -> list[Path]:
    folder = shared_data("jira-apache-ase2015", "issues")
    pattern = re.compile(rf"^[A-Z0-9]+-\d+{suffix}\.json$")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name))


@pytest.fixture(scope="module")
def apache_tasks() -> dict[str, dict]:
    tasks = {}
    for path in _apache_files(""):
        parsed = jira.parse(path)
        assert parsed.rejects == [], f"{path.name}: {parsed.rejects}"
        assert parsed.shape == "jira-issue"
        (task,) = parsed.records["tasks"]
        tasks[task["task_id"]] = task
    return tasks


def test_all_501_apache_issues_parse_with_the_readme_counts(apache_tasks):
    assert len(apache_tasks) == 501
    tasks = apache_tasks.values()
    assert len({t["project"] for t in tasks}) == 21
    assert sum(t["resolved_at"] is not None for t in tasks) == 496
    assert sum(t["due_at"] is not None for t in tasks) == 148
    with_deadline = [t for t in tasks if t["deadline_at"] is not None]
    resolved = [t for t in with_deadline if t["resolved_at"] is not None]
    # The README's rule: late when the resolution date (UTC) is after the deadline's date.
    late = [t for t in resolved if t["resolved_at"].date() > t["deadline_at"].date()]
    assert (len(with_deadline), len(resolved), len(late)) == (368, 367, 122)


def test_an_apache_issue_is_normalized_field_by_field(apache_tasks):
    t = apache_tasks["jira:ANY23-174"]
    assert set(TASK_COLUMNS) <= set(t)
    assert (t["key"], t["project"], t["type"], t["priority"]) == ("ANY23-174", "ANY23", "Bug", "Major")
    assert (t["status"], t["status_category"]) == ("Closed", "done")
    assert t["title"] == "Incorrect RDFa extractions"
    assert t["created_at"] == datetime(2014, 1, 6, 6, 22, 58, 354000, tzinfo=UTC)
    assert t["resolved_at"] == datetime(2014, 5, 9, 2, 39, 42, 734000, tzinfo=UTC)
    assert t["due_at"] is None
    assert t["deadline_at"] == datetime(2014, 5, 15, tzinfo=UTC)  # fix version 1.0's release date
    assert (t["n_comments"], t["n_links"], t["n_subtasks"], t["n_labels"]) == (6, 0, 0, 2)
    assert t["labels"] == "rdfa,rdfa-lite"
    assert t["assignee_id"] is None
    assert t["reporter_id"] == pseudonymize("jira", "westurner")
    assert json.loads(t["payload"])["key"] == "ANY23-174"


def test_no_person_name_survives_in_normalized_columns(apache_tasks):
    people = set()
    for path in _apache_files("")[:60]:
        fields = json.loads(path.read_bytes().decode("latin-1"))["fields"]
        for role in ("assignee", "reporter"):
            if fields.get(role):
                people |= {fields[role].get("displayName"), fields[role].get("name")}
    people.discard(None)
    for t in apache_tasks.values():
        for col in ("assignee_id", "reporter_id"):
            assert t[col] is None or PSEUDONYM.match(t[col])
        normalized = {k: v for k, v in t.items() if k != "payload"}
        assert not people & {v for v in normalized.values() if isinstance(v, str)}


def test_changelog_files_yield_the_same_tasks_and_their_status_events(apache_tasks):
    n_events = 0
    fields: set[str] = set()
    for path in _apache_files("_CL"):
        parsed = jira.parse(path)
        assert parsed.rejects == []
        assert parsed.shape == "jira-issue-changelog"
        (task,) = parsed.records["tasks"]
        plain = apache_tasks[task["task_id"]]
        # Same issue with and without its changelog: one raw record, not two.
        assert task["payload"] == plain["payload"]
        for event in parsed.records["events"]:
            assert event["task_id"] == task["task_id"]
            assert event["changed_at"].tzinfo is UTC and event["changed_at"] >= task["created_at"]
        status_events = [e for e in parsed.records["events"] if e["field"] == "status"]
        if status_events and task["status_category"] == "done":
            last = max(status_events, key=lambda e: e["changed_at"])
            assert last["to_value"] == task["status"]
        n_events += len(status_events)
        fields.update(e["field"] for e in parsed.records["events"])
        for event in parsed.records["events"]:
            if event["field"] == "assignee":  # pseudonymous, like assignee_id: never a name
                assert all(v is None or v.startswith("u_") for v in (event["from_value"], event["to_value"]))
            if event["field"] == "duedate":
                assert all(v is None or len(v) == 10 for v in (event["from_value"], event["to_value"]))
        assigned = [e["to_value"] for e in parsed.records["events"] if e["field"] == "assignee"]
        if assigned and task["assignee_id"] is not None:
            assert assigned[-1] == task["assignee_id"]  # the same pseudonym as the task's assignee
    assert n_events > 501
    assert fields == {"status", "assignee", "priority", "duedate", "fix_version", "comment"}

    events = [
        e
        for e in jira.parse(shared_data("jira-apache-ase2015", "issues", "ANY23-174_CL.json")).records[
            "events"
        ]
        if e["field"] == "status"
    ]
    assert [(e["from_value"], e["to_value"]) for e in events] == [
        ("Open", "Resolved"),
        ("Resolved", "Closed"),
    ]
    assert events[0]["event_id"] == "14065306"
    assert events[0]["changed_at"] == datetime(2014, 5, 9, 2, 39, 42, 769000, tzinfo=UTC)


def test_comment_pages_yield_every_comment_of_their_issue(apache_tasks):
    n_comments = 0
    for path in _apache_files("_Comment"):
        parsed = jira.parse(path)
        assert parsed.shape == "jira-comments-page" and parsed.rejects == []
        key = path.name.removesuffix("_Comment.json")
        page = json.loads(path.read_bytes().decode(parsed.encoding))
        rows = parsed.records["comments"]
        assert len(rows) == len(page["comments"])
        assert {r["task_id"] for r in rows} <= {f"jira:{key}"}
        if page["total"] <= page["maxResults"]:
            assert len(rows) == apache_tasks[f"jira:{key}"]["n_comments"]
        n_comments += len(rows)
    assert n_comments > 1000
    # The same comments are embedded in the issue file: identical payloads, so raw keeps each once.
    embedded = jira.parse(shared_data("jira-apache-ase2015", "issues", "ANY23-174.json")).records["comments"]
    paged = jira.parse(shared_data("jira-apache-ase2015", "issues", "ANY23-174_Comment.json")).records[
        "comments"
    ]
    assert [c["payload"] for c in embedded] == [c["payload"] for c in paged]
    assert paged[0]["comment_id"] == "13862950" and paged[0]["author_id"] == pseudonymize("jira", "lewismc")


def test_latin1_files_are_decoded_and_flagged():
    folder = shared_data("jira-apache-ase2015", "issues")
    flagged = sorted(p.name for p in folder.glob("*.json") if jira.parse(p).encoding == "latin-1")
    assert len(flagged) == 11
    assert "CB-2174.json" in flagged
    task = jira.parse(folder / "CB-2174.json").records["tasks"][0]
    assert task["title"] == "Users with CoolIris Android Gallery App Can't Select Photo"


# --- the real CSV export ---------------------------------------------------------------------


def test_real_jira_csv_export_parses_all_22_issues():
    parsed = jira.parse(shared_data("exports", "jira-csv", "testautogen-all-fields.csv"))
    assert parsed.shape == "jira-csv" and parsed.rejects == []
    tasks = {t["key"]: t for t in parsed.records["tasks"]}
    assert len(tasks) == 22
    t = tasks["TES-25"]
    assert (t["task_id"], t["project"], t["type"], t["priority"]) == ("jira:TES-25", "TES", "Task", "Medium")
    assert t["created_at"] == datetime(2025, 9, 22, 9, 26, tzinfo=UTC)
    assert (t["status"], t["status_category"]) == ("To Do", "todo")
    assert t["reporter_id"] == pseudonymize(
        "jira", "5db9d8eb4ff1890d31036b89"
    )  # same id as the API's accountId
    cats = [t["status_category"] for t in tasks.values()]
    assert (cats.count("todo"), cats.count("in_progress"), cats.count("done")) == (9, 3, 10)
    assert sum(t["resolved_at"] is not None for t in tasks.values()) == 10
    assert sum(t["due_at"] is not None for t in tasks.values()) == 2
    assert all(t["deadline_at"] == t["due_at"] for t in tasks.values())
    assert all(t["story_points"] is None for t in tasks.values())  # empty custom fields
    # 3 Comment columns: a task's count is its non-empty cells, and each cell is a comment row.
    assert sum(t["n_comments"] for t in tasks.values()) == len(parsed.records["comments"]) == 9 + 5 + 3
    for c in parsed.records["comments"]:
        assert c["created_at"].tzinfo is UTC and PSEUDONYM.match(c["author_id"])
    names = {"Eric Medlock", "Sai Sontineni", "Saicharan Basireddy"}
    for row in parsed.records["tasks"] + parsed.records["comments"]:
        assert not names & {v for k, v in row.items() if k != "payload" and isinstance(v, str)}


CSV_EXPORT = (
    "Summary,Issue key,Issue id,Issue Type,Status,Project key,Priority,Resolution,Assignee,Reporter,"
    "Created,Updated,Resolved,Due date,Labels,Labels,Original estimate,Time Spent,Custom field (Story Points),"
    "Custom field (Story point estimate),Sub-tasks,Inward issue link (Blocks),Outward issue link (Cloners),"
    "Fix versions,Description,Comment,Comment\n"
    "Write docs,DOC-7,1007,Story,In Review,DOC,High,,jdoe,asmith,22/Sep/2025 09:26,23/Sep/2025 10:00,,"
    '30/Sep/2025 00:00,docs,urgent,7200,5400,,3,"1008, 1009",DOC-1,,v1.0,"two\nlines",'
    "23/Sep/2025 10:00;jdoe;looks good,\n"
    "Broken,DOC-8,1008,Task,Done,DOC,Low,Done,,asmith,yesterday,,,,,,,,,,,,,,,,\n"
    ",,1009,Task,Done,DOC,Low,Done,,asmith,22/Sep/2025 09:26,,,,,,,,,,,,,,,,\n"
)


def test_csv_export_columns_are_normalized_and_bad_rows_rejected(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(CSV_EXPORT, encoding="utf-8")
    parsed = jira.parse(path)
    (t,) = parsed.records["tasks"]
    assert t["created_at"] == datetime(2025, 9, 22, 9, 26, tzinfo=UTC)
    assert t["due_at"] == t["deadline_at"] == datetime(2025, 9, 30, tzinfo=UTC)
    assert t["status_category"] == "in_progress"  # no Status Category column: from the status name
    assert (t["labels"], t["n_labels"]) == ("docs,urgent", 2)
    assert (t["original_estimate_h"], t["time_spent_h"], t["story_points"]) == (2.0, 1.5, 3.0)
    assert (t["n_subtasks"], t["n_links"], t["n_comments"]) == (2, 1, 1)
    assert t["description_length"] == len("two\nlines")
    assert t["assignee_id"] == pseudonymize("jira", "jdoe")
    reasons = sorted(r.reason for r in parsed.rejects)
    assert reasons == [
        "row 2 (line 4) (DOC-8): column 'Created' = 'yesterday' is not a date",
        "row 3 (line 5): column 'Issue key' is empty",
    ]
    assert json.loads(parsed.rejects[0].payload)["Issue id"] in {"1008", "1009"}


def test_csv_times_can_be_read_in_the_exporting_users_time_zone(tmp_path, monkeypatch):
    path = tmp_path / "export.csv"
    path.write_text(CSV_EXPORT, encoding="utf-8")
    monkeypatch.setenv("MLOPS_JIRA_CSV_TIMEZONE", "Europe/Berlin")
    t = jira.parse(path).records["tasks"][0]
    assert t["created_at"] == datetime(2025, 9, 22, 7, 26, tzinfo=UTC)  # CEST is UTC+2
    assert t["due_at"] == datetime(2025, 9, 30, tzinfo=UTC)  # a calendar date does not shift
    monkeypatch.setenv("MLOPS_JIRA_CSV_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SourceFormatError, match="MLOPS_JIRA_CSV_TIMEZONE='Mars/Olympus' is not a time zone"):
        jira.parse(path)


# --- v3 payloads (Atlassian Document Format) -------------------------------------------------


def _adf(*paragraphs: str) -> dict:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
    }


def _v3_issue(key: str, **fields) -> dict:
    base = {
        "summary": "Ship it",
        "issuetype": {"name": "Story"},
        "priority": {"name": "Highest"},
        "status": {"name": "In Review", "statusCategory": {"key": "indeterminate"}},
        "project": {"key": key.split("-")[0]},
        "assignee": {"accountId": "557058:abc", "displayName": "Ada Lovelace"},
        "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Grace Hopper"},
        "created": "2025-01-10T09:00:00.000+0100",
        "updated": "2025-01-12T09:00:00.000+0000",
        "resolutiondate": None,
        "duedate": None,
        "fixVersions": [
            {"name": "v2", "releaseDate": "2025-03-01"},
            {"name": "v1", "releaseDate": "2025-02-01"},
            {"name": "unscheduled"},
        ],
        "labels": [],
        "issuelinks": [{"id": "1"}, {"id": "2"}],
        "subtasks": [{"key": "X-9"}],
        "timetracking": {"originalEstimateSeconds": 36000, "timeSpentSeconds": 1800},
        "customfield_10016": 5.0,
        "description": {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "Hello "},
                        {"type": "mention", "attrs": {"id": "1", "text": "@Ada"}},
                        {"type": "hardBreak"},
                        {"type": "text", "text": "world", "marks": [{"type": "strong"}]},
                    ],
                },
                {
                    "type": "bulletList",
                    "content": [
                        {
                            "type": "listItem",
                            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "item"}]}],
                        }
                    ],
                },
            ],
        },
        "comment": {
            "total": 1,
            "maxResults": 1,
            "startAt": 0,
            "comments": [
                {
                    "id": "100",
                    "author": {"accountId": "557058:abc"},
                    "body": _adf("Done", "really"),
                    "created": "2025-01-11T10:00:00.000+0000",
                }
            ],
        },
    }
    base.update(fields)
    return {"id": "10001", "key": key, "fields": base}


def test_v3_search_page_with_adf_text_and_story_points_from_names(tmp_path):
    page = {
        "issues": [_v3_issue("X-1")],
        "names": {"customfield_10016": "Story point estimate", "summary": "Summary"},
        "nextPageToken": None,
        "isLast": True,
    }
    path = tmp_path / "api-20250112-p0001.json"
    path.write_text(json.dumps(page))
    parsed = jira.parse(path)
    assert parsed.shape == "jira-search-page" and parsed.rejects == []
    (t,) = parsed.records["tasks"]
    assert t["description_length"] == len("Hello ") + len("@Ada") + len("world") + len("item")
    assert t["created_at"] == datetime(2025, 1, 10, 8, 0, tzinfo=UTC)  # +0100 -> UTC
    assert t["status_category"] == "in_progress"
    assert t["deadline_at"] == datetime(2025, 2, 1, tzinfo=UTC)  # earliest dated fix version
    assert (t["story_points"], t["original_estimate_h"], t["time_spent_h"]) == (5.0, 10.0, 0.5)
    assert (t["n_links"], t["n_subtasks"], t["n_labels"], t["labels"]) == (2, 1, 0, None)
    assert t["assignee_id"] == pseudonymize("jira", "557058:abc")
    (c,) = parsed.records["comments"]
    assert (c["task_id"], c["comment_id"], c["body_length"]) == ("jira:X-1", "100", len("Donereally"))


def test_story_points_need_a_recognizable_field(tmp_path, monkeypatch):
    path = tmp_path / "X-1.json"
    path.write_text(json.dumps(_v3_issue("X-1")))
    assert jira.parse(path).records["tasks"][0]["story_points"] is None  # no names map: unknown field
    monkeypatch.setenv("MLOPS_JIRA_STORY_POINTS_FIELDS", "customfield_10016")
    assert jira.parse(path).records["tasks"][0]["story_points"] == 5.0


def test_v3_comments_page_takes_its_key_from_the_file_name(tmp_path):
    page = {
        "startAt": 0,
        "maxResults": 50,
        "total": 1,
        "comments": [
            {
                "id": "7",
                "author": {"accountId": "a1"},
                "body": _adf("abc"),
                "created": "2025-01-11T10:00:00.000Z",
            }
        ],
    }
    path = tmp_path / "X-1_Comment.json"
    path.write_text(json.dumps(page))
    (c,) = jira.parse(path).records["comments"]
    assert (c["task_id"], c["body_length"], c["created_at"]) == (
        "jira:X-1",
        3,
        datetime(2025, 1, 11, 10, tzinfo=UTC),
    )
    other = tmp_path / "comments.json"
    other.write_text(json.dumps(page))
    with pytest.raises(SourceFormatError, match="name the file after the issue, e.g. PROJ-12_Comment.json"):
        jira.parse(other)


# --- bad records and unreadable files ---------------------------------------------------------


def test_bad_records_become_rejects_with_reasons_and_good_ones_survive(tmp_path):
    good = _v3_issue("X-1")
    no_key = _v3_issue("X-2")
    del no_key["key"]
    bad_created = _v3_issue("X-9", created="yesterday")
    bad_due = _v3_issue("X-10", duedate="31/02/2025")
    no_created = _v3_issue("X-11")
    del no_created["fields"]["created"]
    with_bad_event = _v3_issue("X-12")
    with_bad_event["changelog"] = {
        "histories": [
            {
                "id": "1",
                "created": "2025-01-11T10:00:00.000+0000",
                "items": [{"field": "status", "fromString": "To Do", "toString": "In Review"}],
            },
            {
                "id": "2",
                "created": "soon",
                "items": [{"field": "status", "fromString": "In Review", "toString": "Done"}],
            },
        ]
    }
    page = {
        "startAt": 0,
        "maxResults": 50,
        "total": 8,
        "issues": [
            good,
            no_key,
            ["not", "an", "issue"],
            bad_created,
            bad_due,
            no_created,
            {"key": "X-13"},
            with_bad_event,
        ],
    }
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    parsed = jira.parse(path)
    assert [t["key"] for t in parsed.records["tasks"]] == ["X-1", "X-12"]
    assert [e["event_id"] for e in parsed.records["events"] if e["field"] == "status"] == ["1"]
    reasons = {r.locator: r.reason for r in parsed.rejects}
    assert reasons == {
        "issues[1]": "issues[1]: has no 'key' (every Jira issue has one, e.g. 'PROJ-12')",
        "issues[2]": "issues[2]: expected an issue object, got list",
        "issues[3]": "issues[3] (X-9): field 'created' = 'yesterday' is not a date",
        "issues[4]": "issues[4] (X-10): field 'duedate' = '31/02/2025' is not a date",
        "issues[5]": "issues[5] (X-11): field 'created' is missing",
        "issues[6]": "issues[6] (X-13): has no 'fields' object (request the issue with its fields, e.g. fields=*all)",
        "issues[7].changelog.histories[1]": "issues[7] (X-12): changelog entry 2: field 'created' = 'soon' is not a date",
    }
    assert json.loads(parsed.rejects[2].payload)["key"] == "X-9"
    # conservation: every issue in the page is either a task or a reject
    assert len(parsed.records["tasks"]) + sum(1 for loc in reasons if loc.count(".") == 0) == len(
        page["issues"]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"issues": [', r"page\.json is not valid JSON: .* at line 1, column 13"),
        ('{\n  "key": "X-1",\n  "fields": {"summary": "a",}\n}', r"not valid JSON: .* at line 3, column 29"),
        (
            '{"values": [], "isLast": true}',
            r"page\.json is not a Jira issue, search page or comments page: it has keys \['isLast', 'values'\]",
        ),
        (
            '{"errorMessages": ["Issue does not exist"], "errors": {}}',
            r"is a Jira error response.*Issue does not exist",
        ),
        ('"just a string"', r"is not a Jira issue, search page or comments page: it is a JSON str"),
        ("", r"page\.json is empty"),
    ],
)
def test_unreadable_json_files_raise_source_format_errors(tmp_path, content, message):
    path = tmp_path / "page.json"
    path.write_text(content)
    with pytest.raises(SourceFormatError, match=message):
        jira.parse(path)


def test_a_csv_that_is_not_a_jira_export_is_refused(tmp_path):
    path = tmp_path / "tasks.csv"
    path.write_text("Name,Due\nA,2025-01-01\n")
    with pytest.raises(
        SourceFormatError, match="is not a Jira CSV export: its header lacks 'Issue key' and 'Summary'"
    ):
        jira.parse(path)


@pytest.mark.parametrize(
    ("status", "category", "resolved", "expected"),
    [
        ("Closed", "done", True, "done"),
        ("Reopened", "new", False, "todo"),
        ("Whatever", "indeterminate", False, "in_progress"),
        ("Resolved", None, False, "done"),
        ("Open", None, False, "todo"),
        ("Patch Available", None, False, "in_progress"),
        ("Patch Available", None, True, "done"),  # a resolution means done
        (None, None, False, None),
    ],
)
def test_status_category_from_jira_category_else_resolution_else_name(status, category, resolved, expected):
    assert jira._status_category(status, category, resolved) == expected


@pytest.mark.parametrize(
    "name, content",
    [
        (
            "page.json",
            '{"issues": [{"key": "OPS-1", "fields": {"summary": "caf\u00e9", "created": "2025-01-02T10:00:00.000+0000"}}]}'.encode(),
        ),
        (
            "bom.json",
            b"\xef\xbb\xbf" + b'[{"key": "OPS-2", "fields": {"created": "2025-01-02T10:00:00.000+0000"}}]',
        ),
        (
            "latin1.json",
            '[{"key": "OPS-3", "fields": {"summary": "caf\u00e9", "created": "2025-01-02T10:00:00.000+0000"}}]'.encode(
                "latin-1"
            ),
        ),
        (
            "nan.json",
            b'[{"key": "OPS-4", "fields": {"created": "2025-01-02T10:00:00.000+0000", "timespent": NaN}}]',
        ),
        ("cut.json", b'{"issues": [{"key": "OPS-5", "fields": {"created": "2025-01-0'),
        (
            "deep.json",
            b'[{"key": "OPS-6", "fields": {"created": "2025-01-02T10:00:00.000+0000"}}, '
            + b"[" * 5000
            + b"]" * 5000
            + b"]",
        ),
    ],
)
def test_pages_read_straight_from_utf8_bytes_give_what_the_decoded_text_gives(
    tmp_path, monkeypatch, name, content
):
    """utf8_json (issue 14) skips decoding the text of a UTF-8 page: same records, rejects, encoding and
    errors as the decoded text, for BOMs, Latin-1, NaN, a cut file and nesting past the decoder.
    """
    from mlops_assets.lib.sources import base

    path = tmp_path / name
    path.write_bytes(content)

    def outcome():
        try:
            parsed = jira.parse(path)
        except SourceFormatError as exc:
            return "error", str(exc)
        return parsed.encoding, parsed.shape, parsed.records, [(r.locator, r.reason) for r in parsed.rejects]

    fast = outcome()
    monkeypatch.setattr(jira, "utf8_json", lambda data: base.NOT_READ)
    assert repr(fast) == repr(outcome())  # repr: a NaN equals itself
