"""The seeded synthetic sample: a ground-truth task table and its landing files in each tool's native format.

:func:`synthetic_tasks` simulates the latent truth (one row per task, in the shape of ``clean.tasks``
plus the source spellings, identities and status-change times); :func:`generate` writes it as the
files the tools themselves export (Jira REST search pages and an "all fields" CSV, GitHub issue
list pages with pull requests mixed in, Asana project CSVs, Trello board JSON, a generic CSV with its
YAML mapping). Everything is deterministic for a seed: fixed calendar anchors, one numpy generator.

Delivery is driven by information available when a task is created, so the models have real signal
to find: priority and type, size (story points, estimate, description length), the deadline horizon,
the team, the assignee's skill and open workload at creation, a December slow-down, plus noise.
Planners set deadlines from what they see (size, type, priority) and cannot see workload or skill,
which is why some tasks end up late.

One module per source, as in :mod:`mlops_assets.lib.sources`: :mod:`.jira` (REST search pages and
the CSV export), :mod:`.github`, :mod:`.asana`, :mod:`.trello`, :mod:`.csv_mapped` (the helpdesk
CSV and its mapping); :mod:`.common` holds the template engine they share. :mod:`.world` holds the
calendar, the organisation and the vocabularies, :mod:`.simulation` the latent task model and its
event histories (the drift batch included), :mod:`.truth` the ground-truth table and the source
spellings. This module keeps the public API: :func:`generate`, :func:`synthetic_tasks` and the calendar and
organisation constants (``mlops-assets generate`` is in :mod:`mlops_assets.cli`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from mlops_assets.lib.synthetic.asana import _write_asana
from mlops_assets.lib.synthetic.csv_mapped import _write_csv
from mlops_assets.lib.synthetic.github import _write_github
from mlops_assets.lib.synthetic.jira import _write_jira_api, _write_jira_csv
from mlops_assets.lib.synthetic.simulation import _simulate
from mlops_assets.lib.synthetic.trello import _write_trello
from mlops_assets.lib.synthetic.truth import _truth, synthetic_tasks
from mlops_assets.lib.synthetic.world import (
    CANONICAL_PRIORITIES,
    CANONICAL_TYPES,
    DAY,
    DEFECT_RATE,
    DRIFT_EXPORT,
    DRIFT_PROJECT,
    DRIFT_START,
    DRIFT_TEAM,
    MAIN_EXPORT,
    MAIN_START,
    PAGE_SIZE,
    PR_SHARE,
    PROJECTS,
    TEAMS,
    US,
    Person,
    Project,
    Team,
)

__all__ = [
    "CANONICAL_PRIORITIES",
    "CANONICAL_TYPES",
    "DAY",
    "DEFECT_RATE",
    "DRIFT_EXPORT",
    "DRIFT_PROJECT",
    "DRIFT_START",
    "DRIFT_TEAM",
    "MAIN_EXPORT",
    "MAIN_START",
    "PAGE_SIZE",
    "PR_SHARE",
    "PROJECTS",
    "TEAMS",
    "US",
    "Person",
    "Project",
    "Team",
    "generate",
    "synthetic_tasks",
]

log = logging.getLogger(__name__)


# the landing zone -----------------------------------------------------------------------------------


def generate(
    out_dir: Path, n_tasks: int = 6000, seed: int = 7, drift: bool = False, main_tasks: int = 6000
) -> dict[str, Any]:
    """Write a synthetic batch into ``out_dir/<source>/`` in each tool's native format; returns a summary.

    The summary has, per source, the files written, the tasks in them, the records (tasks plus the
    deliberate duplicates), the deliberately broken records and the pull requests mixed in.
    """
    out_dir = Path(out_dir)
    sim = _simulate(n_tasks, seed, drift, main_tasks)
    truth = _truth(sim)
    tag = "-drift" if drift else ""
    people_by_login = {p.login: p for p in sim.people}
    summary: dict[str, Any] = {"seed": seed, "drift": drift, "tasks": n_tasks, "sources": {}}
    first_of = {"jira": True, "github": True}
    for project_id, project in enumerate(sim.projects, start=1):
        t = truth.filter(pl.col("project") == project.key)
        folder = out_dir / project.source
        folder.mkdir(parents=True, exist_ok=True)
        pool = {
            login: p
            for login, p in people_by_login.items()
            if p.team == project.team and p.source == project.source
        }
        duplicate = False
        n_pr = 0
        if project.source == "jira" and project.layout == "api":
            duplicate, first_of["jira"] = first_of["jira"] and len(t) > PAGE_SIZE, False
            paths = _write_jira_api(t, project, project_id, pool, sim.export, folder, tag, duplicate)
        elif project.source == "jira":
            paths = _write_jira_csv(t, project, project_id, pool, folder, tag)
        elif project.source == "github":
            duplicate, first_of["github"] = first_of["github"] and len(t) > PAGE_SIZE, False
            paths, n_pr = _write_github(t, project, project_id, pool, sim.export, folder, tag, duplicate)
        elif project.source == "asana":
            paths = _write_asana(t, project, pool, folder, tag)
        elif project.source == "trello":
            paths = _write_trello(t, project, project_id, pool, sim.export, folder, tag)
        else:
            paths = _write_csv(t, project, folder, tag)
        entry = summary["sources"].setdefault(
            project.source,
            {"files": [], "tasks": 0, "records": 0, "defects": 0, "duplicates": 0, "pull_requests": 0},
        )
        entry["files"] += [str(p.relative_to(out_dir)) for p in paths]
        entry["tasks"] += len(t)
        entry["records"] += len(t) + int(duplicate)
        entry["duplicates"] += int(duplicate)
        entry["defects"] += t["defect"].is_not_null().sum()
        entry["pull_requests"] += n_pr
    log.info("wrote %d synthetic tasks (seed %d%s) to %s", n_tasks, seed, ", drift" if drift else "", out_dir)
    return summary
