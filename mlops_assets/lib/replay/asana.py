"""Replay Asana's 16-column project CSV export (``exports/asana/*.csv``) at any size.

Rows are rewritten cell by cell (the file is small, the rules are per column): ``Task ID`` and
dependency ids shifted by a per-round offset; the dates moved by whole days; task names (and the
``Parent task`` / dependency cells that name a task) tagged with the round, so a subtask still
finds its parent and no name repeats across rounds of one file; ``Projects`` tagged per file (one
export is one project's tasks); assignees mapped to synthetic people. Multi-line quoted notes,
emoji and the duplicated rows stay as they are (identical rows stay identical, so the parser drops
the same copies as in the real file). A file holds up to ``ROWS_PER_FILE`` rows.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mlops_assets.lib.replay.common import (
    AtomicWriter,
    People,
    SourceStats,
    iso_shifter,
    letters,
    round_rng,
    shift_bounds,
    tag_index,
)

ROWS_PER_FILE = 1000
ID_OFFSET = 10_000
_DATES = ("Created At", "Completed At", "Last Modified", "Start Date", "Due Date")
_NAMES = ("Name", "Parent task", "Blocked By (Dependencies)", "Blocking (Dependencies)")


class AsanaTemplate:
    """The export's header and rows, with the row count the parser turns into tasks per round."""

    def __init__(self, path: Path) -> None:
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
        self.header, self.rows = rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]
        missing = [c for c in ("Task ID", "Created At", "Completed At", "Name") if c not in self.header]
        if missing:
            raise ValueError(f"{path} is not an Asana project CSV export: it lacks the columns {missing}")
        self.col = {h: i for i, h in enumerate(self.header)}
        self.people = People()
        for r in self.rows:
            self.people.add(r[self.col["Assignee"]] if "Assignee" in self.col else None)
        self.shift_range = shift_bounds(
            [r[self.col[c]] for r in self.rows for c in _DATES if c in self.col and r[self.col[c]]]
        )
        # The parser emits rows identical in every column once: count tasks the same way.
        seen: set[tuple[str, ...]] = set()
        self.is_task = []
        for r in self.rows:
            self.is_task.append(tuple(r) not in seen)
            seen.add(tuple(r))


def _round(t: AsanaTemplate, seed: int, r: int) -> tuple:
    rng = round_rng(seed, "asana", r)
    ti = tag_index(seed, "asana", r)
    return iso_shifter(rng.randint(*t.shift_range)), rng.randrange(1 << 30), ti, letters(ti)


def _rewrite(t: AsanaTemplate, row: list[str], round_ctx: tuple, file_tag: str) -> list[str]:
    shift, people_offset, ti, tag = round_ctx
    out = list(row)
    for name, i in t.col.items():
        v = row[i]
        if not v:
            continue
        if name == "Task ID" and v.isdigit():
            out[i] = str(int(v) + (ti + 1) * ID_OFFSET)
        elif name in _DATES:
            out[i] = shift(v[:10]) + v[10:]
        elif name in _NAMES:
            parts = [p.strip() for p in v.split(",")] if name != "Name" and name != "Parent task" else [v]
            out[i] = ", ".join(
                str(int(p) + (ti + 1) * ID_OFFSET) if p.isdigit() else f"{p} {tag}" for p in parts
            )
        elif name == "Projects":
            out[i] = ", ".join(f"{p.strip()} {file_tag}" for p in v.split(","))
        elif name == "Assignee" and v in t.people:
            out[i] = "{} {}".format(*t.people.person(v, people_offset)[:2])
    return out


def generate(t: AsanaTemplate, out: Path, n_tasks: int, seed: int) -> SourceStats:
    """Write ``n_tasks`` Asana tasks into ``out/asana/`` in files of up to ROWS_PER_FILE rows."""
    stats = SourceStats()
    r = 0
    n_file = 0
    while stats.tasks < n_tasks:
        file_tag = letters(tag_index(seed, "asana", 50_000 + n_file))
        with AtomicWriter(out / "asana" / f"asana-{seed}-{n_file:04d}.csv", stats, newline="") as w:
            writer = csv.writer(w.fh, lineterminator="\n")
            writer.writerow(t.header)
            rows = 0
            while stats.tasks < n_tasks and rows + len(t.rows) <= max(ROWS_PER_FILE, len(t.rows)):
                ctx = _round(t, seed, r)
                for row, is_task in zip(t.rows, t.is_task, strict=True):
                    if is_task and stats.tasks >= n_tasks:
                        break
                    writer.writerow(_rewrite(t, row, ctx, file_tag))
                    stats.tasks += is_task
                    rows += 1
                r += 1
        n_file += 1
    return stats
