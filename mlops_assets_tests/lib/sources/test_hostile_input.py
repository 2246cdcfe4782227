"""Hostile landing files, every source: the bad record is rejected with a reason, the good ones are kept.

Cases from the fuzzing issues (19 and 20); docs/RELIABILITY.md ("Hostile input") lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops_assets.lib.sources import asana, csv_mapped, github, jira, trello
from mlops_assets.lib.sources.base import ParsedFile

GOOD = "2024-03-01T10:00:00Z"
MAPPING = "key: ID\ncreated_at: Created\ntitle: Title\n"


def _jira_json(tmp: Path, dates: list[str], encoding: str = "utf-8") -> Path:
    issues = [{"id": str(n), "key": f"OPS-{n}", "fields": {"summary": f"task {n}", "created": date,
               "status": {"name": "Open"}, "project": {"key": "OPS"}}} for n, date in enumerate(dates, 1)]  # fmt: skip
    path = tmp / "page.json"
    path.write_bytes(json.dumps({"issues": issues}).encode(encoding))
    return path


def _jira_csv(tmp: Path, dates: list[str]) -> Path:
    rows = [f"task {n},OPS-{n},{n},Bug,Open,OPS,{date},{date}" for n, date in enumerate(dates, 1)]
    path = tmp / "export.csv"
    path.write_text(
        "Summary,Issue key,Issue id,Issue Type,Status,Project key,Created,Updated\n" + "\n".join(rows) + "\n"
    )
    return path


def _github(tmp: Path, dates: list[str], encoding: str = "utf-8") -> Path:
    issues = [{"number": n, "title": f"task {n}", "state": "open", "created_at": date, "updated_at": date,
               "repository_url": "https://api.github.com/repos/acme/web", "user": {"login": "ada"}, "labels": []}
              for n, date in enumerate(dates, 1)]  # fmt: skip
    path = tmp / "issues.json"
    path.write_bytes(json.dumps(issues).encode(encoding))
    return path


def _trello(tmp: Path, dates: list[str]) -> Path:
    cards = [{"id": f"5e5471a0bcd1b15d1f6e3f{n:02x}", "name": f"task {n}", "idList": "l1", "dateLastActivity": date}
             for n, date in enumerate(dates, 1)]  # fmt: skip
    path = tmp / "board.json"
    path.write_text(json.dumps({"id": "5e5471a0bcd1b15d1f6e3f00", "name": "Web", "lists": [{"id": "l1", "name": "To Do"}],
                                "cards": cards, "actions": []}))  # fmt: skip
    return path


def _asana(tmp: Path, dates: list[str], encoding: str = "utf-8") -> Path:
    rows = [f"{n},{date},,task {n}" for n, date in enumerate(dates, 1)]
    path = tmp / "web.csv"
    path.write_bytes(("Task ID,Created At,Completed At,Name\n" + "\n".join(rows) + "\n").encode(encoding))
    return path


def _mapped(tmp: Path, dates: list[str], encoding: str = "utf-8") -> Path:
    rows = [f"L-{n},{date},task {n}" for n, date in enumerate(dates, 1)]
    path = tmp / "lin.csv"
    path.write_bytes(("ID,Created,Title\n" + "\n".join(rows) + "\n").encode(encoding))
    (tmp / "lin.yaml").write_text(MAPPING)
    return path


SOURCES: dict[str, tuple[Callable[..., Path], Callable[[Path], ParsedFile], str]] = {
    "jira-json": (_jira_json, jira.parse, "field 'created'"),
    "jira-csv": (_jira_csv, jira.parse, "column 'Created'"),
    "github": (_github, github.parse, "'created_at'"),
    "trello": (_trello, trello.parse, "'dateLastActivity'"),
    "asana": (_asana, asana.parse, "'Created At'"),
    "csv-mapped": (_mapped, csv_mapped.parse, "'Created'"),
}


@pytest.mark.parametrize("date", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
@pytest.mark.parametrize("source", list(SOURCES))
def test_a_date_past_the_calendar_is_rejected_and_the_good_record_kept(tmp_path, source, date):
    write, parse, field = SOURCES[source]
    parsed = parse(write(tmp_path, [GOOD, date]))
    assert [t["title"] for t in parsed.records["tasks"]] == ["task 1"]
    (reject,) = parsed.rejects
    assert (
        f"{field} = {date!r} falls outside years 1-9999 once converted to UTC: fix the date" in reject.reason
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
@pytest.mark.parametrize("source", ["jira-json", "github", "asana", "csv-mapped"])
def test_a_utf16_file_reads_like_its_utf8_twin(tmp_path, source, encoding):
    write, parse, _ = SOURCES[source]
    bom = "\ufeff" if encoding == "utf-16-be" else ""  # Python's "utf-16" writes a BOM itself; "-be" does not
    utf8 = parse(write(tmp_path, [GOOD, "2024-03-02T10:00:00Z"]))
    path = write(tmp_path, [GOOD, "2024-03-02T10:00:00Z"])
    path.write_bytes((bom + path.read_text(encoding="utf-8")).encode(encoding))
    parsed = parse(path)
    assert parsed.encoding == "utf-16" and parsed.rejects == []
    assert [t["title"] for t in parsed.records["tasks"]] == [t["title"] for t in utf8.records["tasks"]] == [
        "task 1", "task 2"]  # fmt: skip


CSV_PARSERS = {
    "asana": (asana.parse, "Task ID,Created At,Completed At,Name"),
    "csv-mapped": (csv_mapped.parse, "ID,Created,Title"),
}


def _csv_file(tmp: Path, source: str, body: str) -> Path:
    path = tmp / ("web.csv" if source == "asana" else "lin.csv")
    path.write_text(CSV_PARSERS[source][1] + "\n" + body)
    if source == "csv-mapped":
        (tmp / "lin.yaml").write_text(MAPPING)
    return path


def _row(source: str, n: int, title: str) -> str:
    return f"{n},{GOOD},,{title}" if source == "asana" else f"{n},{GOOD},{title}"


@pytest.mark.parametrize("source", list(CSV_PARSERS))
def test_a_field_over_the_csv_module_limit_keeps_the_file(tmp_path, source):
    long_title = "x" * 200_000  # the csv module's default limit is 131,072 characters
    body = "\n".join([_row(source, 1, long_title), _row(source, 2, "short")]) + "\n"
    parsed = CSV_PARSERS[source][0](_csv_file(tmp_path, source, body))
    assert parsed.rejects == []
    assert [len(t["title"]) for t in parsed.records["tasks"]] == [200_000, 5]


@pytest.mark.parametrize("closing", ["", "a later quoted value closes it"])
@pytest.mark.parametrize("source", list(CSV_PARSERS))
def test_an_unbalanced_quote_rejects_its_row_and_not_the_rows_it_swallowed(tmp_path, source, closing):
    rows = [_row(source, 1, '"broken title'), _row(source, 2, "second"), _row(source, 3, "third")]
    if closing:
        rows.append(_row(source, 4, '"quoted, fine"'))
    parsed = CSV_PARSERS[source][0](_csv_file(tmp_path, source, "\n".join(rows) + "\n"))
    titles = [t["title"] for t in parsed.records["tasks"]]
    assert titles == ["second", "third"] + (["quoted, fine"] if closing else [])
    (reject,) = parsed.rejects
    assert reject.locator == "line 2"
    assert reject.reason.startswith("line 2: a quoted value opened on this line runs on to line")
    assert "an unbalanced quote? close it, or double a quote meant as text" in reject.reason


def test_an_asana_row_with_too_few_fields_is_rejected_not_read_with_an_empty_name(tmp_path):
    path = _csv_file(tmp_path, "asana", f"1,{GOOD}\n2,{GOOD},,kept\n")
    parsed = asana.parse(path)
    assert [t["title"] for t in parsed.records["tasks"]] == ["kept"]
    (reject,) = parsed.rejects
    assert reject.reason == "line 2: 2 fields but the header has 4 (a cut-off line or a missing comma?)"


@pytest.mark.parametrize("source", ["jira-json", "github"])
def test_a_duplicate_json_key_keeps_its_last_value_as_documented(tmp_path, source):
    path = SOURCES[source][0](tmp_path, [GOOD])
    key = '"summary": ' if source == "jira-json" else '"title": '
    path.write_text(
        path.read_text().replace(key, key + '"first", ' + key, 1)
    )  # the key twice, "first" before
    parsed = SOURCES[source][1](path)
    assert [t["title"] for t in parsed.records["tasks"]] == ["task 1"] and parsed.rejects == []


# --- issue 20 item 4: a mapping is data, not a program: no aliases, scalars where scalars are meant

BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcde", "bcdef", strict=True))
    + "key: ID\ncreated_at: Created\ntitle: *f\n"
)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        (BOMB, "aliases (*name) are not allowed"),
        (
            'key: ID\ncreated_at: {column: Created, format: ["%Y", "%m"]}\n',
            "created_at.format must be a single value",
        ),
        ("key: {column: {nested: ID}}\ncreated_at: Created\n", "key.column must be a single value"),
        ("key: ID\ncreated_at: Created\nproject: {value: [WEB]}\n", "project.value must be a single value"),
        ("key: ID\ncreated_at: Created\ntimezone: {zone: UTC}\n", "timezone must be a single value"),
        (
            "key: ID\ncreated_at: Created\ntitle: {column: Title, map: {x: [1, 2]}}\n",
            "title.map entries must be single values",
        ),
        (
            "key: ID\ncreated_at: Created\ntitle: {column: " + "T" * 100_000 + "}\n",
            "is not a column of lin.csv",
        ),
    ],
)
def test_a_hostile_mapping_fails_fast_with_a_short_message(tmp_path, mapping, expected):
    from mlops_assets.lib.sources.base import SourceFormatError

    path = _mapped(tmp_path, [GOOD])
    (tmp_path / "lin.yaml").write_text(mapping)
    with pytest.raises(SourceFormatError) as raised:
        csv_mapped.parse(path)
    assert expected in str(raised.value)
    assert len(str(raised.value)) < 500  # the bomb's message was 580 MB; any echoed value is an excerpt


def test_a_mapping_alias_is_refused_before_it_expands(tmp_path):
    """Nine levels (the fuzzer's 412 bytes) would expand to 9**9 strings: refused at the first alias."""
    import time

    from mlops_assets.lib.sources.base import SourceFormatError

    deep = (
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "key: ID\ncreated_at: Created\ntitle: *i\n"
    )
    path = _mapped(tmp_path, [GOOD])
    (tmp_path / "lin.yaml").write_text(deep)
    started = time.perf_counter()
    with pytest.raises(SourceFormatError, match=r"lin\.yaml: not valid YAML \(aliases"):
        csv_mapped.parse(path)
    assert time.perf_counter() - started < 1.0
