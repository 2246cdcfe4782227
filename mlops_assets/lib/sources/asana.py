"""Asana: the project CSV export (``<landing>/asana/*.csv``) to normalized task rows.

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

from mlops_assets.lib.sources.base import (
    DateOutOfRange,
    ParsedFile,
    Reject,
    SourceFormatError,
    canonical_json,
    category_from_status_name,
    csv_records,
    decode_bytes,
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
    """Parse one Asana project CSV export into tasks (bad rows rejected with the reason)."""
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
        project = projects[0] if projects else path.stem
        section = row[i_section].strip()
        if completed is not None:
            status, category = "Completed", "done"
        else:
            status = section if section and section != "(no section)" else "Open"
            category = "in_progress" if category_from_status_name(section) == "in_progress" else "todo"
        tags = _split(row[i_tags])
        priority = row[i_priority].strip() or (priority_from_labels(tags) if tags else None)
        assignee = row[i_email].strip() or row[i_assignee].strip()
        n_links = len(_split(row[i_blocked])) + len(_split(row[i_blocking]))
        parsed.add(
            "tasks",
            {
                "task_id": f"asana:{task_id}",
                "source": SOURCE,
                "project": project,
                "key": task_id,
                "title": name,
                "type": "subtask" if parent else "task",
                "priority": priority or None,
                "status": status,
                "status_category": category,
                "assignee_id": _pseudo(SOURCE, assignee),
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
                "n_subtasks": n_children[n],
                "n_labels": len(tags),
                "description_length": len(row[i_notes]),
                "labels": ",".join(tags),
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
    value = row[i].strip()
    if not value:
        if required:
            raise _Bad(f"'{name}' is empty")
        return None
    try:
        return _day(value)
    except DateOutOfRange as exc:
        raise _Bad(f"'{name}' = {value!r} {exc}") from None
    except ValueError:
        raise _Bad(f"'{name}' = {value!r} is not a date (expected YYYY-MM-DD, e.g. 2024-01-31)") from None
