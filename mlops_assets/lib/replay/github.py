"""Replay a real GitHub issues page (``GET /repos/{owner}/{repo}/issues?state=all``) at any size.

Each round writes the whole page again (the same 100 items, pull requests included, since a real
page mixes them) with:

- the repository renamed per group of ``ROUNDS_PER_REPO`` rounds (``matomo-org/matomo`` ->
  ``matomo-org/matomo-<tag>``), issue numbers moved by ``NUMBER_STEP`` per round within a repository,
  in ``number`` and in the issue/pull URLs;
- ids (issues, labels, milestones, ...) shifted by a per-round offset, ``node_id`` re-encoded to match;
- users (``login``, ``id``, their URLs, avatars and ``node_id``) mapped to the round's people;
- ISO dates moved by whole days.

The page's text (one line, collapsed spaces) is kept otherwise. The last page holds only as many
items as reach the task count; pull requests are not tasks, so pages carry more items than tasks.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from mlops_assets.lib.replay.common import (
    AtomicWriter,
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
)

ROUNDS_PER_REPO = 20
NUMBER_STEP = 10_000  # larger than the page's span of numbers, so rounds of one repository never collide
ID_OFFSET = 10**9
USER_ID_BASE = 50_000_000
DATE, REPO, NUMBER, ID, LOGIN, USER_ID, NODE = range(7)
_PATTERN = re.compile(
    r'"(?P<f>id|number)": (?P<n>\d+)(?=[,} ])'
    r'|"node_id": "(?P<node>[A-Za-z0-9+/=]+)"'
    r'|"login": "(?P<login>[^"\\]+)"'
    r'|/(?:users/|u/|github\.com/)?(?P<path>[A-Za-z0-9-]+)(?=[/"?])'
    r'|(?P<d>\d{4}-\d\d-\d\d)(?=T\d\d:\d\d:\d\dZ")'
)


class GithubTemplate:
    """The page split into one template per item (so a last page can stop at any item)."""

    def __init__(self, path: Path) -> None:
        text, self.encoding = decode(path.read_bytes())
        doc = json.loads(text)
        if not isinstance(doc, list) or not doc:
            raise ValueError(f"{path} is not a GitHub issues page (a JSON list of issues)")
        self.repo = re.search(r"/repos/([^/]+/[^/\"]+)", doc[0]["repository_url"]).group(1)
        self.owner, self.name = self.repo.split("/")
        self.people = People()
        self.user_ids: dict[int, str] = {}
        stack: list[Any] = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "login" in node and "id" in node:
                    self.people.add(node["login"])
                    self.user_ids[node["id"]] = node["login"]
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        self.numbers = {str(item["number"]) for item in doc}
        self.is_task = ["pull_request" not in item for item in doc]
        # Cut the page text at its items: the top-level list's elements, found by bracket depth.
        self.head, self.items, self.separators, self.tail = _split_list(text)
        self.dates: list[str] = []
        self.templates: list[Template] = [compile_text(t, _PATTERN, self._classify) for t in self.items]
        self.shift_range = shift_bounds(self.dates)

    def _classify(self, m: re.Match) -> list[tuple[int, int, int, Any]]:
        kind = m.lastgroup
        if kind == "n":
            v = m.group("n")
            if m.group("f") == "number":
                return [(*m.span("n"), NUMBER, v)] if v in self.numbers else []
            if int(v) in self.user_ids:
                return [(*m.span("n"), USER_ID, v)]
            return [(*m.span("n"), ID, v)] if len(v) >= 5 else []
        if kind == "node":
            return [(*m.span("node"), NODE, m.group("node"))]
        if kind == "login":
            return [(*m.span("login"), LOGIN, m.group("login"))]
        if kind == "d":
            self.dates.append(m.group("d"))
            return [(*m.span("d"), DATE, m.group("d"))]
        v = m.group("path")
        before = m.string[max(0, m.start() - 24) : m.start("path")]
        if v == self.name and before.endswith(f"{self.owner}/"):
            return [(*m.span("path"), REPO, v)]
        if v in self.numbers and before.endswith(("/issues/", "/pull/", "/pulls/")):
            return [(*m.span("path"), NUMBER, v)]
        if v in self.people and before.endswith(("/users/", "github.com/")):
            return [(*m.span("path"), LOGIN, v)]
        if v.isdigit() and before.endswith("/u/") and int(v) in self.user_ids:
            return [(*m.span("path"), USER_ID, v)]
        return []


def _split_list(text: str) -> tuple[str, list[str], list[str], str]:
    """A JSON list's text -> (text before the first item, item texts, separators, text after)."""
    depth, in_str, esc = 0, False, False
    starts, ends = [], []
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth == 2:
                starts.append(i)
        elif ch in "]}":
            if depth == 2:
                ends.append(i + 1)
            depth -= 1
    items = [text[s:e] for s, e in zip(starts, ends, strict=True)]
    seps = [text[e:s] for e, s in zip(ends, starts[1:], strict=False)]
    return text[: starts[0]], items, seps, text[ends[-1] :]


def round_maps(t: GithubTemplate, seed: int, r: int) -> list[dict]:
    ti = tag_index(seed, "github", r)
    repo_tag = letters(tag_index(seed, "github", r // ROUNDS_PER_REPO)).lower()
    step = (r % ROUNDS_PER_REPO) * NUMBER_STEP
    rng = round_rng(seed, "github", r)
    days = rng.randint(*t.shift_range)
    people_offset = rng.randrange(1 << 30)
    offset = (ti + 1) * ID_OFFSET

    def login(v: str) -> str:
        return user_name(*t.people.person(v, people_offset))

    def user_id(v: str) -> str:
        return str(USER_ID_BASE + t.people.person(t.user_ids[int(v)], people_offset)[2])

    def node(v: str) -> str:
        try:
            prefix, kind, number = re.fullmatch(
                r"(\d+:)([A-Za-z]+)(\d+)", base64.b64decode(v).decode()
            ).groups()
        except (ValueError, AttributeError):
            return v
        new = user_id(number) if kind == "User" and int(number) in t.user_ids else str(int(number) + offset)
        return base64.b64encode(f"{prefix}{kind}{new}".encode()).decode()

    return [Memo(iso_shifter(days)), Memo(lambda v: f"{v}-{repo_tag}"), Memo(lambda v: str(int(v) + step)),
            Memo(lambda v: str(int(v) + offset)), Memo(login), Memo(user_id), Memo(node)]  # fmt: skip


def generate(t: GithubTemplate, out: Path, n_tasks: int, seed: int) -> SourceStats:
    """Write pages of the real page's items into ``out/github/<repo>/`` until ``n_tasks`` issues."""
    stats = SourceStats()
    r = 0
    while stats.tasks < n_tasks:
        maps = round_maps(t, seed, r)
        repo = maps[REPO][t.name]
        path = out / "github" / repo / f"issues-page-{r % ROUNDS_PER_REPO + 1:03d}.json"
        with AtomicWriter(path, stats, encoding=t.encoding) as w:
            w.write(t.head)
            for i, template in enumerate(t.templates):
                if stats.tasks >= n_tasks:
                    break
                if i:
                    w.write(t.separators[i - 1])
                w.write(template.render(maps))
                stats.tasks += t.is_task[i]
            w.write(t.tail)
        r += 1
    return stats
