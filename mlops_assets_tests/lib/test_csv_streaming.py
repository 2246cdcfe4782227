"""A big mapped CSV is streamed (csv_mapped.parse_stream): the same records, rejects, counts, file hash
and record hashes as the whole-file parse, holding one part at a time.

The figures on a ~1 GB CSV are the benchmark's (docs/BENCHMARKS.md), not these tests'.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_assets.lib import ingestion
from mlops_assets.lib.sources import csv_mapped, stream
from mlops_assets.lib.sources.base import SourceFormatError
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import shared_data

MAPPING = """\
source_name: acme
key: {column: ID}
title: Title
status: {column: State}
status_category: {column: State, map: {Done: done, "In Progress": in_progress, Backlog: todo}}
created_at: {column: Created, format: "%d.%m.%Y %H:%M"}
story_points: {column: Estimate}
labels: {column: Labels, separator: "|"}
description: {column: Notes}
"""
HEADER = "ID,Title,State,Created,Estimate,Labels,Notes"


def _rows(n: int, prefix: str = "A", too_many: bool = True) -> list[str]:
    """``n`` rows with multi-line quoted notes, doubled quotes, non-ASCII text and, now and then, a bad row."""
    out = []
    for i in range(n):
        notes = f'"first line of {i}\r\nsecond ""quoted"" line é\n\nlast line ' + "x" * (i % 97) + '"'
        if i % 41 == 7:
            out.append(f"{prefix}-{i},bad date,Done,31.02.2024 10:00,1,,{notes}")
        elif i % 53 == 9 and too_many:
            out.append(f"{prefix}-{i},too many,Done,05.01.2024 10:07,1,,{notes},extra")
        elif i % 67 == 3:
            out.append("")  # a blank line
        else:
            out.append(
                f"{prefix}-{i},Task {i},{'Done' if i % 3 else 'In Progress'},05.01.2024 10:{i % 60:02d},"
                f"{i % 5},a|b,{notes}"
            )
    return out


def _synthetic(n: int = 400, newline: str = "\r\n", prefix: str = "A", too_many: bool = True) -> str:
    return newline.join([HEADER, *_rows(n, prefix, too_many)]) + newline


def _drop(folder: Path, text: str | bytes, name: str = "acme", encoding: str = "utf-8-sig") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    (folder / f"{name}.yaml").write_text(MAPPING, encoding="utf-8")
    return path


def _streamed(path: Path) -> tuple[list[dict], list, int, set[str], set[str], list[int]]:
    parts = list(csv_mapped.parse_stream(path))
    tasks = [t for p in parts for t in p.records["tasks"]]
    rejects = [r for p in parts for r in p.rejects]
    sizes = [len(p.records["tasks"]) + len(p.rejects) for p in parts]
    return (
        tasks,
        rejects,
        sum(p.n_records for p in parts),
        {p.shape for p in parts},
        {p.encoding for p in parts},
        sizes,
    )


def _assert_same(path: Path, part_records: int, monkeypatch) -> None:
    monkeypatch.setattr(stream, "PART_RECORDS", part_records)
    whole = csv_mapped.parse(path)
    tasks, rejects, n_records, shapes, encodings, sizes = _streamed(path)
    assert tasks == whole.records["tasks"]
    assert rejects == whole.rejects
    assert n_records == whole.n_records and shapes == {whole.shape} and encodings == {whole.encoding}
    assert (
        max(sizes) <= part_records
        and len(sizes) >= (len(whole.records["tasks"]) + len(whole.rejects)) // part_records
    )


def test_the_real_jira_csv_export_streams_as_it_parses_whole(tmp_path, monkeypatch):
    """Repeated headers, Jira's `22/Sep/25 9:26 AM` dates, multi-line descriptions: in parts of 5."""
    path = tmp_path / "jira-export.csv"
    shutil.copy(shared_data("exports", "jira-csv", "testautogen-all-fields.csv"), path)
    (tmp_path / "jira-export.yaml").write_text(
        "source_name: testautogen\nkey: Issue key\nproject: Project key\ntitle: Summary\ntype: Issue Type\n"
        "status: Status\npriority: Priority\nassignee: Assignee Id\nreporter: Reporter Id\ndescription: Description\n"
        "status_category: {column: Status Category, map: {To Do: todo, In Progress: in_progress, Done: done}}\n"
        'created_at: {column: Created, format: "%d/%b/%y %I:%M %p"}\n'
        'resolved_at: {column: Resolved, format: "%d/%b/%y %I:%M %p"}\n',
        encoding="utf-8",
    )
    assert len(csv_mapped.parse(path).records["tasks"]) == 22
    _assert_same(path, 5, monkeypatch)


@pytest.mark.parametrize(
    ("encoding", "newline"), [("utf-8-sig", "\r\n"), ("utf-8", "\n"), ("cp1252", "\r\n"), ("utf-16", "\r\n")]
)
def test_a_synthetic_mapped_csv_streams_as_it_parses_whole(tmp_path, monkeypatch, encoding, newline):
    """BOM, multi-line quoted values across the reader's blocks, bad rows, a blank line; Latin-1 and UTF-16 too."""
    path = _drop(tmp_path, _synthetic(400, newline), encoding=encoding)
    assert path.stat().st_size > 50_000  # many of the text reader's 8 KB blocks end inside a quoted value
    whole = csv_mapped.parse(path)
    assert len(whole.records["tasks"]) > 350 and len(whole.rejects) >= 15
    assert whole.encoding == {"utf-8-sig": "utf-8", "cp1252": "latin-1"}.get(encoding, encoding)
    _assert_same(path, 37, monkeypatch)


def test_one_non_utf8_byte_at_the_end_makes_the_whole_streamed_file_latin1(tmp_path, monkeypatch):
    text = _synthetic(200)
    path = _drop(
        tmp_path, text.encode("utf-8") + "A-999,late,Done,05.01.2024 10:07,1,,caf\xe9\r\n".encode("latin-1")
    )
    assert csv_mapped.parse(path).encoding == "latin-1"
    _assert_same(path, 50, monkeypatch)


@pytest.mark.parametrize("cut", ["unbalanced", "cut_in_quotes", "cut_mid_line"])
def test_an_unbalanced_quote_or_a_cut_file_streams_as_it_parses_whole(tmp_path, monkeypatch, cut):
    rows = _rows(120)
    if cut == "unbalanced":  # a quote opened on line 31 and never closed: swallowed rows are read again
        rows[30] = 'A-30,"Task 30,Done,05.01.2024 10:00,1,,plain'
        text = "\n".join([HEADER, *rows]) + "\n"
    else:
        text = "\n".join([HEADER, *rows]) + "\n"
        end = text.rindex("second") if cut == "cut_in_quotes" else text.rindex("A-11") + 12
        text = text[:end]
    path = _drop(tmp_path, text)
    whole = csv_mapped.parse(path)
    assert any("line" in r.reason for r in whole.rejects)
    if cut != "cut_mid_line":
        assert any("unbalanced quote" in r.reason for r in whole.rejects)
    _assert_same(path, 9, monkeypatch)


def test_a_file_the_parser_cannot_read_fails_the_same_way_streamed(tmp_path):
    path = _drop(tmp_path, "Key,Title\nA-1,x\n")  # the mapping's ID column is missing
    with pytest.raises(SourceFormatError) as whole:
        csv_mapped.parse(path)
    parts = csv_mapped.parse_stream(path)
    assert parts is not None  # nothing read yet: the fault comes with the first part
    with pytest.raises(SourceFormatError) as streamed:
        list(parts)
    assert str(streamed.value) == str(whole.value)


def _ingest(tmp_path: Path, name: str, files: dict[str, str | bytes], monkeypatch, streamed: bool):
    monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1024 if streamed else 1 << 40)
    monkeypatch.setattr(stream, "PART_RECORDS", 23)
    for stem, text in files.items():
        _drop(tmp_path / name / "landing" / "csv", text, stem)
    wh = Warehouse(tmp_path / name / "wh.duckdb")
    return wh, ingestion.ingest_source(wh, tmp_path / name / "landing", "csv")


def _tables(wh: Warehouse) -> dict[str, list[tuple]]:
    return {
        "tasks": wh.query(
            "SELECT * EXCLUDE (ingested_at, source_file) FROM raw.csv_tasks ORDER BY record_hash"
        ).rows(),
        "rejects": wh.query(
            "SELECT * EXCLUDE (ingested_at, source_file) FROM raw.rejects ORDER BY locator, record_hash"
        ).rows(),
        "files": wh.query(
            "SELECT * EXCLUDE (ingested_at, source_file, message) FROM raw.ingested_files ORDER BY file_hash"
        ).rows(),
    }


def test_a_streamed_csv_ingests_as_the_whole_file_does(tmp_path, monkeypatch):
    # No reject of one file is in another: raw.rejects keeps one of identical rejects (same payload;
    # a run-on row's reject has none), and whether the second comes in the same transaction or a later
    # one decides which, streamed or not (each streamed file is a transaction of its own).
    files = {
        "acme": _synthetic(300),
        "old": _synthetic(120, prefix="B", too_many=False).encode("cp1252"),
        "broken": "Key,Title\n" + "A-1,x\n" * 300,
    }  # the last one is unreadable: no ID column
    parts: list[int] = []
    real = ingestion._StagedWriter.add

    def counting(self, frames):
        parts.append(sum(f.num_rows for f in frames.values()))
        return real(self, frames)

    monkeypatch.setattr(ingestion._StagedWriter, "add", counting)
    whole_wh, whole = _ingest(tmp_path, "whole", files, monkeypatch, streamed=False)
    n_whole_adds = len(parts)
    streamed_wh, streamed = _ingest(tmp_path, "streamed", files, monkeypatch, streamed=True)

    assert len(parts) - n_whole_adds >= 300 // 23  # written part by part
    assert (
        (whole.files_ingested, whole.files_unreadable)
        == (streamed.files_ingested, streamed.files_unreadable)
        == (2, 1)
    )
    assert whole.records_parsed == streamed.records_parsed and whole.records_new == streamed.records_new
    assert whole.rejects == streamed.rejects and whole.latin1_files == streamed.latin1_files == ["old.csv"]
    assert whole.unreadable == streamed.unreadable
    a, b = _tables(whole_wh), _tables(streamed_wh)
    assert len(a["tasks"]) > 350 and len(a["rejects"]) > 15
    assert a == b  # same record hashes (the mapping salt), file hashes, rows, rejects and manifest rows
    messages = dict(streamed_wh.query("SELECT source_file, message FROM raw.ingested_files").rows())
    whole_messages = dict(whole_wh.query("SELECT source_file, message FROM raw.ingested_files").rows())
    for name, message in messages.items():
        if name.endswith("broken.csv"):
            assert message == whole_messages[name.replace("/streamed/", "/whole/")]
        else:
            assert message.startswith("streamed")
            assert message.endswith(whole_messages[name.replace("/streamed/", "/whole/")] or "at once")


def test_a_file_ingested_whole_is_recognised_when_it_comes_again_big(tmp_path, monkeypatch):
    wh, first = _ingest(tmp_path, "one", {"acme": _synthetic(100)}, monkeypatch, streamed=False)
    assert first.files_ingested == 1
    _, again = _ingest(tmp_path, "one", {"acme": _synthetic(100)}, monkeypatch, streamed=True)
    assert again.files_skipped == 1 and again.files_ingested == 0
    # the mapping is part of the content either way: another mapping is another input, streamed too
    (tmp_path / "one" / "landing" / "csv" / "acme.yaml").write_text(MAPPING + "project: {value: OTHER}\n")
    again = ingestion.ingest_source(wh, tmp_path / "one" / "landing", "csv")
    assert again.files_ingested == 1 and again.records_new["tasks"] == first.records_new["tasks"]
    assert wh.query("SELECT count(*) FROM raw.ingested_files WHERE message LIKE 'streamed%'").row(0)[0] == 1
