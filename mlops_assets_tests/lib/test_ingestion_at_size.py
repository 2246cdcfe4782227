"""Ingestion that holds at real size, shown at small size: many single-issue files in one batch,
bounded inserts, a file larger than a batch, a small memory cap, and one bad file among good ones.

The figures at 100k and 300k real-shaped tasks are the benchmark's (docs/BENCHMARKS.md), not these tests'.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from mlops_assets.lib import ingestion
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import shared_data
from mlops_assets_tests.lib.conftest import ingest_whole_and_streamed


def _single_issue(n: int, body_chars: int = 6000, comments: int = 3) -> dict:
    """A single-issue REST payload as real exports have them: fields, a long description, comments."""
    return {
        "id": str(10_000_000 + n),
        "key": f"BIG-{n}",
        "self": f"https://jira.example/rest/api/2/issue/{10_000_000 + n}",
        "fields": {
            "summary": f"Issue number {n}",
            "description": ("lorem ipsum dolor sit amet " * (body_chars // 27 + 1))[:body_chars],
            "created": "2024-03-01T10:00:00.000+0000",
            "updated": "2024-03-05T10:00:00.000+0000",
            "resolutiondate": "2024-03-04T10:00:00.000+0000",
            "status": {"name": "Resolved", "statusCategory": {"key": "done"}},
            "priority": {"name": "Major", "id": "3"},
            "issuetype": {"name": "Bug"},
            "project": {"key": "BIG"},
            "labels": ["a", "b"],
            "comment": {
                "total": comments,
                "maxResults": comments,
                "startAt": 0,
                "comments": [
                    {
                        "id": f"{n}{c}",
                        "body": "comment text " * 40,
                        "created": "2024-03-02T10:00:00.000+0000",
                        "author": {"name": f"user{c}", "displayName": f"User {c}"},
                    }
                    for c in range(comments)
                ],
            },
        },
    }


def _write_singles(folder: Path, count: int, **kw) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (folder / f"BIG-{n}.json").write_text(json.dumps(_single_issue(n, **kw)))


def _one(wh: Warehouse, sql: str):
    return wh.query(sql).row(0)[0]


def _assert_conserved(wh: Warehouse, files: int) -> None:
    """Every file has one manifest row, and its credited records sum to the raw tables' rows."""
    assert _one(wh, "SELECT count(DISTINCT source_file) FROM raw.ingested_files") == files
    credited = _one(wh, "SELECT sum(n_new_records) FROM raw.ingested_files")
    stored = sum(_one(wh, f"SELECT count(*) FROM raw.jira_{k}") for k in ("tasks", "events", "comments"))
    assert credited == stored


def test_many_single_issue_files_in_one_batch_ingest_under_a_small_memory_cap(tmp_path, monkeypatch):
    # 600 single-issue files land in one write batch. Each file's table used to reach DuckDB as its own
    # Arrow chunk, and every chunk cost each string column buffers until commit: 2,505 real issue files
    # needed 1.3 GB. Here the cap is 120 MB, far below what 600 one-chunk appends needed (> 400 MB).
    _write_singles(tmp_path / "landing" / "jira", 600)
    monkeypatch.setenv(ingestion.MEMORY_LIMIT_ENV, "120MB")
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert report.files_ingested == 600 and report.files_unreadable == 0
    assert _one(wh, "SELECT count(*) FROM raw.jira_tasks") == 600
    assert _one(wh, "SELECT count(*) FROM raw.jira_comments") == 1800
    _assert_conserved(wh, 600)
    again = ingestion.ingest_source(wh, tmp_path / "landing", "jira")
    assert again.files_skipped == 600 and sum(again.records_new.values()) == 0


def test_a_file_larger_than_a_write_batch_is_written_whole_in_bounded_slices(tmp_path, monkeypatch):
    # A 2 MB search page against a 64 KB batch and 100 KB insert slices: the file still commits as a
    # whole (with its manifest row), in several inserts of one chunk each.
    issues = [_single_issue(n, body_chars=20_000, comments=0) for n in range(100)]
    page = tmp_path / "landing" / "jira" / "search-0.json"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"startAt": 0, "maxResults": 100, "total": 100, "issues": issues}))
    assert page.stat().st_size > 2_000_000
    monkeypatch.setenv(ingestion.BATCH_MB_ENV, "0.0625")
    monkeypatch.setattr(ingestion, "INSERT_SLICE_BYTES", 100_000)
    slices: list[int] = []
    real = ingestion.insert_slices

    def counting(table):
        for part in real(table):
            assert part.column(0).num_chunks <= ingestion.INSERT_MAX_CHUNKS
            slices.append(part.num_rows)
            yield part

    monkeypatch.setattr(ingestion, "insert_slices", counting)
    wh = Warehouse(tmp_path / "wh.duckdb")

    ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert sum(slices) == 100 and len(slices) > 10
    assert _one(wh, "SELECT count(DISTINCT key) FROM raw.jira_tasks") == 100
    _assert_conserved(wh, 1)


def test_insert_slices_keep_every_row_once_and_in_order():
    parts = [
        pa.table({"i": pa.array(range(s, s + n)), "t": pa.array(["x" * 100] * n)})
        for s, n in ((0, 3), (3, 1), (4, 500), (504, 2))
    ]
    parts += [
        pa.table({"i": pa.array([506 + k]), "t": pa.array(["y"])}) for k in range(2000)
    ]  # 2,000 one-row files
    table = pa.concat_tables(parts)
    out = list(ingestion.insert_slices(table))
    assert [x for t in out for x in t.column("i").to_pylist()] == list(range(2506))
    assert all(t.column("i").num_chunks <= ingestion.INSERT_MAX_CHUNKS for t in out)


def test_running_out_of_memory_names_the_files_and_what_to_set(tmp_path, monkeypatch):
    _write_singles(tmp_path / "landing" / "jira", 40, body_chars=50_000)
    monkeypatch.setenv(ingestion.MEMORY_LIMIT_ENV, "1MB")
    wh = Warehouse(tmp_path / "wh.duckdb")

    with pytest.raises(ingestion.IngestionMemoryError) as err:
        ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    message = str(err.value)
    assert (
        "BIG-0.json" in message
        and ingestion.MEMORY_LIMIT_ENV in message
        and ingestion.BATCH_MB_ENV in message
    )
    assert "Nothing of this batch was written" in message
    monkeypatch.delenv(ingestion.MEMORY_LIMIT_ENV)  # after raising the limit, the same files go in
    assert ingestion.ingest_source(wh, tmp_path / "landing", "jira").files_ingested == 40


def test_a_bad_batch_size_setting_says_what_is_expected(monkeypatch):
    monkeypatch.setenv(ingestion.BATCH_MB_ENV, "lots")
    with pytest.raises(ValueError, match="MLOPS_INGEST_BATCH_MB='lots' is not a number"):
        ingestion.write_batch_bytes()


def test_identical_files_under_other_names_are_accounted_for(tmp_path):
    folder = tmp_path / "landing" / "jira"
    _write_singles(folder, 3)
    empty = json.dumps({"startAt": 0, "maxResults": 0, "total": 0, "comments": []})
    for name in (
        "A-1_Comment.json",
        "A-2_Comment.json",
        "A-3_Comment.json",
    ):  # byte-identical, as in real exports
        (folder / name).write_text(empty)
    wh = Warehouse(tmp_path / "wh.duckdb")

    ingestion.ingest_source(wh, tmp_path / "landing", "jira")
    (folder / "A-4_Comment.json").write_text(empty)  # a later copy, in a later run
    ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    statuses = dict(wh.query("SELECT source_file, status FROM raw.ingested_files").iter_rows())
    assert len(statuses) == 7
    names = {Path(k).name: v for k, v in statuses.items()}
    assert names["A-1_Comment.json"] == "ingested"
    assert {names[f"A-{i}_Comment.json"] for i in (2, 3, 4)} == {"duplicate_file"}
    _assert_conserved(wh, 7)
    ingestion.ingest_source(wh, tmp_path / "landing", "jira")  # a third run records nothing more
    assert _one(wh, "SELECT count(*) FROM raw.ingested_files") == 7


@pytest.mark.parametrize(
    "source,name,content",
    [
        ("jira", "deep.json", "[" * 1000 + "]" * 1000),
        ("github", "deep.json", "[" * 100_000 + "]" * 100_000),
        ("trello", "deep.json", '{"cards": ' + "[" * 5000 + "]" * 5000 + "}"),
        (
            "jira",
            "labels.json",
            json.dumps(
                {
                    "startAt": 0,
                    "total": 1,
                    "issues": [
                        {
                            **_single_issue(1),
                            "fields": {**_single_issue(1)["fields"], "labels": 123, "fixVersions": True},
                        }
                    ],
                }
            ),
        ),
        (
            "trello",
            "swap.json",
            json.dumps(
                {
                    "id": "b1",
                    "name": "B",
                    "lists": [{"id": {}}],
                    "cards": [{"id": [], "idList": [1], "name": "c", "idLabels": [[1]], "idMembers": [[1]]}],
                    "actions": 5,
                }
            ),
        ),
    ],
)
def test_a_file_that_breaks_its_parser_is_quarantined_alone(tmp_path, source, name, content):
    folder = tmp_path / "landing" / source
    folder.mkdir(parents=True)
    (folder / name).write_text(content)
    if source == "jira":
        _write_singles(folder, 2)
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", source)  # never raises

    status, message = wh.query(
        "SELECT status, message FROM raw.ingested_files WHERE source_file LIKE ?", [f"%{name}"]
    ).row(0)
    if status == "unreadable":
        assert name in message or name in " ".join(report.messages)
        assert report.files_unreadable == 1
    else:  # the parser itself handled the odd values: then a bad record is a reject, with a reason
        assert _one(wh, "SELECT count(*) FROM raw.rejects WHERE reason IS NULL") == 0
    if source == "jira":
        assert _one(wh, "SELECT count(*) FROM raw.jira_tasks WHERE key LIKE 'BIG-%'") >= 2


def test_links_out_of_the_landing_zone_are_not_read_and_secrets_never_stored(tmp_path, monkeypatch):
    secret = "tok-" + "s3cr3t" * 4
    monkeypatch.setenv("JIRA_API_TOKEN", secret)
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(f"JIRA_API_TOKEN={secret}\nHOME=/root\n")
    folder = tmp_path / "landing" / "jira"
    _write_singles(folder, 1)
    os.symlink(outside, folder / "environ.csv")
    os.symlink("/proc/self/environ", folder / "environ2.csv")
    outside_dir = tmp_path / "other-project"
    _write_singles(outside_dir, 1)
    os.symlink(outside_dir, folder / "linked-folder", target_is_directory=True)
    (folder / "config.csv").write_text(
        f"Summary,Issue key\nhello,X-1\nJIRA_API_TOKEN={secret},password=hunter2\n"
    )
    (folder / "broken.json").write_text(f'{{"token": "{secret}", "url": "https://bob:hunter2@example.com" ')
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    read = {Path(p).name for p in wh.query("SELECT source_file FROM raw.ingested_files")["source_file"]}
    assert "environ.csv" not in read and "environ2.csv" not in read
    assert not any(
        "other-project" in p or "linked-folder" in p
        for p in wh.query("SELECT source_file FROM raw.ingested_files")["source_file"]
    )
    assert any("environ.csv" in m and "landing zone" in m for m in report.messages)
    stored = " ".join(
        str(v)
        for t in ("raw.rejects", "raw.ingested_files")
        for row in wh.query(f"SELECT * FROM {t}").iter_rows()
        for v in row
    )
    logged = " ".join(report.messages)
    for text in (stored, logged):
        assert secret not in text and "hunter2" not in text


@pytest.fixture
def stream_everything(monkeypatch):
    """Every JSON file counts as big: it is streamed in parts of 40 records, each staged on its own."""
    from mlops_assets.lib.sources import stream

    monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(stream, "PART_RECORDS", 40)
    monkeypatch.setattr(ingestion, "STAGE_BYTES", 1)


def test_a_big_search_page_is_streamed_in_parts_and_commits_whole(tmp_path, monkeypatch, stream_everything):
    issues = [_single_issue(n, body_chars=2000, comments=2) for n in range(300)]
    issues[7] = {**issues[7], "fields": {**issues[7]["fields"], "created": "not a date"}}  # one bad record
    folder = tmp_path / "landing" / "jira"
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(
        json.dumps(
            {
                "startAt": 0,
                "maxResults": 300,
                "total": 300,
                "names": {"customfield_10002": "Story Points"},
                "issues": issues,
            }
        )
    )
    _write_singles(folder, 2)  # small files beside it go the ordinary way... here streamed too
    monkeypatch.setenv(ingestion.MEMORY_LIMIT_ENV, "100MB")
    wh = Warehouse(tmp_path / "wh.duckdb")
    parts: list[int] = []
    real = ingestion._StagedWriter.add

    def counting(self, frames):
        parts.append(sum(f.num_rows for f in frames.values()))
        # each part is committed to staging on its own; the raw table sees none of the file yet
        result = real(self, frames)
        staged = self.con.execute(f"SELECT count(*) FROM {self.staged['tasks']}").fetchall()[0][0]
        parts[-1] = (
            parts[-1],
            staged,
            self.con.execute("SELECT count(*) FROM raw.jira_tasks").fetchall()[0][0],
        )
        return result

    monkeypatch.setattr(ingestion._StagedWriter, "add", counting)

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert report.files_ingested == 3 and report.files_unreadable == 0
    assert len(parts) >= 8  # 300 issues in parts of 40, each written on its own
    search = [
        p for p in parts if p[1] > 2
    ]  # the search page's parts (the two single files stage 1 task each)
    assert [p[1] for p in search] == sorted(p[1] for p in search) and search[-1][1] == 299
    assert all(p[2] <= 2 for p in parts)  # raw.jira_tasks never held part of the page
    assert (
        _one(
            wh,
            f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{ingestion.STAGING_SCHEMA}'",
        )
        == 0
    )
    assert _one(wh, "SELECT count(*) FROM raw.jira_tasks") == 299 + 2
    assert _one(wh, "SELECT count(*) FROM raw.rejects WHERE locator = 'issues[7]'") == 1
    assert _one(
        wh, "SELECT message FROM raw.ingested_files WHERE source_file LIKE '%search.json'"
    ).startswith("streamed")
    _assert_conserved(wh, 3)
    assert sum(ingestion.ingest_source(wh, tmp_path / "landing", "jira").records_new.values()) == 0


def test_a_streamed_file_that_breaks_part_way_leaves_nothing_behind(tmp_path, stream_everything):
    issues = [_single_issue(n, body_chars=500, comments=0) for n in range(200)]
    text = json.dumps({"startAt": 0, "total": 200, "issues": issues})
    folder = tmp_path / "landing" / "jira"
    folder.mkdir(parents=True)
    (folder / "cut.json").write_text(text[: len(text) * 3 // 4])  # the download stopped at 75%
    (folder / "good.json").write_text(json.dumps({"startAt": 0, "total": 1, "issues": [_single_issue(999)]}))
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert report.files_unreadable == 1 and report.files_ingested == 1
    # the parts staged before the fault are dropped with their staging tables
    assert (
        _one(
            wh,
            f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{ingestion.STAGING_SCHEMA}'",
        )
        == 0
    )
    assert wh.query("SELECT key FROM raw.jira_tasks")["key"].to_list() == [
        "BIG-999"
    ]  # none of cut.json's parts
    status, message = wh.query(
        "SELECT status, message FROM raw.ingested_files WHERE source_file LIKE '%cut.json'"
    ).row(0)
    assert status == "unreadable" and "cut.json" in message and "cut short" in message


def test_a_streamed_github_page_gives_what_the_whole_parse_gives(tmp_path, monkeypatch):
    items = [
        {
            "number": n,
            "id": 5000 + n,
            "title": f"issue {n}",
            "state": "open",
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": "2024-01-03T03:04:05Z",
            "user": {"login": f"u{n % 7}"},
            "labels": [],
            "repository_url": "https://api.github.com/repos/acme/app",
            **({"pull_request": {}} if n % 4 == 0 else {}),
        }
        for n in range(1, 121)
    ]
    both = ingest_whole_and_streamed(tmp_path, monkeypatch, "github", "page.json", json.dumps(items), 25)
    whole, streamed = (
        both[how].query("SELECT task_id, record_hash FROM raw.github_tasks ORDER BY 1") for how in both
    )
    assert whole.height == 90 and whole.equals(streamed)


def test_one_issue_nested_past_the_decoders_limit_costs_only_itself(tmp_path):
    # msgspec and json refuse a document nested past ~1,000 levels as a whole; the page is then read
    # item by item, and only the deep issue is rejected.
    deep = "[" * 10_000 + "]" * 10_000
    good = [json.dumps(_single_issue(n, body_chars=100, comments=0)) for n in (1, 2)]
    bad = json.dumps(_single_issue(3, body_chars=100, comments=0)).replace(
        '"labels": ["a", "b"]', f'"labels": {deep}'
    )
    folder = tmp_path / "landing" / "jira"
    folder.mkdir(parents=True)
    (folder / "page.json").write_text(
        '{"startAt": 0, "total": 3, "issues": [' + ", ".join([good[0], bad, good[1]]) + "]}"
    )
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert report.files_unreadable == 0
    assert sorted(wh.query("SELECT key FROM raw.jira_tasks")["key"].to_list()) == ["BIG-1", "BIG-2"]
    assert wh.query("SELECT locator FROM raw.rejects")["locator"].to_list() == ["issues[1]"]


def _raw_rows(wh: Warehouse, source: str) -> dict[str, list[tuple]]:
    kinds = ingestion.SOURCES[source][2]
    return {
        kind: wh.query(
            f"SELECT * EXCLUDE (ingested_at, source_file, file_hash) FROM raw.{source}_{kind} "
            "ORDER BY record_hash"
        ).rows()
        for kind in kinds
    }


def test_a_streamed_trello_board_gives_what_the_whole_parse_gives(tmp_path, monkeypatch):
    """The real board of ../shared/data (cards, lists, labels, checklists, actions), whole and streamed."""
    from mlops_assets.lib.sources import stream

    board = shared_data("exports", "trello", "volunteerbridge-board.json")
    rows = {}
    for name, streamed in (("whole", False), ("streamed", True)):
        folder = tmp_path / name / "landing" / "trello"
        folder.mkdir(parents=True)
        shutil.copy(board, folder / "board.json")
        if streamed:
            monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
            monkeypatch.setattr(stream, "PART_RECORDS", 10)
        wh = Warehouse(tmp_path / name / "wh.duckdb")
        report = ingestion.ingest_source(wh, tmp_path / name / "landing", "trello")
        assert report.files_ingested == 1 and report.files_unreadable == 0
        rows[name] = _raw_rows(wh, "trello")
        shape, message = wh.query("SELECT shape, message FROM raw.ingested_files").row(0)
        assert shape == "trello-board-export" and (message or "").startswith("streamed") == streamed
    assert {k: len(v) for k, v in rows["whole"].items()} == {k: len(v) for k, v in rows["streamed"].items()}
    assert len(rows["whole"]["tasks"]) > 30 and rows["whole"] == rows["streamed"]


def test_a_streamed_board_with_an_integer_past_64_bits_gives_what_the_whole_parse_gives(
    tmp_path, monkeypatch
):
    """Ijson refused such a number, so the streamed board was refused whole where the whole parse kept it."""
    from mlops_assets.lib.sources import stream

    board = json.loads(shared_data("exports", "trello", "volunteerbridge-board.json").read_text())
    board["cards"][0]["customFieldItems"] = [{"idCustomField": "f1", "value": {"number": 10**30}}]
    text = json.dumps(board)
    rows = {}
    for name, streamed in (("whole", False), ("streamed", True)):
        folder = tmp_path / name / "landing" / "trello"
        folder.mkdir(parents=True)
        (folder / "board.json").write_text(text)
        if streamed:
            monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
        wh = Warehouse(tmp_path / name / "wh.duckdb")
        report = ingestion.ingest_source(wh, tmp_path / name / "landing", "trello")
        assert report.files_ingested == 1 and report.files_unreadable == 0, report.messages
        rows[name] = _raw_rows(wh, "trello")
    assert rows["whole"] == rows["streamed"] and str(10**30) in str(rows["streamed"]["tasks"])


def test_a_streamed_trello_board_is_read_in_parts_and_a_cut_one_leaves_nothing(
    tmp_path, monkeypatch, stream_everything
):
    cards = [
        {
            "id": f"{n:024x}",
            "idShort": n,
            "name": f"card {n}",
            "idList": "l1",
            "idMembers": [],
            "dateLastActivity": "2024-05-01T10:00:00.000Z",
            "badges": {"comments": 1},
            "labels": [],
        }
        for n in range(1, 201)
    ]
    cards[5] = {**cards[5], "dateLastActivity": "not a date"}  # one bad card costs only itself
    actions = [
        {
            "id": f"a{n}",
            "type": "commentCard",
            "date": "2024-05-01T10:00:00.000Z",
            "idMemberCreator": "m1",
            "data": {"card": {"id": f"{n:024x}"}, "text": "hello"},
        }
        for n in range(1, 201)
    ]
    board = {
        "name": "Big board",
        "lists": [{"id": "l1", "name": "Doing"}],
        "labels": [],
        "checklists": [],
        "actions": actions,
        "cards": cards,
    }
    folder = tmp_path / "landing" / "trello"
    folder.mkdir(parents=True)
    (folder / "big.json").write_text(json.dumps(board))
    text = json.dumps({**board, "name": "Cut"})
    (folder / "cut.json").write_text(text[: len(text) * 3 // 4])
    wh = Warehouse(tmp_path / "wh.duckdb")
    parts: list[int] = []
    real = ingestion._StagedWriter.add  # a streamed file stages its parts, each committed on its own
    monkeypatch.setattr(
        ingestion._StagedWriter, "add", lambda self, frames: parts.append(1) or real(self, frames)
    )

    report = ingestion.ingest_source(wh, tmp_path / "landing", "trello")

    assert report.files_ingested == 1 and report.files_unreadable == 1
    assert len(parts) >= 10  # 399 records in parts of 40
    assert _one(wh, "SELECT count(*) FROM raw.trello_tasks") == 199
    assert _one(wh, "SELECT count(*) FROM raw.trello_comments") == 200
    assert _one(wh, "SELECT count(*) FROM raw.rejects WHERE locator = 'cards[5]'") == 1
    assert _one(wh, "SELECT count(DISTINCT project) FROM raw.trello_tasks") == 1  # nothing of cut.json
    assert any("cut.json" in m and "cut short" in m for m in report.messages)


def test_a_streamed_file_is_staged_then_moved_whole_on_both_warehouse_kinds(
    warehouse, tmp_path, stream_everything
):
    """DuckDB file and DuckLake: the parts go through ingest_staging, the raw table gets the file at once."""
    folder = tmp_path / "landing" / "jira"
    folder.mkdir(parents=True)
    (folder / "page.json").write_text(
        json.dumps(
            {"startAt": 0, "total": 120, "issues": [_single_issue(n, body_chars=300) for n in range(120)]}
        )
    )

    report = ingestion.ingest_source(warehouse, tmp_path / "landing", "jira")

    assert report.files_ingested == 1 and report.records_new["tasks"] == 120
    assert _one(warehouse, "SELECT count(*) FROM raw.jira_tasks") == 120
    assert (
        _one(warehouse, "SELECT n_new_records FROM raw.ingested_files")
        == 120 + report.records_new["events"] + report.records_new["comments"]
    )
    assert (
        _one(
            warehouse,
            "SELECT count(*) FROM information_schema.tables "
            f"WHERE table_schema = '{ingestion.STAGING_SCHEMA}'",
        )
        == 0
    )
    assert sum(ingestion.ingest_source(warehouse, tmp_path / "landing", "jira").records_new.values()) == 0


@pytest.mark.parametrize(
    "form", ["search page, names last", "issue list", "one issue nested too deep", "story points NaN"]
)
def test_a_streamed_jira_file_gives_what_the_whole_parse_gives(tmp_path, monkeypatch, form):
    """Big Jira files are read over a memory map (msgspec) and, for an issue nested past its depth, through
    ijson: either way the records, rejects and story points of the whole parse.
    """
    issues = [_single_issue(n, body_chars=300, comments=2) for n in range(30)]
    for issue in issues:
        issue["fields"]["customfield_10002"] = 3.0
    issues[4] = {**issues[4], "fields": {**issues[4]["fields"], "created": "not a date"}}  # a reject
    if form == "issue list":
        text = json.dumps(issues)
    else:
        text = json.dumps(
            {"startAt": 0, "total": 30, "issues": issues, "names": {"customfield_10002": "Story Points"}}
        )
    if form == "one issue nested too deep":
        deep = "[" * 10_000 + "]" * 10_000
        text = text.replace('"labels": ["a", "b"]', f'"labels": {deep}', 1)
    if form == "story points NaN":  # what Python's json.dumps writes for a NaN float: msgspec refuses it
        text = text.replace('"customfield_10002": 3.0', '"customfield_10002": NaN', 1)
    both = ingest_whole_and_streamed(tmp_path, monkeypatch, "jira", "search.json", text, 7)
    rows = {how: _raw_rows(wh, "jira") for how, wh in both.items()}
    rejects = {
        how: wh.query("SELECT locator, reason FROM raw.rejects ORDER BY 1").rows() for how, wh in both.items()
    }
    wh = both["streamed"]
    deep_ones = 1 if form == "one issue nested too deep" else 0
    assert len(rows["whole"]["tasks"]) == 30 - 1 - deep_ones and len(rejects["whole"]) == 1 + deep_ones
    # repr: a NaN is not equal to itself
    assert repr(rows["whole"]) == repr(rows["streamed"]) and rejects["whole"] == rejects["streamed"]
    points = wh.query("SELECT story_points FROM raw.jira_tasks")["story_points"].to_list()
    if form == "story points NaN":  # kept, for cleaning to quarantine with its reason
        assert sum(p != p for p in points) == 1
    elif form != "issue list":  # the story points field is named in `names`, after the issues
        assert set(points) == {3.0}


def test_a_big_jira_file_with_a_bare_nan_too_big_to_read_whole_says_where_and_what_to_do(
    tmp_path, monkeypatch
):
    from mlops_assets.lib.sources import jira, stream

    monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
    monkeypatch.setattr(jira, "WHOLE_NON_FINITE_MAX_BYTES", 1000)
    issues = [_single_issue(n, body_chars=300, comments=0) for n in range(5)]
    issues[2]["fields"]["customfield_10002"] = float("-inf")
    folder = tmp_path / "landing" / "jira"
    folder.mkdir(parents=True)
    text = json.dumps({"startAt": 0, "total": 5, "issues": issues}, indent=1)
    (folder / "search.json").write_text(text)
    at = text.index("-Infinity")
    wh = Warehouse(tmp_path / "wh.duckdb")

    report = ingestion.ingest_source(wh, tmp_path / "landing", "jira")

    assert report.files_unreadable == 1
    message = _one(wh, "SELECT message FROM raw.ingested_files")
    assert f"holds a bare -Infinity at byte {at} (line {text[:at].count(chr(10)) + 1})" in message
    assert "write null there" in message and "split the export into files under" in message
