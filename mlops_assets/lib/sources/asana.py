"""Asana: the project CSV export (``<landing>/asana/*.csv``) and its JSON export or API task pages
(``<landing>/asana/*.json``, :func:`parse_json`) to normalized task rows.

Shape ``asana-project-csv``: Asana's columns ``Task ID, Created At, Completed At, Last Modified,
Name, Section/Column, Assignee, Assignee Email, Start Date, Due Date, Tags, Notes, Projects,
Parent task, Blocked By (Dependencies), Blocking (Dependencies)`` in any order, header names
matched case-insensitively. Required: ``Task ID``, ``Created At``, ``Completed At`` and ``Name``;
the rest and any custom-field columns are optional. Dates are bare ``YYYY-MM-DD`` (UTC midnight);
full ISO timestamps are accepted too.

Mapping choices:
- ``task_id`` ``asana:<Task ID>``, ``key`` the Task ID, ``project`` the first of ``Projects``, else
  the parent task's project (subtasks are exported without one), else the file stem.
- ``status``: ``"Completed"`` when ``Completed At`` is set, else the section (``"Open"`` for
  ``(no section)``). ``status_category``: done exactly when completed; an open task in a section
  named like work in progress ("Doing", "In Review") is ``in_progress``; else ``todo``.
- ``type`` ``"subtask"`` when ``Parent task`` is set, else ``"task"``. ``n_subtasks``: rows whose
  ``Parent task`` names this task (Asana writes the parent's name; a Task ID also matches).
- ``priority`` from a custom field column named ``Priority`` when present and set, else from a
  priority-like tag ("High", "P1", "Priority: High").
- ``assignee_id`` pseudonymized from ``Assignee Email``, else ``Assignee``; no reporter in the export.
- ``due_at`` = ``deadline_at`` = ``Due Date``; ``resolved_at`` = ``Completed At``;
  ``updated_at`` = ``Last Modified``; ``n_links`` = number of dependencies (both directions).
- Duplicate Task IDs stay separate records (cleaning keeps the latest ``Last Modified``); rows
  identical in every column are emitted once, and the dropped copies are counted in ``shape``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops_assets.lib.sources.base import (
    DateOutOfRange,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    category_from_status_name,
    csv_records,
    decode_bytes,
    load_json_file,
    priority_from_labels,
    pseudonymize,
    unique_names,
    utc,
)

SOURCE = "asana"
REQUIRED = ("Task ID", "Created At", "Completed At", "Name")
OPTIONAL = (
    "Last Modified", "Section/Column", "Assignee", "Assignee Email", "Start Date", "Due Date", "Tags",
    "Notes", "Projects", "Parent task", "Blocked By (Dependencies)", "Blocking (Dependencies)", "Priority",
)  # fmt: skip
EXPECTED_SHAPE = "Asana's project CSV export (header: " + ", ".join(REQUIRED + OPTIONAL[:-1]) + ")"

_pseudo = lru_cache(maxsize=65536)(pseudonymize)


@lru_cache(maxsize=65536)
def _day(value: str) -> datetime:
    """``YYYY-MM-DD`` as UTC midnight (or a full ISO timestamp); ValueError when it is neither."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    return utc(datetime.fromisoformat(value))  # type: ignore[return-value]


class _Bad(Exception):
    """One row is unusable (becomes a Reject)."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str] | None, str]], str]:
    """(header, [(line, fields or None, why unreadable)], encoding) of one export."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    text, encoding = decode_bytes(data)
    records = csv_records(text)
    _, header, problem = next(records, (1, None, ""))
    if header is None:
        if problem:
            raise SourceFormatError(
                f"{path.name}: the header is not readable ({problem}); expected {EXPECTED_SHAPE}"
            )
        raise SourceFormatError(f"{path.name} is empty; expected {EXPECTED_SHAPE}")
    return header, list(records), encoding


def parse(path: Path) -> ParsedFile:
    """Parse one Asana project export into tasks (bad rows rejected with the reason): the CSV export, or
    a ``.json`` one (parse_json).
    """
    if path.suffix.lower() == ".json":
        return parse_json(path)
    header, rows, encoding = _read_rows(path)
    index = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    missing = [name for name in REQUIRED if name.lower() not in index]
    if missing:
        found = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
        raise SourceFormatError(
            f"{path.name}: missing required column(s) {', '.join(repr(m) for m in missing)} (found: {found}); "
            f"expected {EXPECTED_SHAPE}"
        )

    width = len(header)
    payload_keys = unique_names(header)

    def col(name: str) -> int:
        # A missing optional column reads the empty sentinel appended to every row.
        return index.get(name.lower(), width)

    i_id, i_created, i_completed, i_name = (col(name) for name in REQUIRED)
    (
        i_modified,
        i_section,
        i_assignee,
        i_email,
        _,
        i_due,
        i_tags,
        i_notes,
        i_projects,
        i_parent,
        i_blocked,
        i_blocking,
        i_priority,
    ) = (col(name) for name in OPTIONAL)

    parsed = ParsedFile(encoding=encoding, shape="asana-project-csv")
    seen: set[tuple[str, ...]] = set()
    kept: list[tuple[int, list[str]]] = []
    n_identical = 0
    for line, row, problem in rows:
        if row is None:
            parsed.rejects.append(Reject(f"line {line}", problem))
            continue
        if not any(row):
            continue  # a blank line
        if len(row) != width:
            hint = (
                "a comma in an unquoted value?" if len(row) > width else "a cut-off line or a missing comma?"
            )
            parsed.rejects.append(
                Reject(
                    f"line {line}",
                    f"line {line}: {len(row)} fields but the header has {width} ({hint})",
                    canonical_json(row),
                )
            )
            continue
        fingerprint = tuple(row)
        if fingerprint in seen:
            n_identical += 1
            continue
        seen.add(fingerprint)
        row = row + [""] * (width + 1 - len(row))
        kept.append((line, row))

    # Subtask counts and project inheritance need the whole file first.
    parent_of = _resolve_parents(kept, i_id, i_name, i_parent, i_created)
    n_children = [0] * len(kept)
    for parent in parent_of.values():
        n_children[parent] += 1

    for n, (line, row) in enumerate(kept):
        locator = f"line {line}"
        task_id = row[i_id].strip()
        try:
            if not task_id:
                raise _Bad("'Task ID' is empty")
            name = row[i_name].strip()
            created = _date(row, i_created, "Created At", required=True)
            completed = _date(row, i_completed, "Completed At")
            modified = _date(row, i_modified, "Last Modified")
            due = _date(row, i_due, "Due Date")
        except _Bad as bad:
            reason = f"{locator} (Task ID {task_id or '?'}): {bad}"
            parsed.rejects.append(
                Reject(locator, reason, canonical_json(dict(zip(payload_keys, row, strict=False))))
            )
            continue
        parent = row[i_parent].strip()
        projects = _split(row[i_projects])
        if not projects and n in parent_of:
            projects = _split(kept[parent_of[n]][1][i_projects])
        tags = _split(row[i_tags])
        parsed.add(
            "tasks",
            {
                **_task_row(
                    task_id,
                    project=projects[0] if projects else path.stem,
                    title=name,
                    subtask=bool(parent),
                    priority=row[i_priority].strip() or None,
                    section=row[i_section].strip(),
                    assignee=row[i_email].strip() or row[i_assignee].strip(),
                    dates=(created, modified, completed, due),
                    n_links=len(_split(row[i_blocked])) + len(_split(row[i_blocking])),
                    n_subtasks=n_children[n],
                    tags=tags,
                    description_length=len(row[i_notes]),
                ),
                "locator": locator,
                "payload": canonical_json(dict(zip(payload_keys, row, strict=False))),
            },
        )
    if n_identical:
        parsed.shape = f"asana-project-csv; {n_identical} identical duplicate rows dropped"
    return parsed


def _resolve_parents(
    kept: list[tuple[int, list[str]]], i_id: int, i_name: int, i_parent: int, i_created: int
) -> dict[int, int]:
    """Row index of each subtask -> row index of its parent.

    Asana writes the parent's *name* (a Task ID is accepted too). Names repeat, so among the rows
    so named the parent is the one created last on or before the subtask (else the first): each
    subtask counts once, never once per namesake.
    """
    wanted = {row[i_parent].strip() for _, row in kept} - {""}
    if not wanted:
        return {}
    candidates: dict[str, list[int]] = {}
    for n, (_, row) in enumerate(kept):
        for ref in {row[i_id].strip(), row[i_name].strip()} & wanted:
            candidates.setdefault(ref, []).append(n)
    parent_of: dict[int, int] = {}
    for n, (_, row) in enumerate(kept):
        ref = row[i_parent].strip()
        options = [m for m in candidates.get(ref, ()) if m != n]
        if not options:
            continue  # the parent is not in this file
        if len(options) > 1:
            created = row[i_created].strip()
            before = [m for m in options if kept[m][1][i_created].strip() <= created]
            options = [max(before, key=lambda m: kept[m][1][i_created].strip())] if before else options
        parent_of[n] = options[0]
    return parent_of


def _date(row: list[str], i: int, name: str, required: bool = False) -> datetime | None:
    return _checked_day(row[i].strip(), name, required, "is empty", "YYYY-MM-DD, e.g. 2024-01-31")


def _checked_day(value: str, name: str, required: bool, absent: str, expected: str) -> datetime | None:
    """``value`` read by _day; None when empty (or _Bad saying it is `absent` when `required`); _Bad naming
    the field and the `expected` form when it is no date.
    """
    if not value:
        if required:
            raise _Bad(f"'{name}' {absent}")
        return None
    try:
        return _day(value.strip())
    except DateOutOfRange as exc:
        raise _Bad(f"'{name}' = {value!r} {exc}") from None
    except ValueError:
        raise _Bad(f"'{name}' = {value!r} is not a date (expected {expected})") from None


# ---------------------------------------------------------------------------------------------
# JSON: the project's "Export/Print -> JSON" and the API's task pages

JSON_SHAPE = (
    'Asana\'s project JSON export or an API page of tasks ({"data": [task, ...]}, each task with at least '
    "gid, name and created_at, as GET /projects/{gid}/tasks?opt_fields=... returns), or a list of tasks"
)


# The task fields parse_json reads, as an API request asks for them
OPT_FIELDS = (
    "name,created_at,completed,completed_at,modified_at,due_on,due_at,assignee.email,assignee.name,"
    "memberships.project.name,memberships.section.name,projects.name,tags.name,parent,num_subtasks,notes,"
    "custom_fields.name,custom_fields.display_value,dependencies,dependents"
)


def parse_json(path: Path) -> ParsedFile:
    """Tasks of a JSON export (``{"data": [...]}``, a task's ``subtasks`` nested in it or not) or API page.

    The same columns as the CSV export gives for the same task (``task_id`` ``asana:<gid>``): ``project``
    from the first membership (else ``projects``, else the parent's, else the file stem), ``status`` the
    membership's section unless completed, ``priority`` from a custom field named Priority (else a tag),
    the assignee's e-mail (else name, else gid) pseudonymized, ``due_at`` from ``due_at`` else ``due_on``,
    ``n_subtasks`` from ``num_subtasks`` (else the subtasks in the file), ``n_links`` the dependencies and
    dependents (0 without them, as the CSV export's empty columns give).
    """
    doc, encoding = load_json_file(path, JSON_SHAPE)
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        tasks, shape = doc["data"], "asana-json"
    elif isinstance(doc, list):
        tasks, shape = doc, "asana-json-list"
    else:
        got = f"an object with keys {sorted(doc)[:8]}" if isinstance(doc, dict) else type(doc).__name__
        raise SourceFormatError(f"{path.name}: expected {JSON_SHAPE}; got {got}")
    if tasks and not any(isinstance(t, dict) and "gid" in t for t in tasks):
        first = tasks[0]
        got = f"keys {sorted(first)[:8]}" if isinstance(first, dict) else type(first).__name__
        raise SourceFormatError(
            f"{path.name}: no element looks like an Asana task (no 'gid'; first has {got})"
        )
    if tasks and not any(isinstance(t, dict) and "created_at" in t for t in tasks):
        raise SourceFormatError(
            f"{path.name}: Asana tasks in their compact form (no task has created_at): the API gives only gid and "
            f"name unless asked; request them with opt_fields={OPT_FIELDS}, or use the project's Export -> JSON"
        )

    # (locator, task, its parent task or None): nested subtasks follow their parent
    flat: list[tuple[str, Any, dict[str, Any] | None]] = []

    def walk(items: list[Any], where: str, parent: dict[str, Any] | None) -> None:
        for i, task in enumerate(items):
            locator = f"{where}[{i}]"
            flat.append((locator, task, parent))
            if isinstance(task, dict) and isinstance(task.get("subtasks"), list):
                walk(task["subtasks"], f"{locator}.subtasks", task)

    walk(tasks, "data" if shape == "asana-json" else "", None)
    children: dict[str, int] = {}
    for _, task, parent in flat:
        ref = (
            _gid(parent)
            if parent is not None
            else _gid(task.get("parent"))
            if isinstance(task, dict)
            else None
        )
        if ref:
            children[ref] = children.get(ref, 0) + 1
    by_gid = {_gid(task): task for _, task, _ in flat if isinstance(task, dict) and _gid(task)}

    parsed = ParsedFile(encoding=encoding, shape=shape)
    for locator, task, parent in flat:
        if not isinstance(task, dict):
            parsed.rejects.append(Reject.not_an_object(locator, task, "an Asana task object"))
            continue
        gid = _gid(task)
        payload = canonical_json({k: v for k, v in task.items() if k != "subtasks"})  # each subtask: its own
        try:
            row = _json_task(task, gid, parent or by_gid.get(_gid(task.get("parent")) or ""), children, path)
        except _Bad as bad:
            parsed.rejects.append(Reject(locator, f"{locator} (gid {gid or '?'}): {bad}", payload))
            continue
        parsed.add("tasks", {**row, "locator": locator, "payload": payload})
    return parsed


def _gid(obj: Any) -> str | None:
    """An Asana object's gid (a string; an old export's numeric id is read as its digits), or None."""
    if not isinstance(obj, dict):
        return None
    gid = obj.get("gid", obj.get("id"))
    if isinstance(gid, bool) or gid is None:
        return None
    if isinstance(gid, int):
        return str(gid)
    return gid.strip() or None if isinstance(gid, str) else None


def _name(obj: Any) -> str:
    name = obj.get("name") if isinstance(obj, dict) else None
    return name.strip() if isinstance(name, str) else ""


def _json_date(task: dict[str, Any], key: str, required: bool = False) -> datetime | None:
    value = task.get(key)
    if value is not None and not isinstance(value, str):
        raise _Bad(f"'{key}' = {value!r} is not a date")
    return _checked_day(value or "", key, required, "is missing", "ISO 8601, e.g. 2024-01-31T09:30:00.000Z")


def _projects(task: dict[str, Any]) -> list[str]:
    """The names of a task's projects: its memberships' first, then its ``projects``."""
    names = [_name(m.get("project")) for m in _named_list(task, "memberships")]
    names += [_name(p) for p in _named_list(task, "projects")]
    return [name for name in names if name]


def _named_list(task: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = task.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"'{key}' is a {type(value).__name__}, not a list")
    return [v for v in value if isinstance(v, dict)]


def _json_task(
    task: dict[str, Any], gid: str | None, parent: dict[str, Any] | None, children: dict[str, int], path: Path
) -> dict[str, Any]:
    if not gid:
        raise _Bad("'gid' is missing or empty")
    name = task.get("name")
    if name is not None and not isinstance(name, str):
        raise _Bad(f"'name' = {name!r} is not text")
    created = _json_date(task, "created_at", required=True)
    completed_at = _json_date(task, "completed_at")
    if task.get("completed") is True and completed_at is None:
        raise _Bad("completed, but 'completed_at' is missing: export with the completed_at field")
    modified = _json_date(task, "modified_at")
    due = _json_date(task, "due_at") or _json_date(task, "due_on")
    memberships = _named_list(task, "memberships")
    projects = _projects(task) or (_projects(parent) if parent is not None else [])
    sections = [_name(m.get("section")) for m in memberships if _name(m.get("section"))]
    tags = [_name(t) for t in _named_list(task, "tags") if _name(t)]
    priority = None
    for field_ in _named_list(task, "custom_fields"):
        if _name(field_).lower() == "priority":
            shown = field_.get("display_value")
            if shown is None and isinstance(field_.get("enum_value"), dict):
                shown = field_["enum_value"].get("name")
            priority = shown.strip() if isinstance(shown, str) and shown.strip() else None
    assignee = task.get("assignee")
    who = None
    if isinstance(assignee, dict):
        who = next(
            (
                v.strip()
                for v in (assignee.get("email"), assignee.get("name"))
                if isinstance(v, str) and v.strip()
            ),
            _gid(assignee),
        )
    n_subtasks = task.get("num_subtasks")
    if isinstance(n_subtasks, bool) or not isinstance(n_subtasks, int) or n_subtasks < 0:
        n_subtasks = children.get(gid, 0)
    # as the CSV export counts them: 0 when the export has no dependency fields
    links = len(_named_list(task, "dependencies")) + len(_named_list(task, "dependents"))
    notes = task.get("notes")
    return _task_row(
        gid,
        project=projects[0] if projects else path.stem,
        title=(name or "").strip(),
        subtask=parent is not None or _gid(task.get("parent")) is not None,
        priority=priority,
        section=sections[0] if sections else "",
        assignee=who,
        dates=(created, modified, completed_at, due),
        n_links=links,
        n_subtasks=n_subtasks,
        tags=tags,
        description_length=len(notes) if isinstance(notes, str) else 0,
    )


def _task_row(
    task_id: str,
    *,
    project: str,
    title: str,
    subtask: bool,
    priority: str | None,
    section: str,
    assignee: str | None,
    dates: tuple[datetime | None, ...],
    n_links: int,
    n_subtasks: int,
    tags: list[str],
    description_length: int,
) -> dict[str, Any]:
    """A task's columns, the same whichever export it came from: ``dates`` (created, modified, completed,
    due); the status is the section unless completed; the priority, when not given, from a tag.
    """
    created, modified, completed, due = dates
    if completed is not None:
        status, category = "Completed", "done"
    else:
        status = section if section and section != "(no section)" else "Open"
        category = "in_progress" if category_from_status_name(section) == "in_progress" else "todo"
    return {
        "task_id": f"asana:{task_id}",
        "source": SOURCE,
        "project": project,
        "key": task_id,
        "title": title,
        "type": "subtask" if subtask else "task",
        "priority": priority or (priority_from_labels(tags) if tags else None),
        "status": status,
        "status_category": category,
        "assignee_id": _pseudo(SOURCE, assignee or None),
        "reporter_id": None,
        "created_at": created,
        "updated_at": modified,
        "resolved_at": completed,
        "due_at": due,
        "deadline_at": due,
        "story_points": None,
        "original_estimate_h": None,
        "time_spent_h": None,
        "n_comments": None,
        "n_links": n_links,
        "n_subtasks": n_subtasks,
        "n_labels": len(tags),
        "description_length": description_length,
        "labels": ",".join(tags),
    }
