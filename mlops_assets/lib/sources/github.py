"""GitHub Issues: REST API issue pages (``<landing>/github/*.json``) to normalized task rows.

Accepted shapes: a JSON array of issues as ``GET /repos/{owner}/{repo}/issues?state=all`` returns
(``github-issue-list``), one issue object as ``GET /repos/{owner}/{repo}/issues/{n}`` returns
(``github-issue``), and a search page ``{"items": [...]}`` (``github-search-page``).

Pull requests (items with a ``pull_request`` key) share the issues endpoint but are not tasks: they
are skipped, neither tasks nor rejects, and counted in ``ParsedFile.shape``
(e.g. ``"github-issue-list; 24 pull requests skipped"``).

Mapping choices:
- ``status`` is ``state``, with ``state_reason`` in brackets when GitHub gives one
  (``"closed (not_planned)"``). ``status_category``: closed -> ``done``; open -> ``in_progress``
  only when a label says work has started (``in progress``, ``wip``, ``doing``, ``in review``...),
  else ``todo``. Assignment is deliberately NOT read as "in progress": triage assigns issues long
  before anyone works on them, and a snapshot cannot tell the two apart.
- ``type``: GitHub's issue type (``type.name``) when set, else a type-like label (bug,
  enhancement, feature, question, task, documentation; also ``type: bug``, ``kind/bug``), else
  ``"issue"``. ``priority``: the value of a priority-like label (``priority: high`` -> ``high``,
  ``Priority-High`` -> ``High``, ``P1`` -> ``P1``, bare ``Critical``/``Major``...), raw: cleaning
  canonicalizes.
- ``due_at`` is None (issues have no due date); ``deadline_at`` is the milestone's ``due_on``.
- ``n_subtasks`` from ``sub_issues_summary.total`` where the API returns it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import (
    DateOutOfRange,
    JsonDocuments,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    load_json_file,
    priority_from_labels,
    pseudonymize,
    utc,
)

SOURCE = "github"

EXPECTED_SHAPE = (
    "a GitHub issue list (a JSON array of issues as GET /repos/{owner}/{repo}/issues?state=all returns), "
    'a single issue object, or a search page {"items": [...]}, or pages of these one after the other as '
    "gh api --paginate prints them (with or without --slurp, or --jq '.[]')"
)


# --- label semantics (priority_from_labels, shared with Trello and Asana, is in base) -------------

_TYPE_PREFIX = re.compile(r"^\s*(?:type|kind|t)\s*[:/\-_ ]+\s*(.+?)\s*$", re.IGNORECASE)
_TYPE_WORDS = {
    "bug", "defect", "enhancement", "feature", "feature request", "question", "task", "story",
    "epic", "documentation", "docs", "improvement", "chore", "regression", "security",
}  # fmt: skip
_IN_PROGRESS_LABELS = {
    "in progress", "in-progress", "in_progress", "wip", "work in progress", "doing", "in review",
    "in-review", "under review", "status: in progress", "status/in progress", "status: in review",
    "status: doing", "started",
}  # fmt: skip


@lru_cache(maxsize=8192)
def _type_of_label(name: str) -> str | None:
    match = _TYPE_PREFIX.match(name)
    if match and match.group(1).lower() in _TYPE_WORDS:
        return match.group(1)
    return name.strip() if name.strip().lower() in _TYPE_WORDS else None


def type_from_labels(names: list[str]) -> str | None:
    """The first type-like label (``Bug``, ``type: feature`` -> ``feature``), or None."""
    for name in names:
        found = _type_of_label(name)
        if found:
            return found
    return None


def in_progress_from_labels(names: list[str]) -> bool:
    return any(name.strip().lower() in _IN_PROGRESS_LABELS for name in names)


# --- parsing -----------------------------------------------------------------------------------

_pseudo = lru_cache(maxsize=65536)(pseudonymize)


class _Bad(Exception):
    """One field of one record is unusable (becomes a Reject)."""


def _ts(item: dict[str, Any], name: str, required: bool = False) -> datetime | None:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise _Bad(f"'{name}' is missing (GitHub always sends it: is this an issue object?)")
        return None
    if not isinstance(value, str):
        raise _Bad(f"'{name}' = {value!r} is not a timestamp")
    try:
        return utc(datetime.fromisoformat(value))
    except DateOutOfRange as exc:
        raise _Bad(f"'{name}' = {value!r} {exc}") from None
    except ValueError:
        raise _Bad(
            f"'{name}' = {value!r} is not a timestamp (expected ISO 8601 like 2016-02-17T17:23:37Z)"
        ) from None


def repo_of(item: dict[str, Any]) -> str | None:
    """``owner/repo`` from ``repository_url`` (API or GHES ``/api/v3``) or ``html_url``."""
    url = item.get("repository_url")
    if isinstance(url, str) and "/repos/" in url:
        parts = url.rpartition("/repos/")[2].split("/")
        if len(parts) >= 2 and parts[0] and parts[1]:
            return f"{parts[0]}/{parts[1]}"
    url = item.get("html_url")
    if isinstance(url, str) and "://" in url:
        parts = url.split("://", 1)[1].split("/")
        if len(parts) >= 3 and parts[1] and parts[2]:
            return f"{parts[1]}/{parts[2]}"
    return None


def _login(person: Any) -> str | None:
    if isinstance(person, dict):
        return person.get("login") or (str(person["id"]) if person.get("id") is not None else None)
    return None


def issue_to_task(item: dict[str, Any]) -> dict[str, Any]:
    """Map one issue object to a task row (raises _Bad with the reason when unusable)."""
    number = item.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise _Bad(f"'number' = {number!r} is not an issue number")
    repo = repo_of(item)
    if repo is None:
        raise _Bad("neither 'repository_url' nor 'html_url' names the owner/repo")
    created = _ts(item, "created_at", required=True)
    updated = _ts(item, "updated_at")
    closed = _ts(item, "closed_at")

    raw_labels = item.get("labels") or []
    if not isinstance(raw_labels, list):
        raise _Bad(f"'labels' = {raw_labels!r} is not a list")
    labels = [(lab.get("name") or "") if isinstance(lab, dict) else str(lab) for lab in raw_labels]
    labels = [name for name in labels if name]

    state = item.get("state")
    if state not in ("open", "closed"):
        raise _Bad(f"'state' = {state!r} is neither 'open' nor 'closed'")
    reason = item.get("state_reason")
    status = f"{state} ({reason})" if reason else state
    if state == "closed":
        category = "done"
    else:
        category = "in_progress" if labels and in_progress_from_labels(labels) else "todo"

    issue_type = item.get("type")
    type_name = issue_type.get("name") if isinstance(issue_type, dict) else None
    type_name = type_name or (type_from_labels(labels) if labels else None) or "issue"

    milestone = item.get("milestone")
    deadline = _ts(milestone, "due_on") if isinstance(milestone, dict) else None

    assignee = _login(item.get("assignee"))
    if assignee is None:
        assignees = item.get("assignees")
        if isinstance(assignees, list) and assignees:
            assignee = _login(assignees[0])

    comments = item.get("comments")
    if comments is not None and (isinstance(comments, bool) or not isinstance(comments, int)):
        raise _Bad(f"'comments' = {comments!r} is not a count")
    sub = item.get("sub_issues_summary")
    body = item.get("body")
    return {
        "task_id": f"github:{repo}#{number}",
        "source": SOURCE,
        "project": repo,
        "key": f"#{number}",
        "title": item.get("title"),
        "type": type_name,
        "priority": priority_from_labels(labels) if labels else None,
        "status": status,
        "status_category": category,
        "assignee_id": _pseudo(SOURCE, assignee),
        "reporter_id": _pseudo(SOURCE, _login(item.get("user"))),
        "created_at": created,
        "updated_at": updated,
        "resolved_at": closed if state == "closed" else None,
        "due_at": None,
        "deadline_at": deadline,
        "story_points": None,
        "original_estimate_h": None,
        "time_spent_h": None,
        "n_comments": comments,
        "n_links": None,
        "n_subtasks": sub.get("total") if isinstance(sub, dict) else None,
        "n_labels": len(labels),
        "description_length": len(body) if isinstance(body, str) else 0,
        "labels": ",".join(labels),
    }


def _looks_like_issue(obj: Any) -> bool:
    return isinstance(obj, dict) and "number" in obj and ("state" in obj or "title" in obj)


def _is_search_page(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("items"), list) and not _looks_like_issue(obj)


def _described(value: Any) -> str:
    """What a JSON value that is not the expected one is, for a message: an object's first keys, else its type."""
    return f"an object with keys {sorted(value)[:8]}" if isinstance(value, dict) else type(value).__name__


def _not_github(path: Path, doc: Any) -> SourceFormatError:
    """The refusal of a file whose one document is no list, search page or issue."""
    return SourceFormatError(f"{path.name}: expected {EXPECTED_SHAPE}; got {_described(doc)}")


def _page_reject(number: int, count: int, page: Any) -> Reject:
    """The reject of page ``number`` of ``count`` that is neither a list of issues nor a search page."""
    return Reject(
        f"page {number}",
        f"page {number} of {count} is {_described(page)}, not a list of issues or a search page: "
        "its issues, if any, are missing; pull that page again",
        canonical_json(page),
    )


def _no_issue(path: Path, first: Any) -> SourceFormatError:
    """The refusal of a file none of whose elements looks like an issue (``first``: its first element)."""
    got = f"keys {sorted(first)[:8]}" if isinstance(first, dict) else type(first).__name__
    return SourceFormatError(
        f"{path.name}: no element looks like a GitHub issue (no 'number' with 'state'/'title'; first has {got}); "
        f"expected {EXPECTED_SHAPE}"
    )


def parse(path: Path) -> ParsedFile:
    """Parse one GitHub landing file into tasks (pull requests skipped, bad issues rejected).

    Besides one list, search page or issue: the pages of ``gh api --paginate`` (each page's JSON document
    one after the other; with ``--jq '.[]'`` one issue a line) and of ``gh api --paginate --slurp`` (a list
    of the pages), counted in the shape.
    """
    doc, encoding = load_json_file(path, EXPECTED_SHAPE, several=True)
    pages = None
    if isinstance(doc, JsonDocuments):
        pages, shape = doc, "github-paginated"
    elif (
        isinstance(doc, list) and doc and all(isinstance(page, list) or _is_search_page(page) for page in doc)
    ):
        pages, shape = doc, "github-paginated-slurp"
    page_rejects: list[Reject] = []
    if pages is not None:
        items = []
        for number, page in enumerate(pages, start=1):
            if isinstance(page, list):
                items += page
            elif isinstance(page, dict) and isinstance(page.get("items"), list):
                items += page["items"]
            elif _looks_like_issue(page):  # one issue a line: gh api --paginate --jq '.[]'
                items.append(page)
            else:  # e.g. an error answer (rate limit) between pages: the other pages' issues are kept
                page_rejects.append(_page_reject(number, len(pages), page))
        if len(page_rejects) == len(pages):
            raise SourceFormatError(f"{path.name}: {page_rejects[0].reason}; expected {EXPECTED_SHAPE}")
        single = False
        shape = f"{shape} ({len(pages)} pages)"
    elif isinstance(doc, list):
        items, shape, single = doc, "github-issue-list", False
    elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
        items, shape, single = doc["items"], "github-search-page", False
    elif _looks_like_issue(doc):
        items, shape, single = [doc], "github-issue", True
    else:
        raise _not_github(path, doc)
    if items and not any(_looks_like_issue(item) for item in items):
        raise _no_issue(path, items[0])

    parsed = ParsedFile(encoding=encoding, rejects=page_rejects)
    n_pulls = _add_items(parsed, enumerate(items), single)
    parsed.shape = f"{shape}; {n_pulls} pull requests skipped" if n_pulls else shape
    return parsed


def parse_stream(path: Path) -> Iterator[ParsedFile] | None:
    """A big GitHub file, part by part: what :func:`parse` gives it, holding one part at a time; None: a file
    that is no JSON list or object (parse it whole, which says what is wrong).

    Every form the whole parse reads streams: one list, search page or issue, the pages of ``gh api
    --paginate`` one after the other (``--jq '.[]'``: one issue a line), a ``--slurp`` list of pages. msgspec
    reads the file through a memory map (lib/sources/stream.py ``mapped_documents``): each page is split into
    raw issues, decoded one at a time. Issues are numbered on from page to page, and a page that is no list
    (an error answer between pages) is a reject naming it, as in the whole parse.
    """
    if stream.first_byte(path) not in (b"[", b"{"):
        return None

    def parts() -> Iterator[ParsedFile]:
        found = _Streamed(path)
        elements = enumerate(found.elements())
        while chunk := list(itertools.islice(elements, stream.PART_RECORDS)):
            part = ParsedFile(shape=found.shape, rejects=found.take_rejects())
            found.pulls += _add_items(part, iter(chunk), single=found.single)
            yield part
        found.check_issues()
        # the last part (maybe of no records) carries what is known at the end: page rejects, pull requests
        yield ParsedFile(shape=found.final_shape(), rejects=found.take_rejects())

    return parts()


def _raw_is_page(raw: Any) -> bool:
    """Whether a raw element of a one-list file is a page (what makes it ``--slurp`` output): a list, or a
    search page (an ``items`` list, and not an issue), as the whole parse's ``_is_search_page`` judges it.
    """
    head = stream.raw_head(raw)
    if head == b"[":
        return True
    if head != b"{":
        return False
    fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    return "items" in fields and stream.raw_head(fields["items"]) == b"[" and not _looks_like_issue(fields)


class _Streamed:
    """The elements of a streamed GitHub file, decoded one at a time in the whole parse's order, with the
    file's shape and its page rejects as the whole parse gives them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shape, self.single, self.pulls, self.pages = "github-issue-list", False, 0, 0
        self._rejects: list[Reject] = []
        self._first_bad_page: str | None = None
        self._bad_pages = self._items = 0
        self._an_issue = False
        self._first: Any = None

    def take_rejects(self) -> list[Reject]:
        out, self._rejects = self._rejects, []
        return out

    def elements(self) -> Iterator[Any]:
        for item in self._decoded():
            self._items += 1
            if self._items == 1:  # what the "no element looks like an issue" refusal shows: its keys
                self._first = dict.fromkeys(item) if isinstance(item, dict) else item
            self._an_issue = self._an_issue or _looks_like_issue(item)
            yield item

    def _decoded(self) -> Iterator[Any]:
        documents = stream.mapped_documents(self.path)
        _, count, raw = next(documents)
        if count > 1:  # gh api --paginate: its pages one after the other
            self.shape, self.pages = "github-paginated", count
            yield from self._page(1, count, raw)
            raw = None
            for number, _, raw in documents:
                yield from self._page(number, count, raw)
                raw = None
            if self._bad_pages == count:
                raise SourceFormatError(
                    f"{self.path.name}: {self._first_bad_page}; expected {EXPECTED_SHAPE}"
                )
            return
        head = stream.raw_head(raw)
        if head == b"[":
            elements = msgspec.json.decode(raw, type=list[msgspec.Raw])
            raw = None
            if elements and all(_raw_is_page(e) for e in elements):  # gh api --paginate --slurp
                self.shape, self.pages = "github-paginated-slurp", len(elements)
                for number, page in enumerate(stream.drained(elements), start=1):
                    yield from self._page(number, self.pages, page)
                    page = None
                return
            yield from map(stream.decode, stream.drained(elements))
            return
        if head == b"{":
            fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
            if "items" in fields and stream.raw_head(fields["items"]) == b"[":  # a search page
                self.shape = "github-search-page"
                elements, raw, fields = (
                    msgspec.json.decode(fields["items"], type=list[msgspec.Raw]),
                    None,
                    None,
                )
                yield from map(stream.decode, stream.drained(elements))
                return
            fields = None
        doc, raw = stream.decode(raw), None
        if _looks_like_issue(doc):
            self.shape, self.single = "github-issue", True
            yield doc
            return
        raise _not_github(self.path, doc)

    def _page(self, number: int, count: int, raw: Any) -> Iterator[Any]:
        """The issues of page ``number`` of ``count``, or its reject, as the whole parse reads a page."""
        if stream.raw_head(raw) == b"[":
            yield from map(stream.decode, stream.drained(msgspec.json.decode(raw, type=list[msgspec.Raw])))
            return
        page, raw = stream.decode(raw), None
        if isinstance(page, dict) and isinstance(page.get("items"), list):
            yield from page["items"]
        elif _looks_like_issue(page):  # one issue a line: gh api --paginate --jq '.[]'
            yield page
        else:  # e.g. an error answer (rate limit) between pages: the other pages' issues are kept
            reject = _page_reject(number, count, page)
            self._bad_pages += 1
            self._first_bad_page = self._first_bad_page or reject.reason
            self._rejects.append(reject)

    def check_issues(self) -> None:
        """The whole parse's refusal of a file none of whose elements looks like an issue; known at the end
        only (the streamed file's rows are then rolled back with it).
        """
        if self._items and not self._an_issue:
            raise _no_issue(self.path, self._first)

    def final_shape(self) -> str:
        shape = f"{self.shape} ({self.pages} pages)" if self.pages else self.shape
        return f"{shape}; {self.pulls} pull requests skipped" if self.pulls else shape


def _add_items(parsed: ParsedFile, items: Iterator[tuple[int, Any]], single: bool) -> int:
    """Tasks and rejects of (index, element) pairs into ``parsed``; returns the pull requests skipped."""
    n_pulls = 0
    for index, item in items:
        locator = "issue" if single else f"[{index}]"
        if isinstance(item, dict) and "pull_request" in item:
            n_pulls += 1
            continue
        if not isinstance(item, dict):
            parsed.rejects.append(Reject.not_an_object(locator, item, "an issue object"))
            continue
        try:
            row = issue_to_task(item)
        except _Bad as bad:
            number = item.get("number")
            parsed.rejects.append(Reject(locator, f"{locator} (#{number}): {bad}", canonical_json(item)))
            continue
        row["locator"] = locator
        row["payload"] = canonical_json(item)
        parsed.add("tasks", row)
    return n_pulls
