"""Replay a real Jira Cloud "Export CSV (all fields)" as Jira CSV files and as mapped CSV files.

The same export lands twice, as users drop it: into ``jira/`` (read by the Jira parser's CSV
branch) and into ``csv/`` beside a YAML mapping (read by :mod:`csv_mapped`; the mapping is ours,
:data:`MAPPING`, written next to every file: the real export does not come with one). Each round
rewrites, inside every cell (comment cells ``date;account id;body`` and links included):

- the project key (``TES`` -> ``TES`` + the round's tag: issue keys, sprints and links follow),
- issue ids (the ``Issue id`` values) shifted by a per-round offset,
- people (names and account ids of the name/``... Id`` columns) mapped to the round's people,
- dates ``22/Sep/25 9:26 AM``: the date part moved by whole days (the time stays).

Rows keep their 56 columns, repeated names (Watchers, Comment, ...) and quoting; files hold up to
``ROWS_PER_FILE`` rows (Jira Cloud's CSV export stops at 1,000 issues).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mlops_assets.lib.replay.common import (
    AtomicWriter,
    Memo,
    People,
    SourceStats,
    Template,
    compile_text,
    hex_suffix,
    letters,
    round_rng,
    shift_bounds,
    tag_index,
)

ROWS_PER_FILE = 1000
ID_OFFSET = 10**5
DATE, PROJECT, ISSUE_ID, NAME, ACCOUNT = range(5)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FORMAT = "%d/%b/%y %I:%M %p"
MAPPING = f"""\
# Written by `mlops-assets generate --like`: Jira's "Export CSV (all fields)" read as a mapped CSV.
source_name: jira-export
key: {{column: Issue key}}
project: {{column: Project key}}
title: Summary
type: {{column: Issue Type}}
priority: Priority
status: Status
status_category: {{column: Status Category, map: {{"To Do": todo, "In Progress": in_progress, Done: done}}}}
assignee: {{column: Assignee Id}}
reporter: {{column: Reporter Id}}
created_at: {{column: Created, format: "{_FORMAT}"}}
updated_at: {{column: Updated, format: "{_FORMAT}"}}
resolved_at: {{column: Resolved, format: "{_FORMAT}"}}
due_at: {{column: Due date, format: "{_FORMAT}"}}
story_points: {{column: Custom field (Story Points)}}
description: Description
"""


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


class JiraCsvTemplate:
    """The export's header once and each row compiled into a template."""

    def __init__(self, path: Path) -> None:
        text = path.read_bytes().decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], [r for r in rows[1:] if any(c.strip() for c in r)]
        if "Issue key" not in header or "Summary" not in header:
            raise ValueError(f"{path} is not a Jira CSV export (its header lacks 'Issue key' and 'Summary')")
        self.header = _csv_line(header)
        col = {name: [i for i, h in enumerate(header) if h == name] for name in header}
        values = lambda names: {r[i] for n in names for i in col.get(n, ()) for r in body if r[i]}  # noqa: E731
        self.projects = values(["Project key"])
        self.issue_ids = values(["Issue id"])
        name_cols = [h for h in col if h in ("Assignee", "Reporter", "Creator", "Project lead", "Watchers")]
        self.people = People()
        for n in name_cols:  # a name and its "... Id" column describe the same person
            for i, j in zip(col[n], col.get(f"{n} Id", col.get(f"{n} id", [])), strict=False):
                for r in body:
                    if r[i]:
                        self.people.add(r[j] or None, display=r[i])
        self.accounts = {a for a in self.people.index if a not in self.people.display}
        alternation = "|".join(re.escape(v) for v in sorted(self.people.index, key=len, reverse=True))
        pattern = re.compile(
            r"(?P<d>\d{2}/[A-Z][a-z]{2}/\d{2})(?= \d{1,2}:\d{2} [AP]M)"
            rf"|(?<![\w-])(?P<p>{'|'.join(map(re.escape, self.projects))})(?![\w])"
            rf"|(?<![\w-])(?P<i>{'|'.join(map(re.escape, self.issue_ids))})(?![\w])"
            rf"|(?<![\w:-])(?P<n>{alternation})(?![\w-])"
        )
        self.dates: list[str] = []
        self.rows: list[Template] = [compile_text(_csv_line(r), pattern, self._classify) for r in body]
        self.shift_range = shift_bounds(self.dates)

    def _classify(self, m: re.Match) -> list[tuple[int, int, int, Any]]:
        kind = m.lastgroup
        v = m.group(kind)
        if kind == "d":
            day, mon, yy = v.split("/")
            self.dates.append(date(2000 + int(yy), _MONTHS.index(mon) + 1, int(day)).isoformat())
            return [(*m.span(kind), DATE, v)]
        slot = {"p": PROJECT, "i": ISSUE_ID}.get(kind) or (ACCOUNT if v in self.accounts else NAME)
        return [(*m.span(kind), slot, v)]


def round_maps(t: JiraCsvTemplate, seed: int, source: str, r: int) -> list[dict]:
    ti = tag_index(seed, source, r)
    tag = letters(ti)
    rng = round_rng(seed, source, r)
    delta = timedelta(days=rng.randint(*t.shift_range))
    people_offset = rng.randrange(1 << 30)

    def shift(v: str) -> str:
        day, mon, yy = v.split("/")
        d = date(2000 + int(yy), _MONTHS.index(mon) + 1, int(day)) + delta
        return f"{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year % 100:02d}"

    def name(v: str) -> str:
        return "{} {}".format(*t.people.person(v, people_offset)[:2])

    def account(v: str) -> str:
        return hex_suffix(seed, "jira-account", str(t.people.person(v, people_offset)[2]), 24)

    return [Memo(shift), Memo(lambda p: p + tag), Memo(lambda v: str(int(v) + (ti + 1) * ID_OFFSET)),
            Memo(name), Memo(account)]  # fmt: skip


def generate(t: JiraCsvTemplate, out: Path, n_tasks: int, seed: int, source: str) -> SourceStats:
    """Write ``n_tasks`` rows as Jira CSV files into ``out/jira`` (source ``jira_csv``) or mapped into ``out/csv``."""
    stats = SourceStats(tasks=n_tasks)
    folder = out / ("jira" if source == "jira_csv" else "csv")
    per_round = len(t.rows)
    rounds_per_file = max(1, ROWS_PER_FILE // per_round)
    r = 0
    n_file = 0
    while r * per_round < n_tasks:
        stem = f"jira-export-{seed}-{n_file:04d}"
        with AtomicWriter(folder / f"{stem}.csv", stats, newline="") as w:
            w.write(t.header)
            for _ in range(rounds_per_file):
                left = n_tasks - r * per_round
                if left <= 0:
                    break
                maps = round_maps(t, seed, source, r)
                for template in t.rows[:left]:
                    w.write(template.render(maps))
                r += 1
        if source == "csv":
            with AtomicWriter(folder / f"{stem}.yaml", stats) as w:
                w.write(MAPPING)
        n_file += 1
    return stats
