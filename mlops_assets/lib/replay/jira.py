"""Replay the Apache Jira REST files (``KEY.json``, ``KEY_CL.json``, ``KEY_Comment.json``) at any size.

Round ``r`` copies every issue once more with:

- project keys ``ANY23`` -> ``ANY23`` + the round's four-letter tag, so issue keys, links between
  issues of one round and ``[~mentions]`` stay consistent (issue numbers are kept);
- ids of five or more digits (issue, comment, changelog history, version, project ids, in ``"id"``
  and in ``self`` URLs) shifted by a per-round offset; small ids (status, priority, type) stay;
- dates (``2012-07-12T18:30:05.123+0000`` and bare ``"2014-05-15"``) moved by a whole number of
  days per round: only the date part changes, so order, durations and time zones stay exact;
- people (``name``/``key``/``displayName`` of user objects, ``username=`` URLs, ``[~mentions]``,
  assignee changes in the changelog) mapped to the round's synthetic people.

Each file keeps its bytes otherwise, including the 11 Latin-1 files' encoding. ``layout="pages"``
writes the ``_CL`` issue objects (fields, embedded comments and changelog) as search pages of 100.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlops_assets.lib.replay.common import (
    AtomicWriter,
    LikeDataError,
    Memo,
    People,
    SourceStats,
    Template,
    compile_text,
    decode,
    iso_shifter,
    letters,
    round_rng,
    shift_bounds,
    tag_index,
    user_name,
    write_bytes,
)

PAGE_SIZE = 100
ID_OFFSET = (
    10**8
)  # real Apache ids are below 2e7: round r adds (r + 1) hundred million (ids grow by 1-3 digits)
DATE, KEY, PROJECT, ID, USER, DISPLAY = range(6)
_SUFFIXES = ("", "_CL", "_Comment")
_FIELD = r'"(?P<f>id|key|name|displayName|fromString|toString|from|to)": "(?P<fv>[^"\\]*)"'
# The leading lookahead lets the regex engine skip most positions at once (compiling 22 MB: 8 s -> 4 s).
_INNER = (
    r"(?=[12/uo\[{initials}])(?:(?P<d>[12][09]\d\d-[01]\d-[0-3]\d)(?=T\d\d:\d\d|\")"
    r"|(?P<k>(?:{projects})-\d+)\b"
    r"|/(?P<u>\d{{5,}})(?=[/\"?&])"
    r"|(?:username=|ownerId=|\[~)(?P<p>[^\"&\]\\\s]+))"
)


class JiraTemplates:
    """The real issues, each compiled once: three templates per issue, plus what the rounds need."""

    def __init__(self, folder: Path) -> None:
        files = sorted(folder.glob("*.json"))
        keys = [p.stem for p in files if not p.stem.endswith(("_CL", "_Comment"))]
        missing = [
            f"{k}{s}.json" for k in keys for s in _SUFFIXES[1:] if not (folder / f"{k}{s}.json").exists()
        ]
        if not keys or missing:
            raise LikeDataError(
                f"{folder} must hold Jira issues as KEY.json + KEY_CL.json + KEY_Comment.json "
                f"(found {len(keys)} issues; missing {missing[:3]})"
            )
        self.keys = keys
        self.people = People()
        texts: list[list[tuple[str, str]]] = []
        for key in keys:
            per_issue = []
            for suffix in _SUFFIXES:
                text, encoding = decode((folder / f"{key}{suffix}.json").read_bytes())
                _collect_people(json.loads(text), self.people)
                per_issue.append((text, encoding))
            texts.append(per_issue)
        self.projects = sorted({k.rsplit("-", 1)[0] for k in keys})
        alternation = "|".join(re.escape(p) for p in sorted(self.projects, key=len, reverse=True))
        initials = "".join(sorted({re.escape(p[0]) for p in self.projects}))
        self._inner = re.compile(_INNER.format(projects=alternation, initials=initials))
        self._outer = re.compile(
            r'(?=["12/uo\[' + initials + "])(?:" + _FIELD + "|" + self._inner.pattern + ")"
        )
        self._key = re.compile(rf"(?:{alternation})-\d+")
        self.dates: list[str] = []
        self.issues: list[tuple[Template, Template, Template]] = [
            tuple(compile_text(t, self._outer, self._classify, enc) for t, enc in per_issue)  # type: ignore[misc]
            for per_issue in texts
        ]
        self.sizes = [sum(len(t.encode(enc)) for t, enc in per_issue) for per_issue in texts]
        self.shift_range = shift_bounds(self.dates)

    def _classify(self, m: re.Match) -> list[tuple[int, int, int, Any]]:
        f = m.group("f")
        if f is None:
            return self._inner_slot(m, 0)
        v = m.group("fv")
        start, end = m.span("fv")
        if f == "id" or f in ("from", "to"):
            if len(v) >= 5 and v.isdigit():
                return [(start, end, ID, v)]
        if self._key.fullmatch(v):
            return [(start, end, KEY, v)]
        if f == "key" and v in self.projects:
            return [(start, end, PROJECT, v)]
        if f != "displayName" and v in self.people.index:
            if f in ("name", "key", "from", "to") or v not in self.people.display:
                return [(start, end, USER, v)]
        if f in ("displayName", "fromString", "toString") and v in self.people.display:
            return [(start, end, DISPLAY, v)]
        return [s for sub in self._inner.finditer(v) for s in self._inner_slot(sub, start)]

    def _inner_slot(self, m: re.Match, base: int) -> list[tuple[int, int, int, Any]]:
        kind = m.lastgroup
        value = m.group(kind)
        start, end = m.span(kind)
        if kind == "d":
            self.dates.append(value)
            return [(base + start, base + end, DATE, value)]
        if kind == "k":
            if start and (m.string[start - 1].isalnum() or m.string[start - 1] == "_"):
                return []  # "MCB-12" is not issue CB-12
            return [(base + start, base + end, KEY, value)]
        if kind == "u":
            return [(base + start, base + end, ID, value)]
        if value in self.people.index and value not in self.people.display:
            return [(base + start, base + end, USER, value)]
        return []


def _collect_people(doc: Any, people: People) -> None:
    """Register every user object (``self`` pointing at ``/user?``) of a parsed issue file."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "/user?" in str(node.get("self", "")) and ("name" in node or "displayName" in node):
                people.add(node.get("name"), node.get("key"), display=node.get("displayName"))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def round_maps(t: JiraTemplates, seed: int, r: int) -> list[dict]:
    """The slot maps of round ``r``: the same real value always becomes the same new value."""
    ti = tag_index(seed, "jira", r)
    tag = letters(ti)
    rng = round_rng(seed, "jira", r)
    offset = (r + 1) * ID_OFFSET
    days = rng.randint(*t.shift_range)
    people_offset = rng.randrange(1 << 30)

    def key(v: str) -> str:
        project, number = v.rsplit("-", 1)
        return f"{project}{tag}-{number}"

    def user(v: str) -> str:
        return user_name(*t.people.person(v, people_offset))

    def display(v: str) -> str:
        first, last, _ = t.people.person(v, people_offset)
        return f"{first} {last}"

    return [Memo(iso_shifter(days)), Memo(key), Memo(lambda p: p + tag), Memo(lambda v: str(int(v) + offset)),
            Memo(user), Memo(display)]  # fmt: skip


def generate(t: JiraTemplates, out: Path, n_tasks: int, seed: int, layout: str) -> SourceStats:
    """Write ``n_tasks`` issues into ``out/jira``: three files per issue, or search pages of 100."""
    stats = SourceStats(tasks=n_tasks)
    n_templates = len(t.issues)
    folder = out / "jira" / ("issues" if layout == "files" else "search")
    folder.mkdir(parents=True, exist_ok=True)
    maps: list[dict] = []
    writer: AtomicWriter | None = None
    for i in range(n_tasks):
        r, j = divmod(i, n_templates)
        if j == 0:
            maps = round_maps(t, seed, r)
        issue = t.issues[j]
        if layout == "files":
            new_key = maps[KEY][t.keys[j]]
            for suffix, template in zip(_SUFFIXES, issue, strict=True):
                data = template.render(maps).encode(template.encoding)
                write_bytes(folder / f"{new_key}{suffix}.json", data, stats)
            continue
        if i % PAGE_SIZE == 0:
            if writer is not None:
                writer.write("\n]}\n")
                writer.__exit__(None, None, None)
            writer = AtomicWriter(folder / f"search-{seed}-{i // PAGE_SIZE:06d}.json", stats)
            writer.write(f'{{"startAt": {i}, "maxResults": {PAGE_SIZE}, "total": {n_tasks}, "issues": [\n')
        else:
            writer.write(",\n")  # type: ignore[union-attr]
        writer.write(issue[1].render(maps))  # type: ignore[union-attr]
    if writer is not None:
        writer.write("\n]}\n")
        writer.__exit__(None, None, None)
    return stats
