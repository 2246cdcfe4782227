"""Real-shaped landing zones at any size: replay real exports with new keys, ids, people and dates.

``generate_like(like_dir, out, n_tasks)`` reads the real files under ``like_dir`` (never copied
into the repository) and writes ``n_tasks`` tasks into a landing zone, in the synthetic sample's
source proportions (:data:`SHARES`). Each source has its module: :mod:`.jira` (the Apache REST
issue, changelog and comment files, one file per issue or search pages), :mod:`.csv_export` (the
Jira CSV export, as ``jira/`` CSV and as a mapped ``csv/`` file), :mod:`.github`, :mod:`.trello`,
:mod:`.asana`; :mod:`.common` holds the template engine they share.

Every record is new (keys carry a per-round tag, ids a per-round offset, people and dates are
rewritten), so a replayed landing zone never collides with the real files or with another seed's.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops_assets.lib.replay import asana, csv_export, github, jira, trello
from mlops_assets.lib.replay.common import LikeDataError

__all__ = ["SHARES", "LikeDataError", "generate_like"]

# The synthetic sample's shares (lib/synthetic/world.py PROJECTS): Jira API 0.37, Jira CSV 0.08, ...
SHARES = {"jira": 0.37, "jira_csv": 0.08, "github": 0.20, "asana": 0.15, "trello": 0.10, "csv": 0.10}
LAYOUTS = ("files", "pages")
EXPECTED = {
    "jira": ("jira-apache-ase2015/issues", "*.json"),
    "github": ("exports/github", "*.json"),
    "trello": ("exports/trello", "*.json"),
    "jira_csv": ("exports/jira-csv", "*.csv"),
    "asana": ("exports/asana", "*.csv"),
}


def task_counts(n_tasks: int) -> dict[str, int]:
    """Tasks per source for ``n_tasks``: the shares, rounded so they sum to ``n_tasks`` exactly."""
    raw = {s: n_tasks * share for s, share in SHARES.items()}
    counts = {s: int(v) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: raw[s] - counts[s], reverse=True)[: n_tasks - sum(counts.values())]:
        counts[s] += 1
    return counts


def _template_file(like_dir: Path, source: str) -> Path:
    folder, glob = EXPECTED[source]
    files = sorted((like_dir / folder).glob(glob)) if (like_dir / folder).is_dir() else []
    if not files:
        expected = "\n".join(f"  {like_dir / f}/{g}" for f, g in EXPECTED.values())
        raise LikeDataError(
            f"--like {like_dir}: no {glob} files in {like_dir / folder}. The folder must hold the real "
            f"exports as in ../shared/data:\n{expected}"
        )
    return files[0]


@lru_cache(maxsize=2)
def load_templates(like_dir: Path) -> dict[str, Any]:
    """Every source's templates, compiled once per process (the Jira files take a few seconds)."""
    if not like_dir.is_dir():
        raise LikeDataError(
            f"--like {like_dir}: no such folder (expected the real data folder, e.g. ../shared/data)"
        )
    paths = {s: _template_file(like_dir, s) for s in EXPECTED}
    return {
        "jira": jira.JiraTemplates(paths["jira"].parent),
        "jira_csv": csv_export.JiraCsvTemplate(paths["jira_csv"]),
        "github": github.GithubTemplate(paths["github"]),
        "trello": trello.TrelloTemplate(paths["trello"]),
        "asana": asana.AsanaTemplate(paths["asana"]),
    }


def generate_like(
    like_dir: Path | str, out: Path | str, n_tasks: int, seed: int = 7, jira_layout: str = "files"
) -> dict[str, Any]:
    """Write ``n_tasks`` real-shaped tasks into the landing zone ``out``; returns per-source files, tasks, bytes."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be at least 1, got {n_tasks}")
    if jira_layout not in LAYOUTS:
        raise ValueError(f"jira_layout must be one of {LAYOUTS}, got {jira_layout!r}")
    started = time.perf_counter()
    templates = load_templates(Path(like_dir).resolve())
    out = Path(out)
    counts = task_counts(n_tasks)
    stats = {
        "jira": jira.generate(templates["jira"], out, counts["jira"], seed, jira_layout),
        "jira_csv": csv_export.generate(templates["jira_csv"], out, counts["jira_csv"], seed, "jira_csv"),
        "github": github.generate(templates["github"], out, counts["github"], seed),
        "asana": asana.generate(templates["asana"], out, counts["asana"], seed),
        "trello": trello.generate(templates["trello"], out, counts["trello"], seed),
        "csv": csv_export.generate(templates["jira_csv"], out, counts["csv"], seed, "csv"),
    }
    return {
        "tasks": n_tasks,
        "seed": seed,
        "jira_layout": jira_layout,
        "seconds": round(time.perf_counter() - started, 2),
        "sources": {s: st.as_dict() for s, st in stats.items()},
    }
