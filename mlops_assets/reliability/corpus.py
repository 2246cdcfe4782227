"""A corpus of hostile landing files, beside good ones, for all five sources and the mapped CSV.

``write_corpus(landing, n_good)`` writes every case into ``landing/<source>/`` and returns the
cases; each one says what must come out of ingestion + cleaning:

- ``good``: task keys that must reach ``clean.tasks`` (the sound records of the file);
- ``bad``: task keys that must not reach ``clean.tasks`` (the hostile records that carry a key);
- ``min_quarantined``: quarantine rows, each with a reason, the file must at least produce (a
  whole unreadable file is one row; a file that is never read, such as a link out of the landing
  zone, produces none).

Keys are unique across the corpus within a source, so (source, key) identifies a record. The good
files (``category`` "good") hold ``n_good`` records each. Used by scripts/reliability_figures.py
and mlops_assets_tests/reliability/test_corpus.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

GOOD = "2024-03-01T10:00:00Z"
UPDATED = "2024-03-05T10:00:00Z"
DEEP = 10_000
BIG = 1_000_000


@dataclass(frozen=True)
class Case:
    """One landing file and what ingestion + cleaning must make of it."""

    name: str
    category: str
    source: str
    path: str  # relative to the landing root
    good: frozenset[str] = frozenset()
    bad: frozenset[str] = frozenset()
    min_quarantined: int = 0
    note: str = ""
    known_limit: str = ""  # a promise this case is known to break, and why (reported, not hidden)

    @property
    def hostile(self) -> bool:
        return self.category != "good"


@dataclass
class _Writer:
    landing: Path
    cases: list[Case] = field(default_factory=list)
    counter: int = 0

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    def add(
        self,
        name: str,
        category: str,
        source: str,
        filename: str,
        data: bytes,
        good=(),
        bad=(),
        min_quarantined: int = 0,
        note: str = "",
        extra: dict[str, bytes] | None = None,
        known_limit: str = "",
    ) -> None:
        folder = self.landing / source
        folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(data)
        for other, content in (extra or {}).items():
            (folder / other).write_bytes(content)
        self.cases.append(
            Case(
                name,
                category,
                source,
                f"{source}/{filename}",
                frozenset(good),
                frozenset(bad),
                min_quarantined,
                note,
                known_limit,
            )
        )


# ---- record builders (a good record unless overridden) ----


def jira_issue(key: str, **fields) -> dict:
    base = {
        "summary": f"task {key}",
        "created": GOOD,
        "updated": UPDATED,
        "status": {"name": "Open"},
        "project": {"key": key.split("-")[0]},
        "issuetype": {"name": "Bug"},
    }
    return {"id": key.replace("-", ""), "key": key, "fields": {**base, **fields}}


def jira_page(issues: list[dict]) -> bytes:
    # "names" (expand=names) tells the parser which custom field holds story points
    return json.dumps(
        {
            "startAt": 0,
            "maxResults": 50,
            "total": len(issues),
            "issues": issues,
            "names": {"customfield_10016": "Story Points"},
        }
    ).encode()


def gh_issue(number: int, **over) -> dict:
    return {"number": number, "title": f"task {number}", "state": "open", "created_at": GOOD, "updated_at": UPDATED,
            "repository_url": "https://api.github.com/repos/acme/corpus", "user": {"login": "ada"}, "labels": [],
            "comments": 0, **over}  # fmt: skip


def trello_card(n: int, **over) -> dict:
    return {"id": card_id(n), "name": f"task {n}", "idList": "l1", "dateLastActivity": UPDATED,
            "badges": {"comments": 0}, **over}  # fmt: skip


def card_id(n: int) -> str:
    return f"5e5471a0bcd1b15d{n:08x}"


def trello_board(cards: list[dict], board: int = 0, **over) -> bytes:
    return json.dumps({"id": f"5e5471a0bcd1b15d1f{board:06x}", "name": f"Board {board}",
                       "lists": [{"id": "l1", "name": "To Do"}], "cards": cards, "actions": [], **over}).encode()  # fmt: skip


def _cut_emoji(data: bytes) -> bytes:
    r"""JSON with ``__CUT__`` made the high half of an emoji whose low half was cut off (an exporter's UTF-16
    length limit): the escape ``\ud83d`` alone, which JSON allows and UTF-8 cannot hold.
    """
    return data.replace(b"__CUT__", b"\\ud83d")


ASANA_HEADER = "Task ID,Created At,Completed At,Name\n"
MAPPED_HEADER = "ID,Created,Updated,Title,Points\n"
MAPPING = ("key: {column: ID}\ncreated_at: {column: Created}\nupdated_at: {column: Updated}\n"
           "title: {column: Title}\nstory_points: {column: Points}\n")  # fmt: skip
JIRA_CSV_HEADER = "Summary,Issue key,Issue id,Issue Type,Status,Project key,Created,Updated\n"


def _asana_row(task: int, name: str | None = None, created: str = GOOD) -> str:
    return f"{task},{created},,{name or f'task {task}'}\n"


def _mapped_row(
    key: str, title: str | None = None, created: str = GOOD, points: str = "3", updated: str = UPDATED
) -> str:
    return f"{key},{created},{updated},{title or f'task {key}'},{points}\n"


def _jira_csv_row(key: str, summary: str | None = None, created: str = GOOD) -> str:
    return f"{summary or f'task {key}'},{key},{key.replace('-', '')},Bug,Open,{key.split('-')[0]},{created},{UPDATED}\n"


def _deep(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def write_corpus(landing: Path, n_good: int = 20, outside: Path | None = None) -> list[Case]:
    """Write the good files and every hostile case under ``landing``; return the cases.

    ``outside`` is a folder outside the landing zone for the symlink case's target (default: a
    sibling of ``landing``); it receives a file full of fake secrets that must never be read.
    """
    w = _Writer(landing)
    _good_files(w, n_good)
    _jira_json(w)
    _jira_csv(w)
    _github(w)
    _trello(w)
    _asana(w)
    _mapped(w)
    _odd_names(w)
    _symlink(w, outside or landing.parent / "outside-landing")
    return w.cases


def _good_files(w: _Writer, n: int) -> None:
    keys = [f"GOOD-{i}" for i in range(1, n + 1)]
    w.add("jira json", "good", "jira", "good-page.json", jira_page([jira_issue(k) for k in keys]), good=keys)
    keys_csv = [f"GOODCSV-{i}" for i in range(1, n + 1)]
    w.add(
        "jira csv",
        "good",
        "jira",
        "good-export.csv",
        (JIRA_CSV_HEADER + "".join(_jira_csv_row(k) for k in keys_csv)).encode(),
        good=keys_csv,
    )
    w.add(
        "github",
        "good",
        "github",
        "good-issues.json",
        json.dumps([gh_issue(i) for i in range(1, n + 1)]).encode(),
        good=[f"#{i}" for i in range(1, n + 1)],
    )
    cards = [trello_card(i) for i in range(1, n + 1)]
    w.add(
        "trello",
        "good",
        "trello",
        "good-board.json",
        trello_board(cards),
        good=[card_id(i) for i in range(1, n + 1)],
    )
    w.add(
        "asana",
        "good",
        "asana",
        "good-project.csv",
        (ASANA_HEADER + "".join(_asana_row(i) for i in range(1, n + 1))).encode(),
        good=[str(i) for i in range(1, n + 1)],
    )
    keys_m = [f"GM-{i}" for i in range(1, n + 1)]
    w.add(
        "mapped csv",
        "good",
        "csv",
        "good.csv",
        (MAPPED_HEADER + "".join(_mapped_row(k) for k in keys_m)).encode(),
        good=keys_m,
        extra={"good.yaml": MAPPING.encode()},
    )


def _jira_json(w: _Writer) -> None:
    def case(
        name: str,
        category: str,
        issues_or_bytes,
        good=(),
        bad=(),
        q: int = 0,
        note: str = "",
        known_limit: str = "",
    ) -> None:
        n = w.next_id()
        data = issues_or_bytes if isinstance(issues_or_bytes, bytes) else jira_page(issues_or_bytes)
        w.add(name, category, "jira", f"j{n:03d}.json", data, good, bad, q, note, known_limit=known_limit)

    def pair(prefix: str) -> tuple[list[str], list[dict]]:
        keys = [f"{prefix}-1", f"{prefix}-2"]
        return keys, [jira_issue(k) for k in keys]

    case("empty file", "empty / truncated", b"", q=1)
    case("whitespace only", "empty / truncated", b"  \n\t\n", q=1)
    keys, good = pair("JTR")
    case("truncated page", "empty / truncated", jira_page(good)[:-40], q=1)
    case("top level is a string", "wrong top-level type", b'"issues"', q=1)
    case("top level is a number", "wrong top-level type", b"42", q=1)
    case("top level is a list of numbers", "wrong top-level type", b"[1, 2, 3]", q=1)
    case("issues is an object", "wrong top-level type", b'{"issues": {"a": 1}}', q=1)
    keys, good = pair("JMK")
    nokey = jira_issue("JMK-3")
    del nokey["key"]
    case("issue without key", "missing keys", [*good, nokey], keys, q=1)
    keys, good = pair("JMC")
    case(
        "issue without created",
        "missing keys",
        [*good, jira_issue("JMC-3", created=None)],
        keys,
        ["JMC-3"],
        1,
    )
    keys, good = pair("JNF")
    nofields = jira_issue("JNF-3")
    nofields["fields"] = None
    case("fields is null", "missing keys", [*good, nofields], keys, ["JNF-3"], 1)
    keys, good = pair("JWT")
    case(
        "summary is an object",
        "wrong types",
        [*good, jira_issue("JWT-3", summary={"obj": 1})],
        keys,
        ["JWT-3"],
        1,
    )
    keys, good = pair("JWL")
    case(
        "labels is a number, fixVersions true",
        "wrong types",
        [*good, jira_issue("JWL-3", labels=123, fixVersions=True)],
        keys,
        q=0,
        note="the record may be kept (the odd fields ignored) or rejected; never a crash",
    )
    keys, good = pair("JID")
    case(
        "impossible date 2024-02-30",
        "dates",
        [*good, jira_issue("JID-3", created="2024-02-30T10:00:00Z")],
        keys,
        ["JID-3"],
        1,
    )
    keys, good = pair("JNZ")
    case(
        "time-zone-less date",
        "dates",
        [*good, jira_issue("JNZ-3", created="2024-03-01T10:00:00")],
        keys,
        note="a naive timestamp is read as UTC or rejected; never a crash",
    )
    keys, good = pair("JCL")
    case(
        "date past the calendar with an offset",
        "dates",
        [
            *good,
            jira_issue("JCL-3", created="9999-12-31T23:00:00-05:00"),
            jira_issue("JCL-4", created="0001-01-01T00:00:00+05:00"),
        ],
        keys,
        ["JCL-3", "JCL-4"],
        2,
    )
    keys, good = pair("JNN")
    text = jira_page(
        [
            *good,
            jira_issue("JNN-3", customfield_10016=0.5),
            jira_issue("JNN-4", customfield_10016=0.25),
            jira_issue("JNN-5", customfield_10016=0.125),
        ]
    ).decode()
    text = text.replace("0.5", "NaN").replace("0.25", "Infinity").replace("0.125", "1e400")
    case(
        "story points NaN, Infinity, 1e400",
        "NaN / Infinity / negative",
        text.encode(),
        keys,
        ["JNN-3", "JNN-4", "JNN-5"],
        3,
    )
    keys, good = pair("JNG")
    case(
        "negative story points and comment total",
        "NaN / Infinity / negative",
        [
            *good,
            jira_issue("JNG-3", customfield_10016=-3),
            jira_issue("JNG-4", comment={"total": -5, "comments": []}),
        ],
        keys,
        ["JNG-3", "JNG-4"],
        2,
    )
    keys, good = pair("JDK")
    text = (
        jira_page([*good, jira_issue("JDK-3")])
        .decode()
        .replace('"summary": "task JDK-3"', '"summary": "first", "summary": "task JDK-3"')
    )
    case(
        "duplicate JSON key in an object",
        "duplicate keys",
        text.encode(),
        [*keys, "JDK-3"],
        note="the last value wins, as documented",
    )
    keys, good = pair("JCF")
    case(
        "one key twice, conflicting content",
        "duplicate keys",
        [*good, jira_issue("JCF-3", summary="one"), jira_issue("JCF-3", summary="two")],
        [*keys, "JCF-3"],
        q=1,
        note="one version kept, the other quarantined as a conflicting duplicate",
    )
    keys, good = pair("JBO")
    case("UTF-8 BOM", "encodings", b"\xef\xbb\xbf" + jira_page(good), keys)
    keys, good = pair("JL1")
    good[0]["fields"]["summary"] = "caf\u00e9 r\u00e9sum\u00e9"
    case(
        "Latin-1 bytes", "encodings", json.dumps({"issues": good}, ensure_ascii=False).encode("latin-1"), keys
    )
    keys, good = pair("J16")
    case("UTF-16 LE with BOM", "encodings", json.dumps({"issues": good}).encode("utf-16"), keys)
    keys, good = pair("JIU")
    case(
        "invalid UTF-8 byte in a summary",
        "encodings",
        jira_page(good).replace(b"task JIU-1", b"task \xff\xfe JIU-1"),
        keys,
        note="decoded as Latin-1 (flagged) or rejected; the other records kept",
    )
    case("binary named .json", "binary", bytes(range(256)) * 64, q=1)
    case("10,000-deep nesting (whole file)", "deep nesting", _deep().encode(), q=1)
    keys, good = pair("JDN")
    text = (
        jira_page([*good, jira_issue("JDN-3", customfield_1="__DEEP__")])
        .decode()
        .replace('"__DEEP__"', _deep())
    )
    case(
        "10,000-deep nesting inside one issue",
        "deep nesting",
        text.encode(),
        keys,
        ["JDN-3"],
        q=1,
        note="the page is re-read item by item (ijson): only the deep issue is rejected",
    )
    keys, good = pair("JMB")
    good[1]["fields"]["description"] = "x" * BIG
    case("1 MB description", "1 MB field", good, keys)
    keys, good = pair("JFI")
    good[0]["fields"]["summary"] = '=HYPERLINK("http://evil.example","click")'
    case("formula injection in a summary", "formula injection", good, keys)
    keys, good = pair("JLS")
    good[1]["fields"]["summary"] = "launch __CUT__"
    case(
        "lone surrogate escape in a summary",
        "encodings",
        _cut_emoji(jira_page(good)),
        keys,
        note="an emoji cut in two (a lone \\ud83d escape) reads as U+FFFD; the write failed for the whole source before",
    )


def _jira_csv(w: _Writer) -> None:
    def case(
        name: str, category: str, body: str | bytes, good=(), bad=(), q: int = 0, note: str = ""
    ) -> None:
        n = w.next_id()
        data = body if isinstance(body, bytes) else (JIRA_CSV_HEADER + body).encode()
        w.add(name, category, "jira", f"j{n:03d}.csv", data, good, bad, q, note)

    rows = lambda p: ([f"{p}-1", f"{p}-2"], _jira_csv_row(f"{p}-1") + _jira_csv_row(f"{p}-2"))  # noqa: E731
    keys, body = rows("JCR")
    case(
        "ragged row (too many fields)",
        "ragged CSV",
        body + "x,JCR-3,JCR3,Bug,Open,JCR,2024-03-01,2024-03-01,extra,more\n",
        keys,
        q=0,
        note="an extra field may be ignored or the row rejected",
    )
    keys, body = rows("JCU")
    case(
        "unbalanced quote",
        "unbalanced quotes",
        '"broken title,JCU-9,JCU9,Bug,Open,JCU,' + GOOD + "," + UPDATED + "\n" + body,
        q=0,
        note="Jira CSV keeps its own reader: the quote may swallow the rows after it (a documented limit)",
    )
    keys, body = rows("JCF")
    case(
        "formula injection",
        "formula injection",
        _jira_csv_row("JCFX-1", summary="=1+2") + body,
        [*keys, "JCFX-1"],
    )
    case("header only", "empty / truncated", "", note="no records, no crash")
    keys, body = rows("JCB")
    case("BOM", "encodings", b"\xef\xbb\xbf" + (JIRA_CSV_HEADER + body).encode(), keys)
    keys, body = rows("JCS")
    case(
        "impossible date",
        "dates",
        body + _jira_csv_row("JCS-3", created="2023-13-45 99:00"),
        keys,
        ["JCS-3"],
        1,
    )


def _github(w: _Writer) -> None:
    def case(name: str, category: str, issues_or_bytes, good=(), bad=(), q: int = 0, note: str = "") -> None:
        n = w.next_id()
        data = issues_or_bytes if isinstance(issues_or_bytes, bytes) else json.dumps(issues_or_bytes).encode()
        w.add(name, category, "github", f"g{n:03d}.json", data, good, bad, q, note)

    def pair() -> tuple[list[str], list[dict], int]:
        base = 1000 * w.next_id()
        return [f"#{base + 1}", f"#{base + 2}"], [gh_issue(base + 1), gh_issue(base + 2)], base

    case("empty file", "empty / truncated", b"", q=1)
    keys, good, _ = pair()
    case("truncated list", "empty / truncated", json.dumps(good).encode()[:-25], q=1)
    case(
        "top level is an object without items", "wrong top-level type", b'{"message": "Bad credentials"}', q=1
    )
    case("top level is null", "wrong top-level type", b"null", q=1)
    keys, good, base = pair()
    nonum = gh_issue(base + 3)
    del nonum["number"]
    case("issue without number", "missing keys", [*good, nonum], keys, q=1)
    keys, good, base = pair()
    case(
        "title is a list",
        "wrong types",
        [*good, gh_issue(base + 3, title=["a", "b"])],
        keys,
        [f"#{base + 3}"],
        1,
    )
    keys, good, base = pair()
    case(
        "labels is a number",
        "wrong types",
        [*good, gh_issue(base + 3, labels=123)],
        keys,
        note="kept without labels or rejected",
    )
    keys, good, base = pair()
    case(
        "negative comments",
        "NaN / Infinity / negative",
        [*good, gh_issue(base + 3, comments=-1)],
        keys,
        [f"#{base + 3}"],
        1,
    )
    keys, good, base = pair()
    case(
        "impossible date",
        "dates",
        [*good, gh_issue(base + 3, created_at="2024-02-31T00:00:00Z")],
        keys,
        [f"#{base + 3}"],
        1,
    )
    keys, good, base = pair()
    case("time-zone-less date", "dates", [*good, gh_issue(base + 3, created_at="2024-03-01T10:00:00")], keys)
    keys, good, base = pair()
    text = json.dumps([*good, gh_issue(base + 3, comments=7)]).replace('"comments": 7', '"comments": 1e400')
    case(
        "comments 1e400",
        "NaN / Infinity / negative",
        text.encode(),
        keys,
        q=0,
        note="an infinite count is rejected or quarantined; never a crash",
    )
    case("10,000-deep nesting", "deep nesting", _deep().encode(), q=1)
    keys, good, _ = pair()
    case("UTF-16 BE with BOM", "encodings", b"\xfe\xff" + json.dumps(good).encode("utf-16-be"), keys)
    keys, good, _ = pair()
    case(
        "invalid UTF-8",
        "encodings",
        json.dumps(good).encode().replace(b"task", b"t\xc3\x28ask", 1),
        keys,
        note="a title with a bad byte: decoded as Latin-1 (flagged)",
    )
    case("binary named .json", "binary", bytes((i * 7) % 256 for i in range(20_000)), q=1)
    keys, good, base = pair()
    good[0]["body"] = "y" * BIG
    case("1 MB body", "1 MB field", good, keys)
    keys, good, base = pair()
    good[0]["title"] = "crash __CUT__"
    case(
        "lone surrogate escape in a title",
        "encodings",
        _cut_emoji(json.dumps(good).encode()),
        keys,
        note="an emoji cut in two (a lone \\ud83d escape) reads as U+FFFD; the write failed for the whole source before",
    )


def _trello(w: _Writer) -> None:
    def case(name: str, category: str, data: bytes, good=(), bad=(), q: int = 0, note: str = "") -> None:
        n = w.next_id()
        w.add(name, category, "trello", f"t{n:03d}.json", data, good, bad, q, note)

    def cards() -> tuple[list[str], list[dict], int]:
        base = 100 * w.next_id()
        return [card_id(base + 1), card_id(base + 2)], [trello_card(base + 1), trello_card(base + 2)], base

    case("empty file", "empty / truncated", b"", q=1)
    keys, good, base = cards()
    case("truncated board", "empty / truncated", trello_board(good, base)[:-30], q=1)
    keys, good, base = cards()
    case(
        "top level is a list",
        "wrong top-level type",
        json.dumps(good).encode(),
        q=1,
        note="a list of cards is not a board export",
    )
    case(
        "cards is a number",
        "wrong top-level type",
        trello_board([], 1).replace(b'"cards": []', b'"cards": 5'),
        q=1,
    )
    keys, good, base = cards()
    case(
        "card id is a list",
        "wrong types",
        trello_board([*good, trello_card(base + 3, id=[])], base),
        keys,
        q=1,
    )
    keys, good, base = cards()
    case(
        "idLabels nested lists, idMembers nested",
        "wrong types",
        trello_board([*good, trello_card(base + 3, idLabels=[[1]], idMembers=[[1]])], base),
        keys,
        note="kept without labels/members or rejected",
    )
    keys, good, base = cards()
    case("actions is a number", "wrong types", trello_board(good, base, actions=5), keys)
    keys, good, base = cards()
    case(
        "negative comment badge",
        "NaN / Infinity / negative",
        trello_board([*good, trello_card(base + 3, badges={"comments": -3})], base),
        keys,
        [card_id(base + 3)],
        1,
    )
    keys, good, base = cards()
    text = trello_board([*good, trello_card(base + 3, badges={"comments": 0.5})], base).replace(
        b"0.5", b"NaN"
    )
    case(
        "NaN comment badge",
        "NaN / Infinity / negative",
        text,
        keys,
        note="rejected or quarantined, never a crash",
    )
    keys, good, base = cards()
    case(
        "impossible and naive dates",
        "dates",
        trello_board(
            [
                *good,
                trello_card(base + 3, dateLastActivity="2024-02-30T10:00:00.000Z"),
                trello_card(base + 4, due="2024-03-09T10:00:00"),
            ],
            base,
        ),
        keys,
        note="a bad activity date is rejected or ignored; a naive due date read as UTC",
    )
    keys, good, base = cards()
    case(
        "one card twice, conflicting",
        "duplicate keys",
        trello_board([*good, trello_card(base + 3, name="one"), trello_card(base + 3, name="two")], base),
        [*keys, card_id(base + 3)],
        q=1,
    )
    case("10,000-deep nesting", "deep nesting", _deep().encode(), q=1)
    keys, good, base = cards()
    case("UTF-16 LE", "encodings", trello_board(good, base).decode().encode("utf-16"), keys)
    keys, good, base = cards()
    good[0]["desc"] = "z" * BIG
    case("1 MB description", "1 MB field", trello_board(good, base), keys)
    keys, good, base = cards()
    good[1]["name"] = "party __CUT__"
    case(
        "lone surrogate escape in a card name",
        "encodings",
        _cut_emoji(trello_board(good, base)),
        keys,
        note="an emoji cut in two (a lone \\ud83d escape) reads as U+FFFD; the write failed for the whole source before",
    )


def _asana(w: _Writer) -> None:
    def case(
        name: str,
        category: str,
        body: str | bytes,
        good=(),
        bad=(),
        q: int = 0,
        note: str = "",
        encoding: str = "utf-8",
    ) -> None:
        n = w.next_id()
        data = body if isinstance(body, bytes) else (ASANA_HEADER + body).encode(encoding)
        w.add(name, category, "asana", f"a{n:03d}.csv", data, good, bad, q, note)

    def rows() -> tuple[list[str], str, int]:
        base = 1000 * w.next_id()
        return [str(base + 1), str(base + 2)], _asana_row(base + 1) + _asana_row(base + 2), base

    case("empty file", "empty / truncated", b"", q=1)
    case("header only", "empty / truncated", "")
    keys, body, base = rows()
    case("row with too few fields", "ragged CSV", body + f"{base + 3},{GOOD}\n", keys, [str(base + 3)], 1)
    keys, body, base = rows()
    case(
        "row with too many fields",
        "ragged CSV",
        body + f"{base + 3},{GOOD},,name,extra,more\n",
        keys,
        q=0,
        note="extra fields ignored or the row rejected",
    )
    keys, body, base = rows()
    case(
        "unbalanced quote",
        "unbalanced quotes",
        f'{base + 3},{GOOD},,"broken name\n' + body,
        keys,
        [str(base + 3)],
        1,
    )
    keys, body, base = rows()
    case("1 MB field", "1 MB field", body + _asana_row(base + 3, name="n" * BIG), [*keys, str(base + 3)])
    keys, body, base = rows()
    case("UTF-16 LE", "encodings", (ASANA_HEADER + body).encode("utf-16"), keys)
    keys, body, base = rows()
    case(
        "Latin-1",
        "encodings",
        body + _asana_row(base + 3, name="na\u00efve caf\u00e9"),
        [*keys, str(base + 3)],
        encoding="latin-1",
    )
    keys, body, base = rows()
    case(
        "invalid UTF-8",
        "encodings",
        (ASANA_HEADER + body).encode() + f"{base + 3},{GOOD},,bad \xff\xfe".encode("latin-1") + b"\n",
        keys,
        note="decoded as Latin-1 (flagged); every row kept",
    )
    keys, body, base = rows()
    case(
        "formula injection",
        "formula injection",
        body + _asana_row(base + 3, name="@SUM(A1:A9)") + _asana_row(base + 4, name="+cmd|' /C calc'!A0"),
        [*keys, str(base + 3), str(base + 4)],
    )
    keys, body, base = rows()
    case(
        "impossible and naive dates",
        "dates",
        body
        + _asana_row(base + 3, created="2024-02-30")
        + _asana_row(base + 4, created="2024-03-01 10:00:00"),
        keys,
        [str(base + 3)],
        1,
    )
    case("binary named .csv", "binary", bytes(range(256)) * 40, q=1)
    keys, body, base = rows()
    case(
        "one task twice, conflicting",
        "duplicate keys",
        body + _asana_row(base + 3, name="one") + _asana_row(base + 3, name="two"),
        [*keys, str(base + 3)],
        q=1,
    )
    keys, body, base = rows()
    case(
        "NUL bytes in a row",
        "binary",
        body + f"{base + 3},{GOOD},,nul\x00here\n",
        keys,
        note="the row is kept with the byte or rejected; never a crash",
    )


def _mapped(w: _Writer) -> None:
    def case(
        name: str,
        category: str,
        body: str | bytes,
        mapping: str | bytes = MAPPING,
        good=(),
        bad=(),
        q: int = 0,
        note: str = "",
    ) -> None:
        n = w.next_id()
        stem = f"m{n:03d}"
        data = body if isinstance(body, bytes) else (MAPPED_HEADER + body).encode()
        yaml = mapping if isinstance(mapping, bytes) else mapping.encode()
        w.add(name, category, "csv", f"{stem}.csv", data, good, bad, q, note, extra={f"{stem}.yaml": yaml})

    def rows(prefix: str) -> tuple[list[str], str]:
        return [f"{prefix}-1", f"{prefix}-2"], _mapped_row(f"{prefix}-1") + _mapped_row(f"{prefix}-2")

    _, body = rows("MPY")
    case(
        "!!python/object in the mapping",
        "hostile YAML mapping",
        body,
        MAPPING + "title: !!python/object/apply:os.system ['echo pwned']\n",
        q=1,
    )
    _, body = rows("MAL")
    bomb = (
        'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    )
    case(
        "YAML aliases (billion laughs)",
        "hostile YAML mapping",
        body,
        bomb + "key: {column: ID}\ncreated_at: {column: *d}\n",
        q=1,
    )
    _, body = rows("MIY")
    case("invalid YAML", "hostile YAML mapping", body, "key: {column: ID\ncreated_at: [", q=1)
    _, body = rows("MLY")
    case("mapping is a list", "hostile YAML mapping", body, "- key\n- created_at\n", q=1)
    _, body = rows("MCY")
    case(
        "mapping names a missing column",
        "hostile YAML mapping",
        body,
        MAPPING + "type: {column: Kind}\n",
        q=1,
    )
    _, body = rows("MBY")
    case("mapping is binary", "hostile YAML mapping", body, bytes(range(256)), q=1)
    keys, body = rows("MNN")
    case(
        "story points nan, inf, -1, 1e400",
        "NaN / Infinity / negative",
        body
        + _mapped_row("MNN-3", points="nan")
        + _mapped_row("MNN-4", points="inf")
        + _mapped_row("MNN-5", points="-1")
        + _mapped_row("MNN-6", points="1e400"),
        good=keys,
        bad=["MNN-3", "MNN-4", "MNN-5", "MNN-6"],
        q=4,
    )
    keys, body = rows("MDU")
    case(
        "one key twice, conflicting, no updated_at",
        "duplicate keys",
        "ID,Created,Title\nMDU-1,2024-03-01T10:00:00Z,task\nMDU-2,2024-03-01T10:00:00Z,one\nMDU-2,2024-03-01T10:00:00Z,two\n",
        "key: {column: ID}\ncreated_at: {column: Created}\ntitle: {column: Title}\n",
        good=keys,
        q=1,
    )
    keys, body = rows("MRG")
    case(
        "ragged rows",
        "ragged CSV",
        body + "MRG-3,2024-03-01T10:00:00Z\n" + "MRG-4,a,b,c,d,e,f,g\n",
        good=keys,
        bad=["MRG-4"],
        q=1,
        note="a short row is padded with empty values (exports drop trailing empties); a long one is rejected",
    )
    keys, body = rows("MUQ")
    case(
        "unbalanced quote",
        "unbalanced quotes",
        f'MUQ-3,{GOOD},{UPDATED},"broken,1\n' + body,
        good=keys,
        bad=["MUQ-3"],
        q=1,
    )
    keys, body = rows("MBG")
    case("1 MB field", "1 MB field", body + _mapped_row("MBG-3", title="t" * BIG), good=[*keys, "MBG-3"])
    keys, body = rows("MFI")
    case(
        "formula injection",
        "formula injection",
        body + _mapped_row("MFI-3", title="=cmd|'/C calc'!A0"),
        good=[*keys, "MFI-3"],
    )
    keys, body = rows("MEN")
    case("UTF-8 BOM", "encodings", b"\xef\xbb\xbf" + (MAPPED_HEADER + body).encode(), good=keys)
    keys, body = rows("ML1")
    case(
        "Latin-1",
        "encodings",
        (MAPPED_HEADER + body + _mapped_row("ML1-3", title="\u00e9t\u00e9")).encode("latin-1"),
        good=[*keys, "ML1-3"],
    )
    keys, body = rows("MDT")
    case(
        "impossible and naive dates",
        "dates",
        body
        + _mapped_row("MDT-3", created="2024-02-30T10:00:00Z")
        + _mapped_row("MDT-4", created="2024-03-01T10:00:00"),
        good=keys,
        bad=["MDT-3"],
        q=1,
        note="a naive date is read in the mapping's timezone (UTC)",
    )
    case("empty CSV", "empty / truncated", b"", q=1)


def _odd_names(w: _Writer) -> None:
    names = [
        "page with spaces (1).json",
        "t\u00e2che \u4efb\u52a1 \u00fc.json",
        'it\'s "quoted".json',
        "a;b;DROP TABLE raw.jira_tasks;--.json",
        "-leading-dash.json",
        "$(touch pwned).json",
    ]
    for i, name in enumerate(names, 1):
        keys = [f"JON{i}-1", f"JON{i}-2"]
        w.add(
            f"odd file name {name!r}",
            "odd file names",
            "jira",
            name,
            jira_page([jira_issue(k) for k in keys]),
            keys,
        )
    keys = ["ODD-1"]
    w.add(
        "odd mapped CSV name",
        "odd file names",
        "csv",
        "linear export; ü 'x'.csv",
        (MAPPED_HEADER + _mapped_row("ODD-1")).encode(),
        keys,
        extra={"linear export; ü 'x'.yaml": MAPPING.encode()},
    )


# What a symlink out of the landing zone points at: if it were read, these would leak.
FAKE_SECRETS = {
    "JIRA_API_TOKEN": "ATATT3xFfGF0-corpus-fake-jira-token-7f3a",
    "GITHUB_TOKEN": "ghp_corpusFakeToken0123456789abcdefABCD",
    "MLOPS_ALERT_WEBHOOK": "https://alert-user:alert-pa55w0rd@hooks.example.com/services/T000/B000/corpusSecretPath",
}


def _symlink(w: _Writer, outside: Path) -> None:
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / "environ.json"
    leak = [jira_issue("LEAK-1", summary=" ".join(f"{k}={v}" for k, v in FAKE_SECRETS.items()))]
    target.write_bytes(jira_page(leak))
    link = w.landing / "jira" / "environ.json"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    w.cases.append(
        Case(
            "symlink out of the landing zone",
            "symlink out",
            "jira",
            "jira/environ.json",
            bad=frozenset({"LEAK-1"}),
            note="never read: a message names it",
        )
    )


def categories(cases: list[Case]) -> list[str]:
    """The hostile categories present, sorted."""
    return sorted({c.category for c in cases if c.hostile})
