"""The contract every source parser meets: what a parsed landing file looks like.

A parser turns one landing file (its bytes) into a :class:`ParsedFile`: records grouped by kind
(``tasks``, ``events``, ``comments``), each a plain dict with the normalized columns below plus
``locator`` (where in the file, e.g. ``issues[17]`` or ``line 42``) and ``payload`` (the source
record itself as a JSON string, kept in ``raw`` so the clean layer can be rebuilt), and the records
it could not use as :class:`Reject` rows with a reason a user can act on. Parsers never raise for
bad records; they raise :class:`SourceFormatError` only for a file they cannot read at all (the
ingestion quarantines the whole file with that message).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from mlops_assets.lib.redact import excerpt, one_line

# The csv module's default field limit (131,072 characters) fails the whole file on one long
# description; a field can be no longer than its file, which the landing zone already bounds.
csv.field_size_limit(2**31 - 1)

# Normalized task columns a parser fills (None where the source has no such field).
# Timestamps are timezone-aware UTC datetimes; numbers are float/int; ids are pseudonymous.
TASK_COLUMNS: dict[str, str] = {
    "task_id": "str",  # "<source>:<key>", e.g. "jira:ANY23-174", "github:matomo-org/matomo#123"
    "source": "str",  # jira | github | asana | trello | csv
    "project": "str",
    "key": "str",
    "title": "str",
    "type": "str",  # raw type name (Bug, Task, Story, card, issue, ...)
    "priority": "str",  # raw priority name as the source spells it; cleaning canonicalizes
    "status": "str",
    "status_category": "str",  # todo | in_progress | done
    "assignee_id": "str",  # pseudonymous, see pseudonymize()
    "reporter_id": "str",
    "created_at": "datetime",
    "updated_at": "datetime",
    "resolved_at": "datetime",
    "due_at": "datetime",
    "deadline_at": "datetime",  # due date, else earliest fix-version release date / milestone due_on
    "story_points": "float",
    "original_estimate_h": "float",
    "time_spent_h": "float",
    "n_comments": "int",
    "n_links": "int",
    "n_subtasks": "int",
    "n_labels": "int",
    "description_length": "int",
    "labels": "str",  # comma-joined label/tag names (priority may hide in them: cleaning reads it)
}

EVENT_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "source": "str",
    "event_id": "str",  # stable id within the source (changelog history id, action id)
    "changed_at": "datetime",
    "field": "str",  # "status" for status transitions
    "from_value": "str",
    "to_value": "str",
    "author_id": "str",  # pseudonymous
}

COMMENT_COLUMNS: dict[str, str] = {
    "task_id": "str",
    "source": "str",
    "comment_id": "str",
    "created_at": "datetime",
    "author_id": "str",  # pseudonymous
    "body_length": "int",
}

KIND_COLUMNS = {"tasks": TASK_COLUMNS, "events": EVENT_COLUMNS, "comments": COMMENT_COLUMNS}


class SourceFormatError(ValueError):
    """A landing file no parser can read at all (the message says what to fix)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            one_line(str(message))
        )  # it may quote a file header: its control bytes stay out of logs


# A parser's row may hold a JSON object or list where text or a number belongs ({"obj": 1} as a
# title): stored, it would become garbage text ('{1}'), so the record is rejected instead.
_CONTAINERS = (dict, list, tuple, set)


@dataclass
class Reject:
    """One input record that could not be used, and why (lands in clean.quarantine)."""

    locator: str
    reason: str
    payload: str = ""  # the record (or an excerpt of a broken file), for the user to inspect

    def __post_init__(self) -> None:
        self.reason = one_line(
            self.reason
        )  # a reason quoting a header or value is logged: one printable line

    @classmethod
    def not_an_object(cls, locator: str, value: Any, what: str) -> Reject:
        """A list element that is not the JSON object the shape promises (e.g. a string among issues)."""
        return cls(
            locator,
            f"{locator}: element is {type(value).__name__}, not {what}",
            json.dumps(value, default=str),
        )


@dataclass
class ParsedFile:
    """What one landing file yielded."""

    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"tasks": [], "events": [], "comments": []}
    )
    rejects: list[Reject] = field(default_factory=list)
    encoding: str = "utf-8"  # "utf-16" (BOM found), or "latin-1" when not UTF-8 (a fallback, flagged)
    shape: str = ""  # what the parser recognized, e.g. "jira-search-page", "github-issue-list"

    def add(self, kind: str, row: dict[str, Any]) -> bool:
        """Keep a parsed row; a row with a JSON object or list in a column becomes a Reject (False)."""
        if any(type(value) in _CONTAINERS for value in row.values()):
            wrong = [name for name, value in row.items() if name != "payload" and type(value) in _CONTAINERS]
            if wrong:
                locator = str(row.get("locator") or "?")
                what = ", ".join(
                    f"{name} is a JSON {'object' if isinstance(row[name], dict) else 'list'} "
                    f"({excerpt(json.dumps(row[name], default=str), 40)})"
                    for name in wrong
                )
                self.rejects.append(
                    Reject(
                        locator,
                        f"{locator} ({row.get('task_id') or row.get('event_id') or '?'}): "
                        f"{what}, not a single value: fix the export",
                        str(row.get("payload") or ""),
                    )
                )
                return False
        self.records[kind].append(row)
        return True

    @property
    def n_records(self) -> int:
        return sum(len(rows) for rows in self.records.values())


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode file bytes as UTF-8 (BOM tolerated) or UTF-16 (by its BOM), else Latin-1; returns (text, encoding)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode text" and PowerShell's default
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass  # starts like a BOM but is not UTF-16 (a Latin-1 text opening with "\u00ff\u00fe")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


NOT_READ = object()  # utf8_json's "not read": decode the text instead

# A JSON string may hold a UTF-16 surrogate escape that is not half of a pair (``\ud83d`` alone: an emoji
# cut in two by a length limit, as exporters that count UTF-16 units do). JSON's grammar allows it, but no
# UTF-8 text, DuckDB column or Arrow array can hold it: json.loads kept it and the first write of the
# source failed (UnicodeEncodeError, every file of the source lost), msgspec refuses the file, and ijson
# streams it as "?" or, before another escape, fuses the two into a wrong character. Such an escape is
# read as U+FFFD (the Unicode replacement character) wherever the file is read, whole or streamed, so a
# record's text and hash do not depend on the file's size.
_SURROGATE_HINT = r"\\u[dD][89a-fA-F]"
# Left to right: an escaped backslash (so that ``\\ud83d`` stays the text it is), a surrogate pair, a lone
# surrogate (6 characters): only the last is replaced.
_ESCAPE_TOKENS = (
    r"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_MENDING = {
    str: (re.compile(_SURROGATE_HINT), re.compile(_ESCAPE_TOKENS), "\\ufffd"),
    bytes: (re.compile(_SURROGATE_HINT.encode()), re.compile(_ESCAPE_TOKENS.encode()), b"\\ufffd"),
}


def has_surrogate_escape(data: Any) -> bool:
    """Whether JSON bytes (or any buffer: a memory map) hold a surrogate escape, a pair or not."""
    return _MENDING[bytes][0].search(data) is not None


def mend_lone_surrogates(text: str | bytes) -> str | bytes:
    r"""JSON text with every lone surrogate escape replaced by ``\ufffd`` (pairs and the rest as they are);
    the same object when there is none (the common case: one regex search).
    """
    hint, tokens, replacement = _MENDING[bytes if isinstance(text, bytes | bytearray | memoryview) else str]
    if hint.search(text) is None:
        return text
    return tokens.sub(lambda m: replacement if len(m.group()) == 6 else m.group(), text)


class JsonDocuments(list):
    """Several JSON documents one after the other in one file (load_json_file's ``several``): what
    ``gh api --paginate`` prints, one document per page of the API's answer.
    """


def json_documents(text: str) -> JsonDocuments:
    """The JSON documents of ``text``, separated by nothing but whitespace; JSONDecodeError where one is bad."""
    decoder, docs, at, end = json.JSONDecoder(), JsonDocuments(), 0, len(text)
    while (at := _BLANK.match(text, at).end()) < end:
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs


_BLANK = re.compile(r"[ \t\r\n]*")


def load_json_file(path, expected: str, several: bool = False) -> tuple[Any, str]:
    """A landing JSON file -> (document, encoding); SourceFormatError naming the expected shape if unreadable.

    ``several``: a file of several documents one after the other (``gh api --paginate``) is read too, as a
    JsonDocuments list of them; a file of one document is that document either way.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    if (doc := utf8_json(data)) is not NOT_READ:
        return doc, "utf-8"
    text, encoding = decode_bytes(data)
    try:
        return json_loads(text), encoding
    except json.JSONDecodeError as exc:
        if several and exc.msg == "Extra data":
            try:
                return json_documents(mend_lone_surrogates(text)), encoding
            except json.JSONDecodeError as later:
                exc = later
        raise SourceFormatError(
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); expected {expected}"
        ) from None


def pseudonymize(source: str, identity: str | None) -> str | None:
    """A stable pseudonymous id for a person (no e-mail or real name survives past raw)."""
    if identity is None or str(identity).strip() == "":
        return None
    salt = os.environ.get(
        "MLOPS_PSEUDONYM_SALT", "mlops-assets"
    )  # read when used (settings.VARIABLES lists it)
    digest = hashlib.sha256(f"{salt}|{source}|{str(identity).strip().lower()}".encode()).hexdigest()
    return f"u_{digest[:12]}"


def _std_canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


try:  # msgspec writes the same canonical text (sorted keys, compact, UTF-8) about 6x faster, decodes 2x faster
    import msgspec

    _encode = msgspec.json.Encoder(order="deterministic").encode
    _decode = msgspec.json.decode

    def canonical_json(obj: Any) -> str:
        """The JSON text a record's content hash is computed over (key order does not matter)."""
        try:
            return _encode(obj).decode("utf-8")
        except (
            TypeError,
            ValueError,
            OverflowError,
            UnicodeDecodeError,
        ):  # lone surrogates, huge ints, dates
            return _std_canonical_json(obj)

    def json_loads(text: str | bytes) -> Any:
        """JSON text -> Python objects; json.loads judges what msgspec rejects (NaN, and the line/col of errors).
        A lone surrogate escape is read as U+FFFD (mend_lone_surrogates).
        """
        try:
            return _decode(text)
        except msgspec.DecodeError:
            mended = mend_lone_surrogates(text)
            if mended is not text:
                try:
                    return _decode(mended)
                except msgspec.DecodeError:
                    pass
            return json.loads(mended)

    def utf8_json(data: bytes) -> Any:
        """The JSON document in file bytes that are strict UTF-8 (a UTF-8 BOM tolerated), decoded from the
        bytes themselves; NOT_READ when msgspec cannot read them so (not UTF-8, NaN, malformed, nested
        too deep): the caller then decodes the text and judges it as it always did. Skips building the
        text first, a tenth of the parse of a Jira page (1M tasks: 3.3 of ~33 s of the workers' time).
        """
        body = data[3:] if data[:3] == b"\xef\xbb\xbf" else data
        try:
            return _decode(body)
        except (msgspec.DecodeError, RecursionError):
            mended = mend_lone_surrogates(body)
            if mended is not body:
                try:
                    return _decode(mended)
                except (msgspec.DecodeError, RecursionError):
                    pass
            return NOT_READ

except ImportError:  # pragma: no cover - msgspec is a declared dependency
    canonical_json = _std_canonical_json

    def json_loads(text: str | bytes) -> Any:
        return json.loads(mend_lone_surrogates(text))

    def utf8_json(data: bytes) -> Any:
        return NOT_READ


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class DateOutOfRange(ValueError):
    """A timestamp whose UTC instant falls outside the calendar (years 1 to 9999), e.g. 9999-12-31T23:00-05:00."""


def utc(dt: datetime | None) -> datetime | None:
    """Normalize an aware datetime to UTC; naive datetimes are taken as UTC. DateOutOfRange past the calendar."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # Python's calendar ends at 9999-12-31 and starts at 0001-01-01, in UTC too
        raise DateOutOfRange(
            "falls outside years 1-9999 once converted to UTC: fix the date or its offset in the source"
        ) from None


def csv_records(text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str]]:
    """A CSV text's records as (first line number, fields, ""), or (line, None, reason) for an unreadable one.

    The first record is the header; its width is what later records are held to. One bad record
    never costs the others. A quote opened and not closed swallows the lines after it into one
    value: read strictly, that record ends in an error (a closing quote followed by text, or the end
    of the file inside quotes) or with another number of fields than the header, and it is reported
    on its own while reading resumes on its second line, so the swallowed rows are read again. A
    one-line record with sloppy quoting (``"Done" today``) is read leniently, as before.
    """
    return csv_line_records(io.StringIO(text, newline=""), delimiter)


class _Lines:
    """The lines of a text, one by one, keeping those of the record being read so that they can be
    read again (a record a stray quote ran on with): the only lines held are the current record's.
    """

    def __init__(self, source: Iterator[str]) -> None:
        self._source = iter(source)
        self._again: list[str] = []  # lines to read again, last first
        self.taken: list[str] = []  # lines handed out since the last record ended

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._again.pop() if self._again else next(self._source)
        self.taken.append(line)
        return line

    def record(self) -> list[str]:
        """The lines of the record just read (and forget them)."""
        taken, self.taken = self.taken, []
        return taken

    def read_again(self, lines: list[str]) -> None:
        self._again.extend(reversed(lines))


def csv_line_records(
    lines: Iterator[str], delimiter: str = ","
) -> Iterator[tuple[int, list[str] | None, str]]:
    """:func:`csv_records` of a text given line by line (lines as ``open(..., newline="")`` gives them):
    a file of any size is read holding one record's lines at a time.
    """
    source = _Lines(lines)
    width: int | None = None
    start = 0  # lines before the current reader began
    while True:
        reader = csv.reader(source, delimiter=delimiter, strict=True)
        source.record()
        consumed = 0
        try:
            for row in reader:
                first, spanned, consumed = start + consumed + 1, reader.line_num - consumed, reader.line_num
                taken = source.record()
                if width is None:
                    width = len(row)
                elif spanned > 1 and len(row) != width:
                    yield (
                        first,
                        None,
                        _unbalanced(first, spanned, f"{len(row)} fields, the header has {width}"),
                    )
                    source.read_again(taken[1:])  # the rows the quote swallowed are read again
                    start = first
                    break
                yield first, row, ""
            else:
                return
        except csv.Error as exc:
            first, spanned = start + consumed + 1, reader.line_num - consumed
            taken = source.record()
            if not taken:  # pragma: no cover - the csv module raises only on a line it read
                return
            if spanned > 1:
                yield first, None, _unbalanced(first, spanned, str(exc))
            else:
                try:
                    row = next(csv.reader([taken[0]], delimiter=delimiter))
                except csv.Error as lenient:
                    yield first, None, f"line {first}: not readable as CSV ({lenient})"
                else:
                    width = len(row) if width is None else width
                    yield first, row, ""
            source.read_again(taken[1:])
            start = first


def _unbalanced(first: int, spanned: int, what: str) -> str:
    return (
        f"line {first}: a quoted value opened on this line runs on to line {first + spanned - 1} ({what}): "
        "an unbalanced quote? close it, or double a quote meant as text"
    )


# --- what names and labels mean, the same for every source ------------------------------------

_PRIORITY_WORDS = {
    "blocker", "critical", "urgent", "highest", "high", "major", "medium", "normal", "minor",
    "low", "lowest", "trivial",
}  # fmt: skip
_PRIORITY_PREFIX = re.compile(r"^\s*(?:priority|prio|pri)\s*[:/\-_ =]+\s*(.+?)\s*$", re.IGNORECASE)
_P_LEVEL = re.compile(r"^\s*(p[0-5])\b(?:\s*[-:/ ]\s*(.*))?$", re.IGNORECASE)


@lru_cache(maxsize=8192)
def _priority_of_label(name: str) -> str | None:
    """The priority a single label names (value part, raw case), or None."""
    match = _PRIORITY_PREFIX.match(name)
    if match:
        return match.group(1)
    match = _P_LEVEL.match(name)
    if match:
        return match.group(1).upper()
    if name.strip().lower() in _PRIORITY_WORDS:
        return name.strip()
    return None


def priority_from_labels(names: list[str]) -> str | None:
    """The first priority-like label's value: ``priority: high`` -> ``high``, ``P1`` -> ``P1``, ``Major``."""
    for name in names:
        found = _priority_of_label(name)
        if found:
            return found
    return None


_DONE_WORDS = (
    "done",
    "complete",
    "shipped",
    "finished",
    "closed",
    "resolved",
    "released",
    "deployed",
    "fixed",
    "archive",
)
_PROGRESS_WORDS = ("doing", "progress", "review", "testing", "in test", "in dev", "started", "working on")
_PROGRESS_TOKENS = {"qa", "wip", "ongoing"}
_NOT_YET = ("not ", "incomplete", "to be done", "undone", "un-done", "backlog", "to do", "todo", "to-do")


@lru_cache(maxsize=4096)
def category_from_status_name(name: str | None) -> str:
    """Todo | in_progress | done from a list, section or status name ("Done", "In Progress", "Testing/Review").

    Substring heuristics, cached per name (a board has a handful): done-like words win, then
    progress-like words; "Not started", "Not done", "Incomplete" and any backlog or to-do list stay todo.
    """
    if not name:
        return "todo"
    low = name.lower()
    if any(neg in low for neg in _NOT_YET):
        return "todo"
    if any(word in low for word in _DONE_WORDS):
        return "done"
    if any(word in low for word in _PROGRESS_WORDS):
        return "in_progress"
    tokens = set(low.replace("/", " ").replace("-", " ").replace("_", " ").replace(":", " ").split())
    return "in_progress" if tokens & _PROGRESS_TOKENS else "todo"


def unique_names(header: list[str]) -> list[str]:
    """Header names made unique for payload dicts: Jira's repeated ``Watchers`` become ``Watchers``, ``Watchers (2)``..."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names
