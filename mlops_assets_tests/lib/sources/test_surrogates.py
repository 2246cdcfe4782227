r"""A lone UTF-16 surrogate escape in a landing file (an emoji cut in two, ``"\ud83d"`` alone) is read as U+FFFD,
the same whether the file is parsed whole or streamed, and costs no record. Before, the whole parse kept it
and the source's first write failed (UnicodeEncodeError: every file of the source lost), a streamed Trello
board was refused, and ijson streamed it as "?" or fused it with the next escape into a wrong character.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from mlops_assets.lib import ingestion
from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import json_loads, mend_lone_surrogates, utf8_json
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import shared_data

CUT = "\\ud83d"  # the escape as it stands in the file: the high half of an emoji, its low half cut off


def _reference(text: str):
    """What the escapes mean (json.loads), each surrogate left alone then replaced by U+FFFD."""

    def walk(value):
        if isinstance(value, str):
            return re.sub("[\ud800-\udfff]", "\ufffd", value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        return value

    return walk(json.loads(text))


CASES = {
    "a high half at the end": r'["cut \ud83d"]',
    "a high half before text": r'["\ud83dx"]',
    "a high half before another escape": r'["\ud83d\u0041"]',  # ijson made this one character
    "a low half alone": r'["\udc00 tail"]',  # ijson refused the file here
    "halves the wrong way round": r'["\ude00\ud83d"]',
    "a lone half before a pair": r'["\ud83d\ud83d\ude00"]',
    "in a key": r'{"k\ud83d": 1}',
    "an escaped backslash before u": r'["\\ud83d"]',  # the text \ud83d, not an escape: kept
    "an escaped backslash before a lone half": r'["\\\ud83d"]',
    "a pair, upper case": r'["\uD83D\uDE00"]',
    "nothing to mend": r'["caf\u00e9", 1, null]',
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_a_lone_surrogate_escape_reads_as_the_replacement_character_and_the_rest_as_it_means(text):
    expected = _reference(text)
    assert json_loads(text) == expected
    assert utf8_json(text.encode()) == expected
    decoded = json_loads(mend_lone_surrogates(text))
    assert not re.search("[\ud800-\udfff]", json.dumps(decoded, ensure_ascii=False))


def test_text_without_a_lone_half_is_the_same_object():
    text = r'{"a": "\ud83d\ude00", "b": "\\ud83d"}'
    assert mend_lone_surrogates(text) is text or mend_lone_surrogates(text) == text


@pytest.mark.parametrize("block", [1, 2, 5, 6, 7, 11, 12, 13, 64])
def test_the_mended_stream_is_the_mended_text_whatever_the_block_size(monkeypatch, block):
    # escapes of every kind at every offset, escaped backslashes next to them
    pieces = [r"\ud83d", r"\\", r"\ud83d\ude00", "ab", r"\udc00", r"\\u", r"\u0041", r"\\\ud83d", "x" * 13]
    text = ('["' + "".join(pieces * 5) + '"]').encode()
    monkeypatch.setattr(stream.MendedReader, "BLOCK", block)
    reader = stream.MendedReader(io.BytesIO(text))
    out = b""
    while chunk := reader.read(7):
        out += chunk
    assert out == mend_lone_surrogates(text)
    assert json.loads(out) == _reference(text.decode())


def _jira_issue(n: int, summary: str) -> dict:
    return {
        "id": str(10_000 + n),
        "key": f"OPS-{n}",
        "fields": {
            "summary": summary,
            "created": "2024-03-01T10:00:00.000+0000",
            "updated": "2024-03-02T10:00:00.000+0000",
            "status": {"name": "Open", "statusCategory": {"key": "new"}},
            "project": {"key": "OPS"},
            "comment": {"total": 0, "comments": []},
        },
    }


def _github_issue(n: int, title: str) -> dict:
    return {
        "number": n,
        "id": 5000 + n,
        "title": title,
        "state": "open",
        "created_at": "2024-01-02T03:04:05Z",
        "updated_at": "2024-01-03T03:04:05Z",
        "user": {"login": "u1"},
        "labels": [],
        "repository_url": "https://api.github.com/repos/acme/app",
    }


def _trello_board(names: list[str]) -> dict:
    cards = [
        {
            "id": f"5e4422fcc283ba2e3af33c{n:02d}",
            "idShort": n,
            "name": name,
            "desc": "",
            "idList": "L1",
            "idLabels": [],
            "idMembers": [],
            "closed": False,
            "due": None,
            "dateLastActivity": "2020-03-01T10:00:00.000Z",
        }
        for n, name in enumerate(names, start=1)
    ]
    return {
        "id": "b1",
        "name": "Web",
        "lists": [{"id": "L1", "name": "To Do", "closed": False}],
        "labels": [],
        "checklists": [],
        "cards": cards,
        "actions": [
            {
                "id": "a1",
                "type": "commentCard",
                "date": "2020-03-01T11:00:00.000Z",
                "idMemberCreator": "m1",
                "data": {"card": {"id": cards[0]["id"]}, "text": "see __CUT__"},
            }
        ],
    }


DOCS = {  # source -> (file name, document with __CUT__ where the cut emoji stands, table, title column, tasks)
    "jira": (
        "page.json",
        {"startAt": 0, "total": 3, "issues": [_jira_issue(1, "ok"), _jira_issue(2, "Fix login __CUT__"), _jira_issue(3, "ok")]},
        "jira_tasks",
        "title",
        3,
    ),
    "github": ("issues.json", [_github_issue(1, "ok"), _github_issue(2, "Crash __CUT__")], "github_tasks", "title", 2),
    "trello": ("board.json", _trello_board(["ok", "Launch __CUT__ party"]), "trello_tasks", "title", 2),
}  # fmt: skip


def _ingest(root: Path, source: str, text: str) -> Warehouse:
    folder = root / "landing" / source
    folder.mkdir(parents=True)
    (folder / DOCS[source][0]).write_text(text, encoding="utf-8")
    wh = Warehouse(root / "wh.duckdb")
    report = ingestion.ingest_source(wh, root / "landing", source)
    assert report.files_ingested == 1 and report.files_unreadable == 0 and report.rejects == 0, (
        report.messages
    )
    return wh


@pytest.mark.parametrize("source", DOCS)
def test_a_lone_half_costs_no_record_and_streamed_gives_what_the_whole_parse_gives(
    tmp_path, monkeypatch, source
):
    _, doc, table, column, n_tasks = DOCS[source]
    text = json.dumps(doc).replace("__CUT__", CUT)
    rows = {}
    for name in ("whole", "streamed"):
        if name == "streamed":
            monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
            monkeypatch.setattr(stream.MendedReader, "BLOCK", 16)  # escapes straddle the blocks
        wh = _ingest(tmp_path / name, source, text)
        message = wh.query("SELECT message FROM raw.ingested_files")["message"][0] or ""
        assert message.startswith("streamed") == (name == "streamed")
        rows[name] = wh.query(
            f"SELECT * EXCLUDE (ingested_at, source_file, file_hash) FROM raw.{table} ORDER BY record_hash"
        ).rows()
        titles = wh.query(f"SELECT {column} FROM raw.{table}")[column].to_list()
        assert len(titles) == n_tasks and any(t.endswith("\ufffd") or "\ufffd " in t for t in titles), titles
    assert rows["whole"] == rows["streamed"]


def test_a_real_jira_issue_with_a_cut_emoji_in_its_summary_is_kept(tmp_path):
    """Real REST payloads (../shared/data): a search page of three issues, one summary cut inside an emoji."""
    folder = shared_data("jira-apache-ase2015", "issues")
    paths = sorted(p for p in folder.glob("*.json") if "_" not in p.stem)[:3]
    issues = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    issues[1]["fields"]["summary"] = issues[1]["fields"]["summary"][:40] + " __CUT__"
    text = json.dumps({"startAt": 0, "maxResults": 50, "total": 3, "issues": issues}).replace("__CUT__", CUT)
    wh = _ingest(tmp_path, "jira", text)
    titles = dict(wh.query("SELECT key, title FROM raw.jira_tasks").rows())
    assert sorted(titles) == sorted(i["key"] for i in issues)
    assert titles[issues[1]["key"]].endswith(" \ufffd") and "\ufffd" not in titles[issues[0]["key"]]


def test_a_mended_copy_left_by_a_killed_run_is_removed_by_the_next_one(tmp_path, monkeypatch):
    """A copy costs the file's size of TMPDIR (tmpfs on some machines): one a SIGKILL left must not stay."""
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = tmp_path / f"mlops-mended-{int(dead.stdout)}-abc123"
    alive = tmp_path / f"mlops-mended-{os.getppid()}-def456"  # a running process's copy is kept
    for folder in (orphan, alive):
        folder.mkdir()
        (folder / "board.json").write_bytes(b"x" * 1000)
    source = tmp_path / "board.json"
    source.write_text('{"name": "launch ' + CUT + '"}', encoding="utf-8")

    with stream.mended_copy(source) as copy:
        assert json.loads(copy.read_text(encoding="utf-8"))["name"] == "launch \ufffd"
        assert copy.parent.name.startswith(f"mlops-mended-{os.getpid()}-")

    assert not orphan.exists() and alive.exists() and not copy.parent.exists()
