"""Jira landing files -> normalized task, status-event and comment records.

Reads every shape a user (or :mod:`jira_client`) drops into ``<landing>/jira/``:

- REST API v2/v3 JSON: one issue (``GET /issue/KEY``, optionally ``expand=changelog``), a search
  page (``issues`` with ``startAt``/``total`` in v2, ``nextPageToken``/``isLast`` in v3's
  ``/search/jql``), a plain list of issues, or a comments page (``GET /issue/KEY/comment``: the issue
  key is only in the file name, ``KEY_Comment.json``). v3 rich text (Atlassian Document Format)
  counts the characters of its text nodes.
- Jira's CSV export ("Export CSV (all fields)" or "current fields"), recognized by its ``Issue key``
  and ``Summary`` header, with its repeated columns (Comment, Labels, Sprint, Watchers, links).

Choices worth knowing:

- ``due_at`` is the due date at 00:00 UTC. Jira due dates are calendar dates; the lateness rule
  compares the resolution date (UTC) with the deadline's *date*, so cleaning compares dates.
- ``deadline_at`` is the due date, else the earliest ``releaseDate`` among the fix versions.
- The CSV export carries no time zone: its times are the exporting user's local time. They are read
  as UTC unless ``MLOPS_JIRA_CSV_TIMEZONE`` names an IANA zone (e.g. ``Europe/Berlin``).
- Story points come from custom fields named "Story Points" / "Story point estimate" (found through
  the ``names`` map that ``expand=names`` adds), or from the custom field ids listed in
  ``MLOPS_JIRA_STORY_POINTS_FIELDS`` (comma-separated, e.g. ``customfield_10016``).
- Task payloads leave out the changelog (its status changes become event records with their own
  payloads), so the same issue fetched with and without ``expand=changelog`` is one raw record.
- Comments embedded in an issue (``fields.comment.comments``) become comment records too; the same
  comment in a comments page has the same payload, so raw keeps it once. CSV comment cells
  (``date;author id;body``) have no id: theirs is derived from the key and the cell's text.
- Events are the changelog items of the fields in ``EVENT_FIELDS`` (status, assignee, priority, due
  date, fix version), under the names of ``EVENT_FIELDS``' values, plus one ``comment`` event per
  comment: the history the as-of features read (``features``). Assignee values are pseudonymous ids
  like ``assignee_id`` (the changelog's user name or account id, never its display name); due dates
  are ``YYYY-MM-DD``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlops_assets.lib.redact import excerpt
from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import (
    NOT_READ,
    DateOutOfRange,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    decode_bytes,
    json_loads,
    pseudonymize,
    utc,
    utf8_json,
)

SOURCE = "jira"

# changelog fields that become event rows (Jira Server says "Fix Version", Cloud "fixVersions"),
# under the name clean.task_events gives them
EVENT_FIELDS = {
    "status": "status",
    "assignee": "assignee",
    "priority": "priority",
    "duedate": "duedate",
    "Fix Version": "fix_version",
    "fixVersions": "fix_version",
}
STORY_POINT_NAMES = frozenset({"story points", "story point estimate"})

_STATUS_CATEGORY = {"new": "todo", "indeterminate": "in_progress", "done": "done"}
_CSV_STATUS_CATEGORY = {"to do": "todo", "in progress": "in_progress", "done": "done", "complete": "done"}
_DONE_STATUSES = frozenset(
    {
        "done",
        "closed",
        "resolved",
        "fixed",
        "complete",
        "completed",
        "cancelled",
        "canceled",
        "rejected",
        "won't do",
        "won't fix",
        "duplicate",
        "released",
        "shipped",
    }
)
_TODO_STATUSES = frozenset(
    {
        "open",
        "to do",
        "todo",
        "new",
        "backlog",
        "reopened",
        "selected for development",
        "ready",
        "triage",
        "ready for development",
        "proposed",
        "funnel",
        "not started",
    }
)
_COMMENTS_FILE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*-\d+)[_\-. ]comments?\b", re.IGNORECASE)


class _BadRecord(Exception):
    """A record that cannot be used; the message is the reject reason (without the locator)."""


# ---------------------------------------------------------------------------------------------
# small, fast helpers


def _ts(value: Any, field: str) -> datetime | None:
    """A Jira timestamp (``2012-07-12T18:30:05.123+0000``, ISO 8601 with or without zone) as UTC."""
    if value is None or value == "":
        return None
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _BadRecord(f"field '{field}' = {value!r} is not a date") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    if dt.tzinfo is not UTC:
        try:
            return utc(dt)
        except DateOutOfRange as exc:
            raise _BadRecord(f"field '{field}' = {value!r} {exc}") from None
    return dt


_DAY_CACHE: dict[str, datetime] = {}


def _day(value: Any, field: str) -> datetime | None:
    """A calendar date (``2014-05-15``; a timestamp's date part is used) as 00:00 UTC that day."""
    if value is None or value == "":
        return None
    hit = _DAY_CACHE.get(value) if isinstance(value, str) else None
    if hit is not None:
        return hit
    try:
        d = date.fromisoformat(value[:10])
    except (TypeError, ValueError):
        raise _BadRecord(f"field '{field}' = {value!r} is not a date") from None
    out = datetime(d.year, d.month, d.day, tzinfo=UTC)
    if len(_DAY_CACHE) < 100_000:
        _DAY_CACHE[value] = out
    return out


_PERSON_CACHE: dict[str, str | None] = {}


def _person(user: Any) -> str | None:
    """Pseudonymous id of a Jira user object (accountId in Cloud, name/key in Server) or id string."""
    if user is None:
        return None
    if isinstance(user, dict):
        ident = user.get("accountId") or user.get("name") or user.get("key")
    else:
        ident = user
    if not ident:
        return None
    ident = str(ident)
    hit = _PERSON_CACHE.get(ident)
    if hit is None:
        hit = pseudonymize(SOURCE, ident)
        if len(_PERSON_CACHE) < 200_000:
            _PERSON_CACHE[ident] = hit
    return hit


def _name(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return obj.get("name") or obj.get("value")
    if isinstance(obj, str):
        return obj or None
    return None


def adf_text_length(node: Any) -> int:
    """Characters of text in an Atlassian Document Format tree (text, mention and emoji nodes)."""
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            t = n.get("type")
            if t == "text":
                total += len(n.get("text") or "")
            elif t in ("mention", "emoji", "status", "date", "inlineCard"):
                attrs = n.get("attrs")
                if isinstance(attrs, dict) and isinstance(attrs.get("text"), str):
                    total += len(attrs["text"])
            content = n.get("content")
            if isinstance(content, list):
                stack.extend(content)
        elif isinstance(n, list):
            stack.extend(n)
    return total


def _text_length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict | list):
        return adf_text_length(value)
    return len(str(value))


def _status_category(status_name: str | None, category_key: str | None, resolved: bool) -> str | None:
    """Todo | in_progress | done from Jira's status category, else from the resolution and status name."""
    if category_key:
        mapped = _STATUS_CATEGORY.get(category_key.lower())
        if mapped:
            return mapped
    if resolved:
        return "done"
    if not status_name:
        return None
    low = status_name.strip().lower()
    if low in _DONE_STATUSES:
        return "done"
    if low in _TODO_STATUSES:
        return "todo"
    return "in_progress"


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _hours(seconds: Any) -> float | None:
    s = _float(seconds)
    return None if s is None else s / 3600.0


def _story_point_fields(names: Any) -> tuple[str, ...]:
    """Custom field ids holding story points: from ``names`` (expand=names) and the environment."""
    ids: list[str] = []
    env = os.environ.get("MLOPS_JIRA_STORY_POINTS_FIELDS", "")
    ids.extend(s.strip() for s in env.split(",") if s.strip())
    if isinstance(names, dict):
        ids.extend(
            k for k, v in names.items() if isinstance(v, str) and v.strip().lower() in STORY_POINT_NAMES
        )
    return tuple(dict.fromkeys(ids))


# ---------------------------------------------------------------------------------------------
# REST API JSON


def _guarded_issue_rows(issue: Any, locator: str, out: ParsedFile, sp_fields: tuple[str, ...]) -> None:
    """_issue_rows, where an unforeseen error (``fields.labels: 123``) rejects this issue alone: its
    partial rows are undone, and the other issues of the file are kept.
    """
    marks = {kind: len(rows) for kind, rows in out.records.items()}
    n_rejects = len(out.rejects)
    try:
        _issue_rows(issue, locator, out, sp_fields)
    except Exception as exc:  # noqa: BLE001 - one odd issue must not cost the file's other issues
        for kind, n in marks.items():
            del out.records[kind][n:]
        del out.rejects[n_rejects:]
        key = issue.get("key") if isinstance(issue, dict) else None
        try:
            payload = canonical_json(issue)
        except (RecursionError, ValueError, TypeError):  # nested past what an encoder will write
            payload = f'{{"key": {json.dumps(str(key))}, "note": "not stored: nested too deeply to encode"}}'
        out.rejects.append(
            Reject(
                locator,
                f"{locator} ({key}): could not be read ({type(exc).__name__}: "
                f"{excerpt(str(exc), 80)}); the other issues were kept: fix the export",
                payload,
            )
        )


def _issue_rows(issue: Any, locator: str, out: ParsedFile, sp_fields: tuple[str, ...]) -> None:
    """Normalize one API issue into a task row (+ status events, + embedded comments) or a reject."""
    if not isinstance(issue, dict):
        out.rejects.append(
            Reject(
                locator,
                f"{locator}: expected an issue object, got {type(issue).__name__}",
                canonical_json(issue),
            )
        )
        return
    key = issue.get("key")
    label = f"{locator} ({key})" if key else locator
    try:
        if not key or not isinstance(key, str):
            raise _BadRecord("has no 'key' (every Jira issue has one, e.g. 'PROJ-12')")
        fields = issue.get("fields")
        if not isinstance(fields, dict):
            raise _BadRecord("has no 'fields' object (request the issue with its fields, e.g. fields=*all)")
        created = fields.get("created")
        if not created:
            raise _BadRecord("field 'created' is missing")
        created_at = _ts(created, "created")
        updated_at = _ts(fields.get("updated"), "updated")
        resolved_at = _ts(fields.get("resolutiondate"), "resolutiondate")
        due_at = _day(fields.get("duedate"), "duedate")
        deadline_at = due_at
        if deadline_at is None:
            versions = fields.get("fixVersions")
            if versions:
                for v in versions:
                    if isinstance(v, dict) and v.get("releaseDate"):
                        rd = _day(v["releaseDate"], "fixVersions.releaseDate")
                        if deadline_at is None or rd < deadline_at:
                            deadline_at = rd
        status = fields.get("status")
        status_name = category = None
        if isinstance(status, dict):
            status_name = status.get("name")
            sc = status.get("statusCategory")
            if isinstance(sc, dict):
                category = sc.get("key")
        elif isinstance(status, str):
            status_name = status
        project = fields.get("project")
        project_key = project.get("key") if isinstance(project, dict) else None
        labels = fields.get("labels")
        links = fields.get("issuelinks")
        subtasks = fields.get("subtasks")
        comment = fields.get("comment")
        n_comments = None
        if isinstance(comment, dict):
            n_comments = comment.get("total")
            if n_comments is None and isinstance(comment.get("comments"), list):
                n_comments = len(comment["comments"])
        original = fields.get("timeoriginalestimate")
        spent = fields.get("timespent")
        if original is None or spent is None:
            tracking = fields.get("timetracking")
            if isinstance(tracking, dict) and tracking:
                if original is None:
                    original = tracking.get("originalEstimateSeconds")
                if spent is None:
                    spent = tracking.get("timeSpentSeconds")
        story_points = None
        for fid in sp_fields:
            story_points = _float(fields.get(fid))
            if story_points is not None:
                break
        description = fields.get("description")
        row = {
            "task_id": f"jira:{key}",
            "source": SOURCE,
            "project": project_key or key.rsplit("-", 1)[0],
            "key": key,
            "title": fields.get("summary"),
            "type": _name(fields.get("issuetype")),
            "priority": _name(fields.get("priority")),
            "status": status_name,
            "status_category": _status_category(status_name, category, resolved_at is not None),
            "assignee_id": _person(fields.get("assignee")),
            "reporter_id": _person(fields.get("reporter")),
            "created_at": created_at,
            "updated_at": updated_at,
            "resolved_at": resolved_at,
            "due_at": due_at,
            "deadline_at": deadline_at,
            "story_points": story_points,
            "original_estimate_h": _hours(original),
            "time_spent_h": _hours(spent),
            "n_comments": n_comments,
            "n_links": len(links) if isinstance(links, list) else None,
            "n_subtasks": len(subtasks) if isinstance(subtasks, list) else None,
            "n_labels": len(labels) if isinstance(labels, list) else None,
            "description_length": _text_length(description) if "description" in fields else None,
            "labels": ",".join(map(str, labels)) if labels else None,
            "locator": locator,
        }
    except _BadRecord as exc:
        out.rejects.append(Reject(locator, f"{label}: {exc}", canonical_json(issue)))
        return
    changelog = issue.get("changelog")
    if "changelog" in issue:
        payload = {k: v for k, v in issue.items() if k != "changelog"}
    else:
        payload = issue
    row["payload"] = canonical_json(payload)
    if not out.add("tasks", row):
        return
    task_id = row["task_id"]
    if isinstance(changelog, dict):
        histories = changelog.get("histories")
        if isinstance(histories, list):
            _event_rows(histories, task_id, f"{locator}.changelog.histories", label, out)
    if isinstance(comment, dict):
        comments = comment.get("comments")
        if comments:
            _comment_rows(comments, task_id, f"{locator}.fields.comment.comments", out)


def _event_rows(histories: list, task_id: str, where: str, label: str, out: ParsedFile) -> None:
    events = out.records["events"]
    for i, history in enumerate(histories):
        if not isinstance(history, dict):
            out.rejects.append(
                Reject(
                    f"{where}[{i}]", f"{label}: changelog entry {i} is not an object", canonical_json(history)
                )
            )
            continue
        items = history.get("items")
        if not items:
            continue
        matched = [
            it
            for it in items
            if isinstance(it, dict) and (it.get("fieldId") or it.get("field")) in EVENT_FIELDS
        ]
        if not matched:
            continue
        loc = f"{where}[{i}]"
        try:
            changed_at = _ts(history.get("created"), "created")
            if changed_at is None:
                raise _BadRecord("field 'created' is missing")
        except _BadRecord as exc:
            out.rejects.append(
                Reject(loc, f"{label}: changelog entry {history.get('id')}: {exc}", canonical_json(history))
            )
            continue
        author = _person(history.get("author"))
        hid = str(history.get("id") or i)
        for j, item in enumerate(matched):
            events.append(
                {
                    "task_id": task_id,
                    "source": SOURCE,
                    "event_id": hid if len(matched) == 1 else f"{hid}.{j}",
                    "changed_at": changed_at,
                    "field": EVENT_FIELDS[item.get("fieldId") or item.get("field")],
                    **_event_values(item),
                    "author_id": author,
                    "locator": loc,
                    "payload": canonical_json(
                        {
                            "issue": task_id[5:],
                            "id": history.get("id"),
                            "created": history.get("created"),
                            "author": history.get("author"),
                            "item": item,
                        }
                    ),
                }
            )


def _event_values(item: dict) -> dict[str, str | None]:
    """from_value / to_value of a changelog item: people pseudonymous, due dates as YYYY-MM-DD."""
    field = EVENT_FIELDS[item.get("fieldId") or item.get("field")]
    if field == "assignee":  # "from"/"to" hold the user name (Server) or account id (Cloud)
        return {"from_value": _person(item.get("from")), "to_value": _person(item.get("to"))}
    if field == "duedate":  # "from"/"to": 2012-07-12; the strings add a time (2012-07-12 00:00:00.0)
        return {
            k: (str(item.get(raw) or item.get(raw + "String") or "")[:10] or None)
            for k, raw in (("from_value", "from"), ("to_value", "to"))
        }
    return {"from_value": item.get("fromString"), "to_value": item.get("toString")}


def _comment_rows(comments: list, task_id: str, where: str, out: ParsedFile) -> None:
    rows = out.records["comments"]
    for i, c in enumerate(comments):
        loc = f"{where}[{i}]"
        if not isinstance(c, dict):
            out.rejects.append(
                Reject(loc, f"{loc}: expected a comment object, got {type(c).__name__}", canonical_json(c))
            )
            continue
        try:
            if not c.get("id"):
                raise _BadRecord("has no 'id'")
            created_at = _ts(c.get("created"), "created")
            if created_at is None:
                raise _BadRecord("field 'created' is missing")
        except _BadRecord as exc:
            out.rejects.append(Reject(loc, f"{loc} ({task_id[5:]}): {exc}", canonical_json(c)))
            continue
        rows.append(
            {
                "task_id": task_id,
                "source": SOURCE,
                "comment_id": str(c["id"]),
                "created_at": created_at,
                "author_id": _person(c.get("author")),
                "body_length": _text_length(c.get("body")),
                "locator": loc,
                "payload": canonical_json(c),
            }
        )
        # the same comment as an event (when it was written), for the as-of comment count
        out.records["events"].append(
            {
                "task_id": task_id,
                "source": SOURCE,
                "event_id": f"comment:{c['id']}",
                "changed_at": created_at,
                "field": "comment",
                "from_value": None,
                "to_value": None,
                "author_id": rows[-1]["author_id"],
                "locator": loc,
                "payload": canonical_json({"comment": str(c["id"]), "created": c.get("created")}),
            }
        )


def _parse_json(text: str, path: Path, out: ParsedFile, doc: Any = NOT_READ) -> None:
    """The records of a JSON page or issue: ``doc`` when already decoded (utf8_json), else ``text``'s."""
    try:
        obj = json_loads(text) if doc is NOT_READ else doc
    except RecursionError:
        # One record nested past the decoder's depth limit: read the page item by item (ijson builds
        # without recursion), so only that record is rejected and the others are kept.
        if out.encoding == "utf-8" and (parts := parse_stream(path)) is not None:
            for part in parts:
                out.shape = part.shape
                for kind, rows in part.records.items():
                    out.records[kind].extend(rows)
                out.rejects.extend(part.rejects)
            return
        raise
    except json.JSONDecodeError as exc:
        raise SourceFormatError(
            f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            "(was the download cut short?)"
        ) from None
    if isinstance(obj, list):
        out.shape = "jira-issue-list"
        sp = _story_point_fields(None)
        for i, issue in enumerate(obj):
            _guarded_issue_rows(issue, f"[{i}]", out, sp)
        return
    if not isinstance(obj, dict):
        raise SourceFormatError(
            f"{path.name} is not a Jira issue, search page or comments page: it is a JSON {type(obj).__name__}"
        )
    if isinstance(obj.get("issues"), list):
        out.shape = "jira-search-page"
        sp = _story_point_fields(obj.get("names"))
        for i, issue in enumerate(obj["issues"]):
            _guarded_issue_rows(issue, f"issues[{i}]", out, sp)
        return
    if "fields" in obj or ("key" in obj and "self" in obj and "comments" not in obj):
        out.shape = "jira-issue-changelog" if "changelog" in obj else "jira-issue"
        _guarded_issue_rows(obj, "issue", out, _story_point_fields(obj.get("names")))
        return
    if isinstance(obj.get("comments"), list):
        out.shape = "jira-comments-page"
        m = _COMMENTS_FILE.match(path.name)
        if not m:
            raise SourceFormatError(
                f"{path.name} is a Jira comments page, which does not say which issue it belongs to: "
                "name the file after the issue, e.g. PROJ-12_Comment.json"
            )
        _comment_rows(obj["comments"], f"jira:{m.group(1).upper()}", "comments", out)
        return
    if "errorMessages" in obj or "errors" in obj:
        messages = obj.get("errorMessages") or obj.get("errors")
        raise SourceFormatError(f"{path.name} is a Jira error response, not data: {messages}")
    keys = sorted(obj)[:20]
    raise SourceFormatError(
        f"{path.name} is not a Jira issue, search page or comments page: it has keys {keys}"
    )


def parse_stream(path: Path) -> Iterator[ParsedFile] | None:
    """A big search page or issue list, part by part (lib/sources/stream.py); None: parse it whole.

    msgspec reads it over a memory map (``stream.mapped_items``; ``names`` wherever it stands, in one pass
    that builds nothing else), a mended copy when it holds a lone surrogate escape. A file with an issue
    nested past msgspec's depth is read through ijson, which builds without recursion: that issue is then
    a reject and the others are kept (the whole parse comes here for such a file too).
    """
    head = stream.first_byte(path)
    if head == b"[":
        key, shape, where = None, "jira-issue-list", "[{}]"
    elif head == b"{" and stream.has_top_level_key(path, "issues"):
        key, shape, where = "issues", "jira-search-page", "issues[{}]"
    else:
        return None

    def parts() -> Iterator[ParsedFile]:
        try:
            sp, issues = _mapped_issues(path, key)
        except RecursionError:
            # `names` may stand after the issues: finding it skims the whole file
            sp = _story_point_fields(stream.first_value(path, "names") if key else None)
            issues = stream.items(path, f"{key}.item" if key else "item")
        except SourceFormatError as exc:
            if (found := stream.non_finite_at(path, exc)) is not None:
                yield _whole_with_non_finite(path, *found)
                return
            if not stream.has_surrogate_escapes(path):
                raise
            with stream.mended_copy(path) as copy:
                yield from _issue_parts(*_mapped_issues(copy, key), shape, where)
            return
        yield from _issue_parts(sp, issues, shape, where)

    return parts()


# A big file with a bare NaN or Infinity is parsed whole up to this size (Python objects of ~10x the
# file's bytes), so that its records are kept and cleaning quarantines the one with the non-finite value.
WHOLE_NON_FINITE_MAX_BYTES = 256 * 1024 * 1024


def _whole_with_non_finite(path: Path, at: int, token: str) -> ParsedFile:
    """The whole parse of a big file msgspec refused for a bare ``token`` at byte ``at``; past
    WHOLE_NON_FINITE_MAX_BYTES, an error saying where it is and what to do.
    """
    size = path.stat().st_size
    if size > WHOLE_NON_FINITE_MAX_BYTES:
        with open(path, "rb") as f:
            line = f.read(at).count(b"\n") + 1
        raise SourceFormatError(
            f"{path.name} holds a bare {token} at byte {at} (line {line}), which JSON has no word for (Python's "
            f"json.dumps writes it for such a float); a file of {size / 1e6:.0f} MB is read in parts, which "
            f"cannot read it: write null there (or the value), or split the export into files under "
            f"{WHOLE_NON_FINITE_MAX_BYTES // (1024 * 1024)} MB, which are read whole"
        )
    return parse(path)


def _mapped_issues(path: Path, key: str | None) -> tuple[tuple[str, ...], Iterator[Any]]:
    """Story point fields and the issues of a big file read over a memory map; the file is checked whole
    (msgspec's first pass) before this returns, so what it raises comes before any part.
    """
    names = stream.mapped_fields(path, ("names",)).get("names") if key else None
    issues = stream.mapped_items(path, key)
    first = next(issues, _NO_ISSUE)
    return _story_point_fields(names), (issues if first is _NO_ISSUE else itertools.chain([first], issues))


_NO_ISSUE = object()


def _issue_parts(sp: tuple[str, ...], issues: Iterator[Any], shape: str, where: str) -> Iterator[ParsedFile]:
    elements = enumerate(issues)
    while chunk := list(itertools.islice(elements, stream.PART_RECORDS)):
        part = ParsedFile(shape=shape)
        for i, issue in chunk:
            _guarded_issue_rows(issue, where.format(i), part, sp)
        yield part


# ---------------------------------------------------------------------------------------------
# CSV export

_CSV_FORMATS = (
    "%d/%b/%y %I:%M %p",
    "%d/%b/%Y %H:%M",
    "%d/%b/%y %H:%M",
    "%d/%b/%Y %I:%M %p",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%b/%y",
    "%d/%b/%Y",
    "%Y-%m-%d",
)
_CSV_DATE_CACHE: dict[tuple[str, str], datetime] = {}
# Jira's own export format (``22/Aug/25 9:18 AM``), read without strptime: five times faster, and the
# format every Jira CSV export carries in its date columns and comment cells.
_JIRA_CSV_DATE = re.compile(r"(\d{1,2})/([A-Za-z]{3})/(\d{2}) (\d{1,2}):(\d{2}) ([AaPp])[Mm]")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def _jira_csv_date(value: str) -> datetime | None:
    """``01/Sep/24 4:37 PM`` as a naive datetime, as strptime's ``%d/%b/%y %I:%M %p`` reads it; None if not that."""
    m = _JIRA_CSV_DATE.fullmatch(value)
    if m is None:
        return None
    day, mon, yy, hour, minute, half = m.groups()
    month = _MONTHS.get(mon.lower())
    h = int(hour)
    if month is None or not 1 <= h <= 12:
        return None
    yy_int = int(yy)
    try:  # %y: 69-99 are 19xx, 00-68 are 20xx
        return datetime(
            1900 + yy_int if yy_int >= 69 else 2000 + yy_int,
            month,
            int(day),
            h % 12 + (12 if half in "Pp" else 0),
            int(minute),
        )
    except ValueError:
        return None


def _csv_zone() -> Any:
    name = os.environ.get("MLOPS_JIRA_CSV_TIMEZONE", "").strip()
    if not name or name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceFormatError(
            f"MLOPS_JIRA_CSV_TIMEZONE={name!r} is not a time zone: use an IANA name like Europe/Berlin"
        ) from None


def _csv_strptime(value: str, field: str) -> datetime:
    for fmt in _CSV_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _BadRecord(f"column '{field}' = {value!r} is not a date") from None


def _csv_ts(value: str, field: str, zone: Any) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    ck = (value, str(zone))
    hit = _CSV_DATE_CACHE.get(ck)
    if hit is not None:
        return hit
    dt = _jira_csv_date(value) or _csv_strptime(value, field)
    dt = dt.replace(tzinfo=zone) if dt.tzinfo is None else dt
    try:
        dt = utc(dt)
    except DateOutOfRange as exc:
        raise _BadRecord(f"column '{field}' = {value!r} {exc}") from None
    if len(_CSV_DATE_CACHE) < 100_000:
        _CSV_DATE_CACHE[ck] = dt
    return dt


def _parse_csv(text: str, path: Path, out: ParsedFile) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SourceFormatError(f"{path.name} is empty") from None
    except csv.Error as exc:
        raise SourceFormatError(f"{path.name} is not a readable CSV file: {exc}") from None
    header = [h.strip() for h in header]
    cols: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        cols.setdefault(h, []).append(i)
    if "Issue key" not in cols or "Summary" not in cols:
        raise SourceFormatError(
            f"{path.name} is not a Jira CSV export: its header lacks 'Issue key' and 'Summary' "
            f"(it starts {header[:8]}); export from Jira with 'Export CSV (all fields)'"
        )
    out.shape = "jira-csv"
    zone = _csv_zone()
    width = len(header)
    link_cols = [
        i for h, idx in cols.items() if h.startswith(("Inward issue link", "Outward issue link")) for i in idx
    ]

    def first(row: list[str], *names: str) -> str:
        for name in names:
            for i in cols.get(name, ()):
                v = row[i].strip()
                if v:
                    return v
        return ""

    def every(row: list[str], name: str) -> list[str]:
        return [row[i].strip() for i in cols.get(name, ()) if row[i].strip()]

    n = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise SourceFormatError(f"{path.name} line {reader.line_num}: broken CSV ({exc})") from None
        if not any(v.strip() for v in row):
            continue
        n += 1
        loc = f"row {n} (line {reader.line_num})"
        payload = {}
        for h, v in zip(header, row, strict=False):
            if v != "":
                if h in payload:
                    prev = payload[h]
                    payload[h] = [*prev, v] if isinstance(prev, list) else [prev, v]
                else:
                    payload[h] = v
        if len(row) > width:
            out.rejects.append(
                Reject(
                    loc,
                    f"{loc}: has {len(row)} values but the header has {width} columns (an unquoted comma?)",
                    canonical_json(row),
                )
            )
            continue
        if len(row) < width:
            row = row + [""] * (width - len(row))
        key = first(row, "Issue key")
        label = f"{loc} ({key})" if key else loc
        try:
            if not key:
                raise _BadRecord("column 'Issue key' is empty")
            created = first(row, "Created")
            if not created:
                raise _BadRecord("column 'Created' is empty")
            created_at = _csv_ts(created, "Created", zone)
            resolved_at = _csv_ts(first(row, "Resolved"), "Resolved", zone)
            # A due date is a calendar date: read it without a zone so the day never shifts.
            due = _csv_ts(first(row, "Due date", "Due Date"), "Due date", UTC)
            due_at = datetime(due.year, due.month, due.day, tzinfo=UTC) if due else None
            status = first(row, "Status") or None
            resolution = first(row, "Resolution")
            category = _CSV_STATUS_CATEGORY.get(first(row, "Status Category").lower())
            labels = every(row, "Labels")
            comments = [(i, row[i]) for i in cols.get("Comment", ()) if row[i].strip()]
            subtasks = [s for s in first(row, "Sub-tasks").split(",") if s.strip()]
            task = {
                "task_id": f"jira:{key}",
                "source": SOURCE,
                "project": first(row, "Project key") or key.rsplit("-", 1)[0],
                "key": key,
                "title": first(row, "Summary") or None,
                "type": first(row, "Issue Type") or None,
                "priority": first(row, "Priority") or None,
                "status": status,
                "status_category": category
                or _status_category(status, None, bool(resolution or resolved_at)),
                "assignee_id": _person(first(row, "Assignee Id") or first(row, "Assignee") or None),
                "reporter_id": _person(first(row, "Reporter Id") or first(row, "Reporter") or None),
                "created_at": created_at,
                "updated_at": _csv_ts(first(row, "Updated"), "Updated", zone),
                "resolved_at": resolved_at,
                "due_at": due_at,
                "deadline_at": due_at,  # the CSV lists fix versions without their release dates
                "story_points": _float(
                    first(
                        row,
                        "Custom field (Story Points)",
                        "Custom field (Story point estimate)",
                        "Story Points",
                        "Story point estimate",
                    )
                ),
                "original_estimate_h": _hours(first(row, "Original estimate", "Original Estimate")),
                "time_spent_h": _hours(first(row, "Time Spent", "Time spent")),
                "n_comments": len(comments),
                "n_links": sum(1 for i in link_cols if row[i].strip()),
                "n_subtasks": len(subtasks),
                "n_labels": len(labels),
                "description_length": len(first(row, "Description")),
                "labels": ",".join(labels) or None,
                "locator": loc,
                "payload": canonical_json(payload),
            }
        except _BadRecord as exc:
            out.rejects.append(Reject(loc, f"{label}: {exc}", canonical_json(payload)))
            continue
        if not out.add("tasks", task):
            continue
        for j, (_, text) in enumerate(comments):
            cloc = f"{loc}.Comment[{j}]"
            try:
                out.records["comments"].append(_csv_comment(key, text, zone, cloc))
            except _BadRecord as exc:
                out.rejects.append(
                    Reject(
                        cloc,
                        f"{label}: comment {j + 1}: {exc}",
                        canonical_json({"issue": key, "comment": text}),
                    )
                )


def _csv_comment(key: str, text: str, zone: Any, loc: str) -> dict[str, Any]:
    """A CSV comment cell: ``22/Aug/25 9:18 AM;<author id>;<body>``."""
    parts = text.split(";", 2)
    if len(parts) == 3:
        created_at = _csv_ts(parts[0], "Comment", zone)
        author, body = parts[1], parts[2]
    else:  # a bare body (older exports): no date or author
        created_at, author, body = None, None, text
    digest = canonical_json([key, text])
    return {
        "task_id": f"jira:{key}",
        "source": SOURCE,
        # The CSV has no comment ids; a content-derived one keeps re-exports from duplicating comments.
        "comment_id": "csv-" + hashlib.sha256(digest.encode()).hexdigest()[:16],
        "created_at": created_at,
        "author_id": _person(author),
        "body_length": len(body),
        "locator": loc,
        "payload": canonical_json({"issue": key, "comment": text}),
    }


# ---------------------------------------------------------------------------------------------


def parse(path: Path) -> ParsedFile:
    """Parse one Jira landing file (API JSON or CSV export) into task, event and comment records."""
    path = Path(path)
    data = path.read_bytes()
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[") and (doc := utf8_json(data)) is not NOT_READ:
        out = ParsedFile(encoding="utf-8")
        _parse_json("", path, out, doc)
        return out
    text, encoding = decode_bytes(data)
    out = ParsedFile(encoding=encoding)
    head = text.lstrip()[:1]
    suffix = path.suffix.lower()
    if not head:
        raise SourceFormatError(f"{path.name} is empty")
    if head in ("{", "[") or suffix == ".json":
        _parse_json(text, path, out)
    elif suffix == ".csv" or "Issue key" in text[:5000]:
        _parse_csv(text, path, out)
    else:
        raise SourceFormatError(
            f"{path.name} is neither Jira JSON (it does not start with '{{' or '[') nor a Jira CSV export"
        )
    return out
