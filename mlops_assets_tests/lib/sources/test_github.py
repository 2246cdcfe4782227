"""The GitHub issues parser on a real API page and on small broken inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.lib.sources import github
from mlops_assets.lib.sources.base import TASK_COLUMNS, SourceFormatError, pseudonymize
from mlops_assets_tests.conftest import shared_data
from mlops_assets_tests.lib.conftest import ingest_whole_and_streamed


def _issue(number: int, **overrides) -> dict:
    issue = {
        "url": f"https://api.github.com/repos/acme/web/issues/{number}",
        "repository_url": "https://api.github.com/repos/acme/web",
        "html_url": f"https://github.com/acme/web/issues/{number}",
        "number": number,
        "title": f"Issue {number}",
        "user": {"login": "octocat", "id": 1},
        "labels": [],
        "state": "open",
        "state_reason": None,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 0,
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-03T03:04:05Z",
        "closed_at": None,
        "body": "Steps to reproduce",
    }
    issue.update(overrides)
    return issue


def _write(tmp_path: Path, doc, name: str = "page.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def matomo() -> github.ParsedFile:
    return github.parse(shared_data("exports", "github", "matomo-issues-page.json"))


def test_real_page_counts(matomo):
    """100 items on the page: 24 pull requests skipped, 76 issues, all usable."""
    tasks = matomo.records["tasks"]
    raw = json.loads(shared_data("exports", "github", "matomo-issues-page.json").read_text())
    assert len(raw) == 100
    assert len(tasks) == 100 - 24
    assert matomo.rejects == []
    assert matomo.shape == "github-issue-list; 24 pull requests skipped"
    # Closed/milestone counts over the issues match the raw issues (74 closed, 87 milestones, 84 due_on
    # on the whole page, pull requests included).
    issues = [item for item in raw if "pull_request" not in item]
    assert sum(item["state"] == "closed" for item in raw) == 74
    assert sum(bool(item["milestone"]) for item in raw) == 87
    assert sum(bool(item["milestone"] and item["milestone"]["due_on"]) for item in raw) == 84
    assert sum(t["status_category"] == "done" for t in tasks) == sum(i["state"] == "closed" for i in issues)
    assert sum(t["deadline_at"] is not None for t in tasks) == sum(
        bool(i["milestone"] and i["milestone"]["due_on"]) for i in issues
    )
    assert all(t["resolved_at"] is not None for t in tasks if t["status_category"] == "done")
    assert {t["task_id"] for t in tasks} == {f"github:matomo-org/matomo#{i['number']}" for i in issues}


def test_real_page_first_issue_values(matomo):
    first = matomo.records["tasks"][0]
    assert first["task_id"] == "github:matomo-org/matomo#9799"
    assert first["project"] == "matomo-org/matomo"
    assert first["key"] == "#9799"
    assert first["type"] == "Bug"
    assert first["status"] == "closed (completed)"
    assert first["created_at"] == datetime(2016, 2, 17, 17, 23, 37, tzinfo=UTC)
    assert first["resolved_at"] == datetime(2016, 2, 18, 7, 46, 49, tzinfo=UTC)
    assert first["deadline_at"] == datetime(2016, 3, 30, 7, 0, tzinfo=UTC)
    assert first["due_at"] is None
    assert first["assignee_id"] == pseudonymize("github", "sgiehl")
    assert first["reporter_id"] == pseudonymize("github", "tsteur")
    assert json.loads(first["payload"])["number"] == 9799
    assert first["locator"] == "[0]"


def test_real_page_rows_have_exactly_the_contract_columns_and_no_names(matomo):
    raw = shared_data("exports", "github", "matomo-issues-page.json").read_text()
    logins = {item["user"]["login"] for item in json.loads(raw)}
    for task in matomo.records["tasks"]:
        assert set(task) == set(TASK_COLUMNS) | {"locator", "payload"}
        assert task["created_at"].tzinfo is UTC
        assert task["assignee_id"] not in logins and task["reporter_id"] not in logins
    assert {t["priority"] for t in matomo.records["tasks"]} == {None, "Major"}


@pytest.mark.parametrize(
    ("labels", "priority", "issue_type"),
    [
        (["priority: high", "bug"], "high", "bug"),
        (["Priority-High"], "High", "issue"),
        (["P1", "enhancement"], "P1", "enhancement"),
        (["p2 - medium"], "P2", "issue"),
        (["kind/feature", "Critical"], "Critical", "feature"),
        (["type: question", "prioritized"], None, "question"),
        (["c: Usability"], None, "issue"),
    ],
)
def test_priority_and_type_from_labels(tmp_path, labels, priority, issue_type):
    path = _write(tmp_path, [_issue(1, labels=[{"name": name} for name in labels])])
    task = github.parse(path).records["tasks"][0]
    assert (task["priority"], task["type"]) == (priority, issue_type)
    assert task["n_labels"] == len(labels)
    assert task["labels"] == ",".join(labels)


@pytest.mark.parametrize(
    ("state", "reason", "labels", "category"),
    [
        ("open", None, [], "todo"),
        ("open", "reopened", ["In Progress"], "in_progress"),
        ("closed", "not_planned", [], "done"),
    ],
)
def test_status_category(tmp_path, state, reason, labels, category):
    closed = "2024-02-01T00:00:00Z" if state == "closed" else None
    issue = _issue(
        5,
        state=state,
        state_reason=reason,
        closed_at=closed,
        labels=[{"name": n} for n in labels],
        assignee={"login": "dev"},
    )
    task = github.parse(_write(tmp_path, issue)).records["tasks"][0]
    assert task["status_category"] == category
    assert task["status"] == (f"{state} ({reason})" if reason else state)
    assert (task["resolved_at"] is not None) == (state == "closed")


def test_single_issue_and_search_page_shapes(tmp_path):
    single = github.parse(_write(tmp_path, _issue(7, type={"name": "Task"}), "one.json"))
    assert single.shape == "github-issue"
    assert single.records["tasks"][0]["type"] == "Task"
    search = github.parse(_write(tmp_path, {"total_count": 2, "items": [_issue(1), _issue(2)]}, "s.json"))
    assert search.shape == "github-search-page"
    assert [t["key"] for t in search.records["tasks"]] == ["#1", "#2"]


def test_owner_repo_from_html_url_when_repository_url_missing(tmp_path):
    issue = _issue(3, repository_url=None, html_url="https://github.com/other/tool/issues/3")
    task = github.parse(_write(tmp_path, [issue])).records["tasks"][0]
    assert task["task_id"] == "github:other/tool#3"


def test_bad_records_become_rejects_with_reasons(tmp_path):
    items = [
        _issue(1),
        _issue(2, created_at="soon"),
        {**_issue(3), "number": "three"},
        _issue(4, repository_url=None, html_url=None),
        _issue(5, state="merged"),
        _issue(6, milestone={"due_on": "2024-02-31T00:00:00Z"}),
        "not an issue",
        _issue(8, pull_request={"url": "x"}),
    ]
    parsed = github.parse(_write(tmp_path, items))
    assert [t["key"] for t in parsed.records["tasks"]] == ["#1"]
    reasons = [r.reason for r in parsed.rejects]
    assert (
        reasons[0]
        == "[1] (#2): 'created_at' = 'soon' is not a timestamp (expected ISO 8601 like 2016-02-17T17:23:37Z)"
    )
    assert "'number' = 'three' is not an issue number" in reasons[1]
    assert "owner/repo" in reasons[2]
    assert "'state' = 'merged'" in reasons[3]
    assert "'due_on' = '2024-02-31T00:00:00Z' is not a timestamp" in reasons[4]
    assert reasons[5] == "[6]: element is str, not an issue object"
    assert [r.locator for r in parsed.rejects] == ["[1]", "[2]", "[3]", "[4]", "[5]", "[6]"]
    # conservation: every item is a task, a reject or a skipped pull request
    assert len(parsed.records["tasks"]) + len(parsed.rejects) + 1 == len(items)
    assert json.loads(parsed.rejects[0].payload)["created_at"] == "soon"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[{"number": 1,', "is not valid JSON"),
        (b'{"cards": [], "lists": []}', "expected a GitHub issue list"),
        (b'[{"id": 1, "name": "a comment"}]', "no element looks like a GitHub issue"),
        (b'"just a string"', "got str"),
    ],
)
def test_unreadable_or_unknown_files_raise(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(SourceFormatError, match=message):
        github.parse(path)


def test_latin1_file_is_decoded_and_flagged(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(json.dumps([_issue(1, title="Caf\u00e9 menu")], ensure_ascii=False).encode("latin-1"))
    parsed = github.parse(path)
    assert parsed.encoding == "latin-1"
    assert parsed.records["tasks"][0]["title"] == "Caf\u00e9 menu"


def test_empty_page_is_a_valid_empty_list(tmp_path):
    parsed = github.parse(_write(tmp_path, []))
    assert parsed.n_records == 0 and parsed.rejects == [] and parsed.shape == "github-issue-list"


# `gh api --paginate repos/{owner}/{repo}/issues`, the GitHub CLI's way to export every issue, prints each
# page's JSON one after the other (cli/cli#1268); with --slurp a list of the pages, with --jq '.[]' one
# issue a line. Each was refused whole ("Extra data" / "no element looks like a GitHub issue").
def _paginated(pages: list, form: str) -> str:
    if form == "concatenated":
        return "".join(json.dumps(page) for page in pages)
    if form == "pretty":  # what gh prints to a terminal-less pipe with indentation
        return "\n".join(json.dumps(page, indent=2) for page in pages) + "\n"
    if form == "slurp":
        return json.dumps(pages)
    if form == "search pages":
        return "\n".join(
            json.dumps({"total_count": 9, "incomplete_results": False, "items": p}) for p in pages
        )
    if form == "slurped search pages":
        return json.dumps([{"total_count": 9, "incomplete_results": False, "items": p} for p in pages])
    assert form == "jq lines"
    return "".join(json.dumps(issue) + "\n" for page in pages for issue in page)


FORMS = ["concatenated", "pretty", "slurp", "search pages", "slurped search pages", "jq lines"]


@pytest.mark.parametrize("form", FORMS)
def test_the_pages_of_gh_api_paginate_give_the_tasks_of_one_list(tmp_path, form):
    issues = [_issue(n, title=f"Issue {n}") for n in range(1, 8)] + [_issue(8, pull_request={"url": "x"})]
    pages = [issues[:3], issues[3:6], issues[6:]]
    one = github.parse(_write(tmp_path, issues, "one.json"))
    path = tmp_path / "paginated.json"
    path.write_text(_paginated(pages, form), encoding="utf-8")

    parsed = github.parse(path)

    assert parsed.records["tasks"] == one.records["tasks"] and parsed.rejects == []
    pages_shown = "3 pages" if form != "jq lines" else "8 pages"
    assert pages_shown in parsed.shape and "1 pull requests skipped" in parsed.shape


def test_the_real_page_paginated_gives_its_76_issues(tmp_path):
    issues = json.loads(
        shared_data("exports", "github", "matomo-issues-page.json").read_text(encoding="utf-8")
    )
    path = tmp_path / "paginated.json"
    path.write_text(_paginated([issues[:30], issues[30:60], issues[60:]], "pretty"), encoding="utf-8")
    parsed = github.parse(path)
    assert len(parsed.records["tasks"]) == 76 and parsed.rejects == []
    assert parsed.shape == "github-paginated (3 pages); 24 pull requests skipped"


_CUT = "not valid UTF-8 JSON part-way"  # a streamed file's words for one cut short


@pytest.mark.parametrize(
    ("content", "whole", "streamed"),
    [
        ("42 17", "page 1 of 2 is int", "not streamed"),  # no list or object first: parsed whole
        ('[{"number": 1, "title": "a", "state": "open"}] [{"number": 2,', "is not valid JSON", _CUT),
        ('[{"number": 1, "title": "a", "state": "open"}] x', "is not valid JSON", _CUT),
        ('{"message": "Not Found"} {"message": "Not Found"}', "page 1 of 2 is an object with keys", None),
        ('{"message": "Bad credentials"}', "got an object with keys \\['message'\\]", None),
        ('[{"id": 1}, {"id": 2}]', "no element looks like a GitHub issue", None),
    ],
)
def test_a_bad_page_or_file_says_which_whole_and_streamed(tmp_path, content, whole, streamed):
    """A big file (streamed) is refused in the whole parse's words, but for one cut short part-way."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SourceFormatError, match=whole):
        github.parse(path)
    if streamed == "not streamed":
        assert github.parse_stream(path) is None
        return
    with pytest.raises(SourceFormatError, match=streamed or whole):
        list(github.parse_stream(path))


@pytest.mark.parametrize("form", FORMS)
def test_paginated_pages_streamed_give_what_the_whole_parse_gives(tmp_path, monkeypatch, form):
    pages = [[_issue(n + 10 * p) for n in range(1, 8)] for p in range(4)]
    both = ingest_whole_and_streamed(
        tmp_path, monkeypatch, "github", "issues.json", _paginated(pages, form), 5
    )
    rows = {
        how: wh.query("SELECT task_id, record_hash FROM raw.github_tasks ORDER BY 1").rows()
        for how, wh in both.items()
    }
    assert len(rows["whole"]) == 28 and rows["whole"] == rows["streamed"]


def test_an_error_answer_between_pages_is_rejected_and_the_other_pages_kept(tmp_path):
    """What a rate limit leaves in the middle of a paginated export: the pages around it still count."""
    error = {
        "message": "API rate limit exceeded for user ID 1.",
        "documentation_url": "https://docs.github.com",
    }
    path = tmp_path / "paginated.json"
    path.write_text(_paginated([[_issue(1), _issue(2)], error, [_issue(3)]], "pretty"), encoding="utf-8")
    parsed = github.parse(path)
    assert [t["key"] for t in parsed.records["tasks"]] == ["#1", "#2", "#3"]
    (reject,) = parsed.rejects
    assert reject.locator == "page 2" and "API rate limit" in reject.payload
    assert "page 2 of 3 is an object with keys ['documentation_url', 'message']" in reject.reason


def _streamed(path: Path) -> github.ParsedFile:
    """The parts of a streamed parse joined into one ParsedFile (the shape: the last part's, as ingestion keeps it)."""
    parts = github.parse_stream(path)
    assert parts is not None
    joined = github.ParsedFile(shape="")
    for part in parts:
        joined.records["tasks"] = joined.records.get("tasks", []) + part.records.get("tasks", [])
        joined.rejects += part.rejects
        joined.shape = part.shape
    return joined


def _same(whole: github.ParsedFile, streamed: github.ParsedFile) -> None:
    assert streamed.records.get("tasks", []) == whole.records.get("tasks", [])
    assert [(r.locator, r.reason, r.payload) for r in streamed.rejects] == [
        (r.locator, r.reason, r.payload) for r in whole.rejects
    ]
    assert streamed.shape == whole.shape


@pytest.mark.parametrize("form", FORMS)
def test_every_form_streamed_gives_the_records_rejects_and_shape_of_the_whole_parse(tmp_path, form):
    issues = [_issue(n) for n in range(1, 8)] + [
        _issue(8, pull_request={"url": "x"}),
        _issue(9, created_at="yesterday"),
    ]
    path = tmp_path / "paginated.json"
    path.write_text(_paginated([issues[:3], issues[3:6], issues[6:]], form), encoding="utf-8")
    whole = github.parse(path)
    assert len(whole.records["tasks"]) == 7 and len(whole.rejects) == 1  # issue 9: no date
    _same(whole, _streamed(path))


@pytest.mark.parametrize(
    "doc",
    [
        [_issue(1), _issue(2, pull_request={"url": "x"}), 42],  # one list, an element no object
        {"total_count": 2, "incomplete_results": False, "items": [_issue(1), _issue(2)]},  # a search page
        _issue(5),  # one issue
        [],
        [[_issue(1)], {"total_count": 1, "items": [_issue(2)]}],  # slurped pages of both kinds
        [[_issue(1)], _issue(2)],  # not all pages: an issue list whose first element is no object
    ],
)
def test_one_document_streamed_reads_as_it_does_whole(tmp_path, doc):
    path = _write(tmp_path, doc)
    _same(github.parse(path), _streamed(path))


def test_an_error_answer_between_big_pages_is_rejected_when_streamed_too(tmp_path, monkeypatch):
    """The gap the ijson stream had: a page that is no list passed without a word (its issues just missing)."""
    from mlops_assets.lib import ingestion
    from mlops_assets.lib.sources import stream
    from mlops_assets.lib.warehouse import Warehouse

    monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(stream, "PART_RECORDS", 2)
    error = {
        "message": "API rate limit exceeded for user ID 1.",
        "documentation_url": "https://docs.github.com",
    }
    folder = tmp_path / "landing" / "github"
    folder.mkdir(parents=True)
    (folder / "issues.json").write_text(
        _paginated([[_issue(1), _issue(2), _issue(3)], error, [_issue(4)]], "pretty"), encoding="utf-8"
    )
    wh = Warehouse(tmp_path / "wh.duckdb")
    report = ingestion.ingest_source(wh, tmp_path / "landing", "github")
    assert report.files_ingested == 1 and report.rejects == 1, report.messages
    files = wh.query("SELECT message, shape FROM raw.ingested_files").row(0, named=True)
    assert files["message"].startswith("streamed") and files["shape"] == "github-paginated (3 pages)"
    assert wh.query("SELECT count(*) AS n FROM raw.github_tasks")["n"][0] == 4
    (reason,) = wh.query("SELECT reason FROM raw.rejects")["reason"].to_list()
    assert reason.startswith("page 2 of 3 is an object with keys ['documentation_url', 'message']")
