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
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib.sources.base import pseudonymize

log = logging.getLogger(__name__)

US = 1_000_000
DAY = 86_400 * US
MAIN_START = datetime(2024, 9, 1, tzinfo=UTC)
MAIN_EXPORT = datetime(2026, 8, 31, 18, 0, tzinfo=UTC)
DRIFT_START = datetime(2026, 9, 1, tzinfo=UTC)
DRIFT_EXPORT = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)
DEFECT_RATE = 0.003
PR_SHARE = 0.25  # pull requests per GitHub issue mixed into the issue pages (not tasks)
PAGE_SIZE = 100

CANONICAL_PRIORITIES = ("lowest", "low", "medium", "high", "highest")
CANONICAL_TYPES = ("bug", "task", "story", "improvement", "epic", "subtask")


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * US


# --- the organisation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    name: str
    speed: float  # cycle-time multiplier (>1 slower)
    pools: tuple[tuple[str, int], ...]  # (source, members): a person works in one tool only


@dataclass(frozen=True)
class Project:
    key: str  # Jira key, repo, board or project name
    name: str
    source: str  # jira | github | asana | trello | csv
    team: str
    share: float
    layout: str = ""  # jira: "api" | "csv"; priority scheme below
    scheme: str = ""  # jira: "classic" (Blocker..Trivial) | "cloud" (Highest..Lowest)


TEAMS = (
    Team("platform", 1.00, (("jira", 10),)),
    Team("payments", 0.80, (("jira", 7), ("csv", 5))),
    Team("mobile", 1.35, (("github", 9),)),
    Team("web", 1.15, (("asana", 7), ("trello", 5))),
)
DRIFT_TEAM = Team("growth", 1.25, (("jira", 7),))

PROJECTS = (
    Project("PLAT", "Platform Services", "jira", "platform", 0.14, "api", "classic"),
    Project("CORE", "Core Libraries", "jira", "platform", 0.10, "api", "classic"),
    Project("PAY", "Payments", "jira", "payments", 0.13, "api", "cloud"),
    Project("OPS", "Operations", "jira", "payments", 0.08, "csv", "cloud"),
    Project("acme/mobile-app", "mobile-app", "github", "mobile", 0.12),
    Project("acme/design-system", "design-system", "github", "mobile", 0.08),
    Project("Website Relaunch", "Website Relaunch", "asana", "web", 0.15),
    Project("Campaigns", "Campaigns", "trello", "web", 0.10),
    Project("helpdesk", "Helpdesk", "csv", "payments", 0.10),
)
DRIFT_PROJECT = Project("GROW", "Growth Experiments", "jira", "growth", 0.15, "api", "cloud")

_FIRST = (
    "Anna", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
    "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Xavier",
    "Yara", "Zoe", "Amir", "Bea", "Carlos", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia",
    "Kenji", "Lea", "Marco", "Nadia", "Omar", "Priya", "Rafael", "Sofia", "Tomas", "Ula", "Viktor", "Ying",
)  # fmt: skip
_LAST = (
    "Keller", "Novak", "Schmidt", "Rossi", "Yilmaz", "Haddad", "Larsen", "Moreau", "Costa", "Weber",
    "Ivanova", "Bianchi", "Kowalski", "Nakamura", "Okafor", "Petrov", "Quintero", "Sato", "Torres",
    "Usman", "Varga", "Wagner", "Xu", "Zimmermann", "Berg", "Dubois", "Fischer", "Garcia", "Horvat",
    "Jensen", "Kaya", "Lindqvist", "Müller", "Nilsson", "Ortega", "Park",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    index: int
    team: str
    source: str
    name: str
    login: str
    account_id: str  # 24 hex: Jira Cloud accountId style and Trello member id


def _people(teams: tuple[Team, ...], first_index: int = 0) -> list[Person]:
    """Team members with stable fake names (independent of the seed, so identities do not churn)."""
    rng = np.random.default_rng(20240901 + first_index)
    out: list[Person] = []
    i = first_index
    for team in teams:
        for source, n in team.pools:
            for _ in range(n):
                first = _FIRST[(i * 7 + 3) % len(_FIRST)]
                last = _LAST[(i * 11 + 5) % len(_LAST)]
                login = f"{first[0].lower()}{last.lower().replace('ü', 'ue')}{i}"
                account = "".join(f"{b:02x}" for b in rng.integers(0, 256, 12))
                out.append(Person(i, team.name, source, f"{first} {last}", login, account))
                i += 1
    return out


# --- the simulation ---------------------------------------------------------------------------

_TYPE_P = np.array([0.30, 0.30, 0.20, 0.10, 0.03, 0.07])
_TYPE_SIZE = np.array([0.4, 0.9, 1.3, 1.0, 2.6, 0.1])  # log ideal effort (days)
_TYPE_EFFECT = np.array([-0.30, 0.0, 0.15, 0.10, 0.55, -0.20])
_PRIO_P = np.array([0.05, 0.20, 0.47, 0.20, 0.08])
_PRIO_P_DRIFT = np.array([0.03, 0.10, 0.30, 0.35, 0.22])
_PRIO_EFFECT = np.array([0.65, 0.35, 0.0, -0.45, -0.95])
_ABANDON_P = np.array([0.50, 0.30, 0.12, 0.05, 0.02])  # backlog items nobody ever finishes

_VERBS = (
    "Fix",
    "Add",
    "Update",
    "Refactor",
    "Investigate",
    "Remove",
    "Improve",
    "Document",
    "Migrate",
    "Test",
)
_OBJECTS = (
    "login timeout", "invoice export", "search index", "push notifications", "dark mode", "rate limiter",
    "payment retries", "cache invalidation", "onboarding flow", "CSV import", "audit log", "user avatars",
    "webhook delivery", "session handling", "report builder", "landing page", "newsletter signup",
    "API pagination", "password reset", "currency rounding", "build pipeline", "error banner",
    "café menu ☕", "date picker", "SSO integration", "file uploads", "billing page", "feature flags",
)  # fmt: skip
_CONTEXTS = (
    "on Android", "for EU customers", "in the admin UI", "after the upgrade", "under load", "in Safari",
    "for new accounts", "in the nightly job", "on the dashboard", "for large files", "", "", "", "",
)  # fmt: skip
_LABELS = ("backend", "frontend", "api", "security", "tech-debt", "customer", "ux", "infra")
_LOREM = (
    "The current behaviour differs from what users expect. Steps to reproduce are listed below. "
    "We agreed in the planning meeting to address this before the next release. Acceptance criteria: "
    "the change is covered by tests, documented, and reviewed by a second engineer. Logs and screenshots "
    "are attached where available. Related discussions happened in the team channel last week. "
) * 40


@dataclass
class _Sim:
    """The simulated batch as numpy arrays (internal; :func:`synthetic_tasks` exposes a table)."""

    n: int
    projects: tuple[Project, ...]
    people: list[Person]
    proj: np.ndarray
    number: np.ndarray
    ttype: np.ndarray
    prio: np.ndarray
    person: np.ndarray
    reporter: np.ndarray
    created: np.ndarray
    started: np.ndarray
    review: np.ndarray
    resolved: np.ndarray  # -1 when open at export
    deadline: np.ndarray  # midnight UTC of the deadline date, -1 when none
    deadline_kind: np.ndarray  # 0 none, 1 due date, 2 release / milestone
    release_idx: np.ndarray
    story_points: np.ndarray  # nan when not recorded
    estimate_h: np.ndarray
    spent_h: np.ndarray
    n_comments: np.ndarray
    n_links: np.ndarray
    n_subtasks: np.ndarray
    label_bits: np.ndarray
    desc_len: np.ndarray
    title_idx: np.ndarray  # (n, 3)
    load: np.ndarray
    defect: np.ndarray  # 0 none, 1 resolved before created, 2 missing required field
    parent: np.ndarray  # asana subtasks: index of the parent task, -1 otherwise
    export: int
    drift: bool
    # event history (Jira changelogs): -1 where none
    prev_person: np.ndarray  # the assignee before a hand-over
    reassigned: np.ndarray  # when the task was handed over to `person`
    blocked: np.ndarray  # moved back to the to-do column (blocked, waiting on someone) ...
    unblocked: np.ndarray  # ... and back in progress
    due_moved: np.ndarray  # when the due date was moved out ...
    due_from: np.ndarray  # ... from this date (midnight UTC) to `deadline`


def _creation_times(rng: np.random.Generator, n: int, start: int, export: int) -> np.ndarray:
    """Weekday working-hours creation times, fewer over the year-end holidays, slowly growing."""
    n_days = (export - start) // DAY + 1
    day0 = start // DAY
    days = day0 + np.arange(n_days)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
    month_day = days.astype("datetime64[D]")
    month = month_day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (month_day - month_day.astype("datetime64[M]")).astype(np.int64) + 1
    weight = np.where(weekday < 5, 1.0, 0.06)
    holidays = ((month == 12) & (dom >= 20)) | ((month == 1) & (dom <= 3))
    weight = weight * np.where(holidays, 0.35, 1.0) * (1.0 + 0.3 * np.arange(n_days) / n_days)
    day = rng.choice(days, size=n, p=weight / weight.sum())
    hour = np.clip(rng.normal(11.5, 2.6, n), 7.0, 19.9)
    t = day * DAY + (hour * 3600 * US).astype(np.int64) + rng.integers(0, 1000, n) * 1000
    return np.minimum(t, export - 3600 * US)


def _open_load(person: np.ndarray, created: np.ndarray, resolved: np.ndarray, t0: int) -> np.ndarray:
    """Each task's assignee's open task count at its creation (sort-based sweep, no per-task loop)."""
    load = np.zeros(len(person), dtype=np.int64)
    idx = np.nonzero(person >= 0)[0]
    if len(idx) == 0:
        return load
    who = person[idx].astype(np.int64)
    c = (created[idx] - t0) // US
    r = np.where(resolved[idx] < 0, (1 << 32) - 1, np.maximum((resolved[idx] - t0) // US, 0))
    ck, rk = (who << 32) + c, (who << 32) + np.minimum(r, (1 << 32) - 1)
    order = np.argsort(ck, kind="stable")
    cs, rs = ck[order], np.sort(rk)
    # both sorted arrays hold each person's tasks as one block starting at the same offset
    group_start = np.concatenate([[0], np.cumsum(np.bincount(who))[:-1]])[who[order]]
    created_before = np.searchsorted(cs, cs, "left") - group_start  # sorted needles: fast
    resolved_before = np.searchsorted(rs, cs, "right") - group_start
    out = np.empty(len(idx), dtype=np.int64)
    out[order] = created_before - resolved_before
    load[idx] = out
    return load


def _draw_projects(n: int, seed: int, drift: bool) -> tuple[tuple[Project, ...], np.ndarray]:
    projects = PROJECTS + ((DRIFT_PROJECT,) if drift else ())
    share = np.array([p.share for p in projects])
    if drift:
        share[:-1] *= (1 - DRIFT_PROJECT.share) / share[:-1].sum()
    rng = np.random.default_rng([seed, int(drift), 1])
    return projects, rng.choice(len(projects), size=n, p=share / share.sum())


def _number_offsets(main_tasks: int, seed: int) -> np.ndarray:
    """Per project, the highest number the main batch used (GitHub numbers count pull requests too)."""
    projects, proj = _draw_projects(main_tasks, seed, False)
    counts = np.bincount(proj, minlength=len(projects) + 1)
    for i, p in enumerate(projects):
        if p.source == "github":
            counts[i] += int(round(counts[i] * PR_SHARE))
    return counts


def _simulate(n_tasks: int, seed: int, drift: bool, main_tasks: int) -> _Sim:
    if n_tasks < 1:
        raise ValueError(f"n_tasks must be at least 1, got {n_tasks}")
    start, export = (_us(DRIFT_START), _us(DRIFT_EXPORT)) if drift else (_us(MAIN_START), _us(MAIN_EXPORT))
    projects, proj = _draw_projects(n_tasks, seed, drift)
    rng = np.random.default_rng([seed, int(drift), 2])
    n = n_tasks
    teams = {t.name: t for t in TEAMS + ((DRIFT_TEAM,) if drift else ())}
    people = _people(TEAMS) + (_people((DRIFT_TEAM,), first_index=100) if drift else [])

    created = np.sort(_creation_times(rng, n, start, export))
    # numbers follow creation order within each project (GitHub leaves gaps for pull requests)
    order = np.argsort(proj, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(proj, minlength=len(projects)))[:-1]])
    rank[order] = np.arange(n) - starts[proj[order]]
    offsets = _number_offsets(main_tasks, seed) if drift else np.zeros(len(projects) + 1, dtype=np.int64)
    is_github = np.array([p.source == "github" for p in projects])[proj]
    number = offsets[proj] + 1 + rank + np.where(is_github, (rank * PR_SHARE).astype(np.int64), 0)

    ttype = rng.choice(6, size=n, p=_TYPE_P)
    src = np.array([p.source for p in projects])[proj]
    jira_csv = np.array([p.layout == "csv" for p in projects])[proj]
    ttype = np.where(np.isin(src, ["trello", "csv"]) & (ttype == 5), 1, ttype)  # no subtasks there
    prio = rng.choice(5, size=n, p=_PRIO_P_DRIFT if drift else _PRIO_P)
    prio = np.where((ttype == 0) & (rng.random(n) < 0.25), np.minimum(prio + 1, 4), prio)  # bugs run hot

    # assignees: a pool per (team, tool); some people take a bigger share than others
    team_of = np.array([p.team for p in projects])[proj]
    person = np.full(n, -1, dtype=np.int64)
    skill = np.exp(rng.normal(0.0, 0.2, len(people) + 200))
    appetite = rng.uniform(0.5, 1.6, len(people) + 200)
    for (team_name, source), members in _group_people(people).items():
        mask = (team_of == team_name) & (src == source)
        if mask.any():
            w = appetite[[m.index for m in members]]
            person[mask] = np.array([m.index for m in members])[
                rng.choice(len(members), mask.sum(), p=w / w.sum())
            ]
    reporter = person.copy()
    other = rng.random(n) < 0.6
    shuffled = rng.permutation(n)
    reporter[other] = person[shuffled[other]]
    reporter = np.where(reporter < 0, person, reporter)

    size = _TYPE_SIZE[ttype] + rng.normal(0.0, 0.55, n)
    team_speed = np.array([teams[p.team].speed for p in projects])[proj]
    month = created.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (
        created // DAY
        - created.astype("datetime64[us]").astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    ) + 1
    season = np.where(month == 12, 0.40, np.where((month == 11) & (dom >= 15), 0.18, 0.0))
    noise = rng.normal(0.0, 0.25, n)
    base = (
        1.1
        + 0.75 * size
        + _TYPE_EFFECT[ttype]
        + _PRIO_EFFECT[prio]
        + np.log(team_speed)
        + season
        + noise
        + (np.log(1.6) if drift else 0.0)
    )
    skill_of = np.where(person >= 0, skill[np.maximum(person, 0)], 1.0)
    base = base - np.log(skill_of)

    # backlog items without a date are the ones that rot: nobody ever finishes them
    p_deadline = np.where(np.isin(ttype, [4, 5]), 0.5, 0.85) * np.where(prio <= 1, 0.8, 1.0)
    has_deadline = rng.random(n) < p_deadline
    abandoned = rng.random(n) < _ABANDON_P[prio] * np.where(has_deadline, 0.4, 3.2) * (1.4 if drift else 1.0)
    unassign = (abandoned & (rng.random(n) < 0.75)) | (rng.random(n) < 0.03)
    person = np.where(unassign, -1, person)

    # what happens to a task after creation, unseen by the planners (a separate stream: the draws above
    # stay as they were): a hand-over to another assignee loses part of the work done, a blocked spell
    # (waiting on another team) adds its days; both show in the changelog, neither at creation
    ev = np.random.default_rng([seed, int(drift), 11])
    order = np.lexsort((ev.random(n), proj))
    prev_person = np.full(n, -1, dtype=np.int64)
    same = proj[order][1:] == proj[order][:-1]
    prev_person[order[1:][same]] = person[order[:-1][same]]  # someone else of the same project
    can_hand_over = (person >= 0) & (prev_person >= 0) & (prev_person != person)
    u_handover = ev.random(n)
    handover_at = ev.uniform(0.15, 0.6, n)  # share of the cycle done before the hand-over
    # big pieces of work wait on others more often (size is partly visible at creation: points, estimates)
    turmoil = 1.5 if drift else 1.0  # the drift period's reorganisation: more hand-overs and waiting
    blocked = ev.random(n) < np.where(size > np.median(size), 0.16, 0.08) * turmoil
    block_days = np.round(1.0 + ev.exponential(6.0, n), 2)
    delay = np.where(blocked, block_days, 0.0)

    load = np.zeros(n, dtype=np.int64)
    ct = np.exp(base)
    for _ in range(3):  # load slows delivery, which raises load: iterate to a consistent state
        mean_load = max(load[person >= 0].mean() if (person >= 0).any() else 0.0, 0.0)
        # overloaded assignees hand tasks over more often (their load is visible at creation)
        handed_over = can_hand_over & (u_handover < np.where(abandoned, 0.35, np.where(load > 1.5 * mean_load, 0.25, 0.08) * turmoil))
        slow = np.where(handed_over, 1.5, 1.0)
        ct = np.exp(base + 0.8 * (np.log1p(load) - np.log1p(mean_load))) * slow + delay
        res = np.where(abandoned, -1, created + (ct * DAY).astype(np.int64))
        res = np.where(res > export, -1, res)
        load = _open_load(person, created, res, start - 400 * DAY)
    resolved = res

    # status path: waiting in the backlog, work, (often) review, done
    f_wait = rng.uniform(0.08, 0.35, n)
    has_review = rng.random(n) < 0.6
    ct_us = (ct * DAY).astype(np.int64)
    started = created + (f_wait * ct_us).astype(np.int64) + rng.integers(60, 3600, n) * US
    review = np.where(
        has_review, started + (rng.uniform(0.55, 0.9, n) * (ct_us - (started - created))).astype(np.int64), -1
    )
    stalled = abandoned & (rng.random(n) < 0.2)  # started, then never finished
    started = np.where(abandoned & ~stalled, -1, started)
    review = np.where(abandoned, -1, review)
    started = np.where(started > export, -1, started)
    review = np.where(review > export, -1, review)
    started = np.where((resolved >= 0) & (started >= resolved), -1, started)
    review = np.where((resolved >= 0) & (review >= resolved), -1, review)
    # the blocked spell sits between the start of work and review (or resolution, or the export)
    block_us = (block_days * DAY).astype(np.int64)
    until = np.where(review >= 0, review, np.where(resolved >= 0, resolved, export))
    room = until - started - block_us - 2 * 3600 * US
    blocked_at = started + 3600 * US + (ev.uniform(0.05, 0.95, n) * np.maximum(room, 0)).astype(np.int64)
    has_block = blocked & (started >= 0) & (room > 0)
    unblocked_at = np.where(has_block, blocked_at + block_us, -1)
    blocked_at = np.where(has_block, blocked_at, -1)
    prev_person = np.where(handed_over, prev_person, -1)
    reassigned_at = created + (handover_at * ct_us).astype(np.int64)
    handed_over &= (reassigned_at < export) & ((resolved < 0) | (reassigned_at < resolved))
    reassigned_at = np.where(handed_over, reassigned_at, -1)
    prev_person = np.where(handed_over, prev_person, -1)

    # deadlines: planners see size, type and priority (not load, skill or the season) and add slack
    plan = np.exp(
        1.1 + 0.75 * size + _TYPE_EFFECT[ttype] + 0.5 * _PRIO_EFFECT[prio] + rng.normal(0.3, 0.2, n)
    )
    due_day = (created + (plan * DAY).astype(np.int64)) // DAY
    kind = np.where(has_deadline, 1, 0)
    release_idx = np.full(n, -1, dtype=np.int64)
    jira_api = np.array([p.layout == "api" for p in projects])[proj]
    uses_release = (
        has_deadline & (jira_api | (src == "github")) & (rng.random(n) < np.where(src == "github", 1.0, 0.55))
    )
    cadence = np.where(src == "github", 28, 14)
    anchor = _us(MAIN_START) // DAY + 2  # releases on Wednesdays, milestones every four weeks
    rel = np.ceil((due_day - anchor) / cadence).astype(np.int64)
    release_idx = np.where(uses_release, rel, -1)
    due_day = np.where(uses_release, anchor + rel * cadence, due_day)
    kind = np.where(uses_release, 2, kind)
    deadline = np.where(has_deadline, due_day * DAY, -1)
    # a due date that is about to be missed is often moved out a few days before it (rarely one that
    # would have been met): the move is in the changelog; the final due date is the moved one
    will_be_late = (kind == 1) & np.where(resolved >= 0, resolved // DAY > due_day, deadline < export)
    move = np.where(will_be_late, ev.random(n) < 0.35, (kind == 1) & (ev.random(n) < 0.04))
    # moved once the slip shows: between 40% and 90% of the way to the date
    due_moved = created + (ev.uniform(0.4, 0.9, n) * (deadline - created)).astype(np.int64)
    move &= (due_moved > created + 3600 * US) & (due_moved < export) & ((resolved < 0) | (due_moved < resolved))
    due_from = np.where(move, deadline, -1)
    deadline = np.where(move, deadline + ev.integers(2, 9, n) * DAY, deadline)
    due_moved = np.where(move, due_moved, -1)

    # what gets recorded
    fib = np.array([1, 2, 3, 5, 8, 13, 21])
    sp = fib[np.clip(np.searchsorted(fib, np.exp(size) * 1.6), 0, 6)].astype(np.float64)
    records_sp = (src == "jira") & np.isin(ttype, [1, 2, 3]) & (rng.random(n) < 0.75)
    story_points = np.where(records_sp, sp, np.nan)
    est = np.round(np.exp(size) * 6.0 * 2) / 2
    records_est = np.isin(src, ["jira", "csv"]) & (rng.random(n) < 0.4)
    estimate_h = np.where(records_est, np.maximum(est, 0.5), np.nan)
    spent = np.round(estimate_h * np.exp(rng.normal(0.1, 0.35, n)) * 2) / 2
    spent_h = np.where((resolved >= 0) & records_est & (rng.random(n) < 0.7), spent, np.nan)
    n_comments = rng.poisson(0.4 + 0.7 * np.minimum(ct, 60) ** 0.45)
    n_comments = np.where(jira_csv, np.minimum(n_comments, 3), n_comments)  # the CSV has 3 Comment columns
    n_links = np.where(src == "jira", np.minimum(rng.poisson(np.where(ttype == 0, 0.6, 0.25)), 3), 0)
    n_links = np.where(jira_csv, 0, n_links)
    n_subtasks = np.where(
        np.isin(ttype, [2, 4]) & (src == "jira") & ~jira_csv, np.minimum(rng.poisson(1.6, n), 4), 0
    )
    label_bits = rng.integers(0, 256, n) & rng.integers(0, 256, n) & rng.integers(0, 256, n)
    desc_len = np.minimum(np.exp(4.3 + 0.45 * size + rng.normal(0, 0.4, n)), len(_LOREM) - 1).astype(np.int64)
    desc_len = np.where(rng.random(n) < 0.06, 0, np.maximum(desc_len, 12))
    title_idx = np.stack(
        [
            rng.integers(0, len(_VERBS), n),
            rng.integers(0, len(_OBJECTS), n),
            rng.integers(0, len(_CONTEXTS), n),
        ],
        axis=1,
    )
    parent = np.full(n, -1, dtype=np.int64)
    asana_idx = np.nonzero(src == "asana")[0]
    if len(asana_idx):
        sub = (ttype[asana_idx] == 5) & (np.arange(len(asana_idx)) > 0)
        # a subtask hangs under an earlier task of the project (never another subtask)
        cand = rng.integers(0, np.maximum(np.arange(len(asana_idx)), 1))
        parent[asana_idx[sub]] = asana_idx[cand[sub]]
        parent = np.where((parent >= 0) & (ttype[np.maximum(parent, 0)] == 5), -1, parent)
        n_subtasks[asana_idx] = np.bincount(parent[parent >= 0], minlength=n)[asana_idx]
        ttype = np.where((src == "asana") & (ttype == 5) & (parent < 0), 1, ttype)

    defect = np.zeros(n, dtype=np.int64)
    pick = rng.random(n) < DEFECT_RATE
    defect[pick] = np.where((resolved[pick] >= 0) & (rng.random(pick.sum()) < 0.5), 1, 2)
    defect = np.where(
        (src == "trello") & (defect == 1), 2, defect
    )  # a Trello card has no resolution date to break
    return _Sim(
        n,
        projects,
        people,
        proj,
        number,
        ttype,
        prio,
        person,
        reporter,
        created,
        started,
        review,
        resolved,
        deadline,
        kind,
        release_idx,
        story_points,
        estimate_h,
        spent_h,
        n_comments,
        n_links,
        n_subtasks,
        label_bits,
        desc_len,
        title_idx,
        load,
        defect,
        parent,
        export,
        drift,
        prev_person,
        reassigned_at,
        blocked_at,
        unblocked_at,
        due_moved,
        due_from,
    )


def _group_people(people: list[Person]) -> dict[tuple[str, str], list[Person]]:
    out: dict[tuple[str, str], list[Person]] = {}
    for p in people:
        out.setdefault((p.team, p.source), []).append(p)
    return out


# --- source spellings ---------------------------------------------------------------------------

_JIRA_PRIORITY = {
    "classic": ("Trivial", "Minor", "Major", "Critical", "Blocker"),
    "cloud": ("Lowest", "Low", "Medium", "High", "Highest"),
}
_JIRA_TYPE = {
    "classic": ("Bug", "Task", "New Feature", "Improvement", "Epic", "Sub-task"),
    "cloud": ("Bug", "Task", "Story", "Improvement", "Epic", "Subtask"),
}
_JIRA_STATUS = {  # (todo, in progress, review, done)
    "classic": ("Open", "In Progress", "Patch Available", "Resolved"),
    "cloud": ("To Do", "In Progress", "In Review", "Done"),
}
_GITHUB_PRIORITY = (
    "priority: lowest",
    "priority: low",
    "priority: medium",
    "priority: high",
    "priority: critical",
)
_GITHUB_TYPE = ("bug", "task", "enhancement", "enhancement", "epic", "task")
_ASANA_PRIORITY = (
    "Priority: Lowest",
    "Priority: Low",
    "Priority: Medium",
    "Priority: High",
    "Priority: Urgent",
)
_ASANA_SECTIONS = ("To Do", "In Progress", "Review", "Done")
_TRELLO_PRIORITY = ("Low", "Low", "", "High", "Urgent")
_TRELLO_LISTS = ("Backlog", "To Do", "Doing", "Review", "Done")
_CSV_PRIORITY = ("5 - Planning", "4 - Low", "3 - Normal", "2 - High", "1 - Critical")
_CSV_TYPE = ("Incident", "Service Request", "Change", "Problem", "Change", "Service Request")
_CSV_STATUS = ("New", "In Progress", "Waiting for Customer", "Closed")


def _raw_names(sim: _Sim) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task: the source's own priority, type and status spellings."""
    n = sim.n
    prio = np.full(n, None, dtype=object)
    ttype = np.full(n, None, dtype=object)
    status = np.full(n, None, dtype=object)
    stage = _stage(sim)
    for i, p in enumerate(sim.projects):
        m = sim.proj == i
        if p.source == "jira":
            prio[m] = np.array(_JIRA_PRIORITY[p.scheme], dtype=object)[sim.prio[m]]
            ttype[m] = np.array(_JIRA_TYPE[p.scheme], dtype=object)[sim.ttype[m]]
            status[m] = np.array(_JIRA_STATUS[p.scheme], dtype=object)[stage[m]]
        elif p.source == "github":
            names = np.array([s.split(": ")[1] for s in _GITHUB_PRIORITY], dtype=object)
            prio[m] = np.where(_has_priority_label(sim)[m], names[sim.prio[m]], None)
            ttype[m] = np.array(_GITHUB_TYPE, dtype=object)[sim.ttype[m]]
            status[m] = np.where(stage[m] == 3, "closed (completed)", "open")
        elif p.source == "asana":
            prio[m] = np.array([s.split(": ")[1] for s in _ASANA_PRIORITY], dtype=object)[sim.prio[m]]
            ttype[m] = np.where(sim.ttype[m] == 5, "subtask", "task")
            section = np.where(
                sim.parent[m] >= 0, "Open", np.array(_ASANA_SECTIONS, dtype=object)[stage[m]]
            )  # subtasks sit in no section
            status[m] = np.where(stage[m] == 3, "Completed", section)
        elif p.source == "trello":
            names = np.array(_TRELLO_PRIORITY, dtype=object)
            prio[m] = np.where(names[sim.prio[m]] == "", None, names[sim.prio[m]])
            ttype[m] = "card"
            lists = np.array(_TRELLO_LISTS, dtype=object)
            backlog = (stage[m] == 0) & (sim.prio[m] <= 1)
            status[m] = np.where(backlog, "Backlog", lists[stage[m] + 1])
        else:
            prio[m] = np.array(_CSV_PRIORITY, dtype=object)[sim.prio[m]]
            ttype[m] = np.array(_CSV_TYPE, dtype=object)[sim.ttype[m]]
            status[m] = np.array(_CSV_STATUS, dtype=object)[stage[m]]
    return prio, ttype, status


def _stage(sim: _Sim) -> np.ndarray:
    """0 todo, 1 in progress, 2 in review, 3 done (at export time)."""
    return np.where(sim.resolved >= 0, 3, np.where(sim.review >= 0, 2, np.where(sim.started >= 0, 1, 0)))


def _has_priority_label(sim: _Sim) -> np.ndarray:
    """GitHub issues carry a priority label only when someone triaged them (most, not all)."""
    h = (sim.number * 2654435761 + sim.created // US) % 100
    return h < 75


def _hex(values: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width lowercase hex of non-negative ints, vectorized (numpy's char.mod loops in Python)."""
    shifts = (np.arange(width - 1, -1, -1, dtype=np.uint64) * 4)[None, :]
    nibbles = ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(0xF)).astype(np.uint8)
    chars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(f"U{width}")


def _gather(words: tuple[str, ...] | list[str], index: np.ndarray) -> pl.Series:
    return pl.Series(list(words), dtype=pl.String).gather(index)


def _vocab(words: tuple[str, ...] | list[str], index: np.ndarray) -> pl.Expr:
    return pl.lit(pl.Series(list(words), dtype=pl.String).gather(index))


def _titles(sim: _Sim) -> pl.Series:
    contexts = [f" {c}" if c else "" for c in _CONTEXTS]
    return pl.select(
        pl.concat_str([
            _vocab(_VERBS, sim.title_idx[:, 0]), pl.lit(" "), _vocab(_OBJECTS, sim.title_idx[:, 1]),
            _vocab(contexts, sim.title_idx[:, 2]),
        ]).alias("title")
    ).to_series()  # fmt: skip


def _label_strings(sim: _Sim, prio_raw: np.ndarray) -> pl.Series:
    """The labels each tool's file carries, comma-joined (priority and type hide in some of them)."""
    src = np.array([p.source for p in sim.projects])[sim.proj]
    layout = np.array([p.layout for p in sim.projects])[sim.proj]
    stage = _stage(sim)
    bits = pl.Series(sim.label_bits)
    topics = pl.concat_str(
        [pl.when(pl.lit((bits // (1 << bit)) % 2 == 1)).then(pl.lit(name)) for bit, name in enumerate(_LABELS)],
        separator=",", ignore_nulls=True,
    )  # fmt: skip
    github = pl.concat_str(
        [
            _vocab(_GITHUB_TYPE, sim.ttype),
            pl.when(pl.lit(pl.Series(_has_priority_label(sim)))).then(_vocab(_GITHUB_PRIORITY, sim.prio)),
            pl.when(pl.lit(pl.Series((stage == 1) | (stage == 2)))).then(pl.lit("in progress")),
        ],
        separator=",", ignore_nulls=True,
    )  # fmt: skip
    source = _vocab([p.source for p in sim.projects], sim.proj)
    lead = (
        pl.when(source == "github").then(github)
        .when(source == "asana").then(_vocab(_ASANA_PRIORITY, sim.prio))
        .when(source == "trello").then(pl.lit(pl.Series(prio_raw.tolist(), dtype=pl.String)))
    )  # fmt: skip
    no_labels = pl.lit(pl.Series((src == "csv") | (layout == "csv")))
    topics = pl.when(topics == "").then(None).otherwise(topics)
    out = (
        pl.when(no_labels)
        .then(pl.lit(""))
        .otherwise(pl.concat_str([lead, topics], separator=",", ignore_nulls=True))
    )
    return pl.select(out.fill_null("").alias("labels")).to_series()


def _key_of(sim: _Sim) -> tuple[pl.Series, pl.Series]:
    """(key, task_id) in the parsers' conventions."""
    key_prefix = {"jira": "{key}-", "github": "#", "asana": "", "trello": "", "csv": "HD-"}
    id_prefix = {
        "jira": "jira:",
        "github": "github:{key}",
        "asana": "asana:",
        "trello": "trello:",
        "csv": "csv:{key}:",
    }
    src = np.array([p.source for p in sim.projects])[sim.proj]
    frame = pl.DataFrame({
        "kp": _gather([key_prefix[p.source].format(key=p.key) for p in sim.projects], sim.proj),
        "ip": _gather([id_prefix[p.source].format(key=p.key) for p in sim.projects], sim.proj),
        "num": np.where(src == "asana", _asana_gid(sim.number), sim.number),
        "trello": src == "trello",
    })  # fmt: skip
    key = pl.concat_str([pl.col("kp"), pl.col("num").cast(pl.String)])
    out = frame.select(key.alias("key"), pl.concat_str([pl.col("ip"), key]).alias("task_id"))
    trello = np.nonzero(src == "trello")[0]
    task_id = out["task_id"].scatter(trello, pl.Series(np.char.add("trello:", _trello_card_ids(sim)[trello])))
    return out["key"], task_id


def _asana_gid(number: np.ndarray) -> np.ndarray:
    return 1208150000000000 + number * 7919


def _trello_card_ids(sim: _Sim) -> np.ndarray:
    """Mongo-style ids: 8 hex digits of creation unix time, then a counter (unique per card)."""
    return np.char.add(_hex(sim.created // US, 8), _hex(0x5E4422FC00000000 + sim.number, 16))


# --- the truth table --------------------------------------------------------------------------


def synthetic_tasks(n_tasks: int, seed: int = 7, drift: bool = False, main_tasks: int = 6000) -> pl.DataFrame:
    """The ground-truth task table of a synthetic batch (the shape of ``clean.tasks`` plus truth columns).

    ``assignee_id``/``reporter_id`` are the pseudonymous ids the parsers give the same people, so
    history features built on this table equal those built on ``clean.tasks``. ``priority`` and
    ``type`` keep the source spellings (the parsers' values); ``priority_canonical`` and
    ``type_canonical`` are what cleaning maps them to.

    ``drift=True`` gives the later, shifted batch (Sep-Oct 2026: a new team and project, more urgent
    work, slower delivery); its keys continue after those of a main batch of ``main_tasks`` tasks.
    """
    return _truth(_simulate(n_tasks, seed, drift, main_tasks))


def _strs(values: np.ndarray, name: str = "") -> pl.Series:
    return pl.Series(name, values.tolist(), dtype=pl.String)


def _ts_series(name: str, values: np.ndarray) -> pl.Series:
    return _nullable(name, values, values >= 0).cast(pl.Datetime("us", "UTC"))


def _nullable(name: str, values: np.ndarray, valid: np.ndarray) -> pl.Series:
    """A series with nulls where ``valid`` is False (numpy has no nullable ints or bools)."""
    values = pl.Series(name, values)
    return pl.select(pl.when(pl.Series(valid)).then(values).alias(name)).to_series()


def _identity(p: Person) -> str:
    """How the person's own tool identifies them in its export (what its parser pseudonymizes)."""
    if p.source in ("jira", "trello"):
        return p.account_id  # Jira accountId / Trello member id
    if p.source == "github":
        return p.login
    return f"{p.login}@acme.example"  # Asana "Assignee Email", the helpdesk CSV's agent and requester


def _person_ids(sim: _Sim) -> tuple[pl.Series, pl.Series]:
    """(assignee_id, reporter_id) as the parsers write them into clean.tasks.

    Jira, GitHub and Trello files only name people of the project's own pool, so a reporter from another
    team or tool is unknown there; the helpdesk CSV names anyone by e-mail; Asana exports carry no
    reporter; a Trello card's creator is its first member.
    """
    size = max(p.index for p in sim.people) + 2  # index -1 (nobody) hits the trailing None
    pid = np.full(size, None, dtype=object)
    by_mail = np.full(size, None, dtype=object)
    team = np.full(size, None, dtype=object)
    tool = np.full(size, None, dtype=object)
    for p in sim.people:
        pid[p.index], team[p.index], tool[p.index] = pseudonymize(p.source, _identity(p)), p.team, p.source
        by_mail[p.index] = pseudonymize("csv", f"{p.login}@acme.example")
    src = np.array([p.source for p in sim.projects], dtype=object)[sim.proj]
    project_team = np.array([p.team for p in sim.projects], dtype=object)[sim.proj]
    in_pool = (sim.reporter >= 0) & (tool[sim.reporter] == src) & (team[sim.reporter] == project_team)
    reporter = np.where(in_pool, pid[sim.reporter], None)
    reporter = np.where(src == "csv", by_mail[sim.reporter], reporter)
    reporter = np.where(src == "asana", None, reporter)
    reporter = np.where((src == "trello") & (sim.person >= 0), pid[sim.person], reporter)
    return _strs(pid[sim.person], "assignee_id"), _strs(reporter, "reporter_id")


def _truth(sim: _Sim) -> pl.DataFrame:
    key, task_id = _key_of(sim)
    assignee_id, reporter_id = _person_ids(sim)
    prio_raw, type_raw, status = _raw_names(sim)
    stage = _stage(sim)
    people = {p.index: p for p in sim.people}
    lookup_login = np.array([None] * (max(people) + 2), dtype=object)
    lookup_name = np.array([None] * (max(people) + 2), dtype=object)
    for i, p in people.items():
        lookup_login[i], lookup_name[i] = p.login, p.name
    project_arr = np.array([p.key for p in sim.projects], dtype=object)
    team_arr = np.array([p.team for p in sim.projects], dtype=object)
    src = np.array([p.source for p in sim.projects], dtype=object)[sim.proj]
    resolved_day = np.where(sim.resolved >= 0, sim.resolved // DAY, sim.export // DAY)
    deadline_day = sim.deadline // DAY
    is_late = np.where(sim.deadline >= 0, resolved_day > deadline_day, False)
    labels = _label_strings(sim, prio_raw)
    updated = np.maximum.reduce([sim.created + 7 * 60 * US, sim.started, sim.review, sim.resolved + 42 * US])
    updated = np.minimum(updated, sim.export)
    df = pl.DataFrame(
        {
            "task_id": task_id,
            "source": _gather([p.source for p in sim.projects], sim.proj),
            "project": _gather(list(project_arr), sim.proj),
            "key": key,
            "number": sim.number,
            "title": _titles(sim),
            "type": _strs(type_raw),
            "type_canonical": _gather(CANONICAL_TYPES, sim.ttype),
            "priority": _strs(prio_raw),
            "priority_canonical": _gather(CANONICAL_PRIORITIES, sim.prio),
            "priority_ordinal": sim.prio + 1,
            "status": _strs(status),
            "status_category": _gather(
                ["todo", "in_progress", "in_progress", "done"],
                np.where((src == "asana") & (sim.parent >= 0) & (stage < 3), 0, stage),
            ),
            "team": _gather(list(team_arr), sim.proj),
            "assignee_login": _gather(lookup_login.tolist(), sim.person),  # index -1: the trailing None
            "assignee_name": _gather(lookup_name.tolist(), sim.person),
            "reporter_login": _gather(lookup_login.tolist(), sim.reporter),
            "reporter_name": _gather(lookup_name.tolist(), sim.reporter),
            "assignee_id": assignee_id,
            "reporter_id": reporter_id,
            "prev_assignee_login": _gather(lookup_login.tolist(), sim.prev_person),
        }
    ).with_columns(
        _ts_series("created_at", sim.created),
        _ts_series("updated_at", updated),
        _ts_series("started_at", sim.started),
        _ts_series("review_at", sim.review),
        _ts_series("resolved_at", sim.resolved),
        _ts_series("reassigned_at", sim.reassigned),
        _ts_series("blocked_at", sim.blocked),
        _ts_series("unblocked_at", sim.unblocked),
        _ts_series("due_moved_at", sim.due_moved),
        _ts_series("due_from", sim.due_from),
        _ts_series("due_at", np.where(sim.deadline_kind == 1, sim.deadline, -1)),
        _ts_series("deadline_at", sim.deadline),
        pl.Series("deadline_kind", np.array(["none", "due_date", "release"])[sim.deadline_kind]),
        _nullable("release_index", sim.release_idx, sim.release_idx >= 0),
        pl.Series("story_points", sim.story_points).fill_nan(None),
        pl.Series("original_estimate_h", sim.estimate_h).fill_nan(None),
        pl.Series("time_spent_h", sim.spent_h).fill_nan(None),
        # counts a tool's files do not carry are unknown (null), not zero
        _nullable("n_comments", sim.n_comments, src != "asana"),
        _nullable("n_links", sim.n_links, ~np.isin(src, ["github", "csv"])),
        _nullable("n_subtasks", sim.n_subtasks, ~np.isin(src, ["github", "csv"])),
        labels,
        pl.when(labels == "")
        .then(0)
        .otherwise(labels.str.count_matches(",", literal=True) + 1)
        .cast(pl.Int64)
        .alias("n_labels"),
        pl.Series("description_length", sim.desc_len),
        _nullable("is_late", is_late, sim.deadline >= 0),
        pl.Series(
            "cycle_time_days", np.where(sim.resolved >= 0, (sim.resolved - sim.created) / DAY, np.nan)
        ).fill_nan(None),
        _nullable("workload_at_creation", sim.load, sim.person >= 0),
        _nullable("parent_key", key.gather(np.maximum(sim.parent, 0)), sim.parent >= 0),
        _strs(
            np.array([None, "resolved_before_created", "missing_required_field"], dtype=object)[sim.defect],
            "defect",
        ),
        pl.lit("drift" if sim.drift else "main").alias("batch"),
    )
    return df


# --- landing files ------------------------------------------------------------------------------
# JSON is assembled column-wise with polars string expressions from pre-serialized fragments (one
# json.dumps per person, status or priority, not per task): 1,000,000 tasks write in seconds.
# Every free text comes from the fixed vocabularies above, which hold no quote or backslash, so a
# value is valid JSON once wrapped in quotes.

_JIRA_BASE = "https://jira.acme.example"
_JIRA_TS = "%Y-%m-%dT%H:%M:%S%.3f+0000"
_GH_TS = "%Y-%m-%dT%H:%M:%SZ"
_TRELLO_TS = "%Y-%m-%dT%H:%M:%S%.3fZ"
_CSV_TS = "%d.%m.%Y %H:%M"


def _render(template: str) -> pl.Expr:
    """``'{"key":"@@key@@"}'`` -> one string per row, ``@@col@@`` replaced by that column's text."""
    parts = template.split("@@")
    exprs = [
        pl.lit(part) if i % 2 == 0 else pl.col(part).cast(pl.String)
        for i, part in enumerate(parts)
        if part or i % 2
    ]
    return pl.concat_str(exprs)


def _q(expr: pl.Expr) -> pl.Expr:
    """A JSON string value, or null."""
    return (
        pl.when(expr.is_null())
        .then(pl.lit("null"))
        .otherwise(pl.concat_str([pl.lit('"'), expr, pl.lit('"')]))
    )


def _num(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_null()).then(pl.lit("null")).otherwise(expr.cast(pl.String))


def _fmt(col: str, fmt: str) -> pl.Expr:
    return pl.col(col).dt.strftime(fmt)


def _lookup(col: str, mapping: dict[str, str]) -> pl.Expr:
    return pl.col(col).replace_strict(mapping, default="null", return_dtype=pl.String)


def _json_list(expr: pl.Expr, item: str = '"{}"') -> pl.Expr:
    """A comma-joined text column as a JSON list of strings (``a,b`` -> ``["a","b"]``)."""
    return (
        pl.when(expr == "")
        .then(pl.lit("[]"))
        .otherwise(
            pl.concat_str([pl.lit('["'), expr.str.replace_all(",", '","', literal=True), pl.lit('"]')])
        )
    )


def _description(length: pl.Expr, offset: pl.Expr) -> pl.Expr:
    """Text of exactly ``length`` characters that neither starts nor ends with a space (parsers strip)."""
    return (
        pl.when(length == 0)
        .then(pl.lit(""))
        .otherwise(pl.concat_str([pl.lit("W"), pl.lit(_LOREM).str.slice(offset, length - 2), pl.lit(".")]))
    )


def _write_pages(
    rendered: pl.Series, out_dir: Path, stem: str, page_size: int, wrap: Any, duplicate_at: int | None = None
) -> list[Path]:
    """Cut rendered records (each ending in ",") into pages: ``head + records + tail``, ``wrap(start, total)``.

    A page's records are one contiguous range of the Arrow buffer, so pages are written without copies.
    """
    n = len(rendered)
    if duplicate_at is not None and n > duplicate_at + 1:
        # the record at the page boundary shows up again on the next page, as when an issue
        # changes while a client pages through the results
        rendered = rendered.gather(np.insert(np.arange(n), duplicate_at + 1, duplicate_at))
    data, offsets = _arrow_text(rendered)
    total = len(rendered)
    paths = []
    for page, first in enumerate(range(0, total, page_size)):
        last = min(first + page_size, total)
        head, tail = wrap(first, total)
        path = out_dir / f"{stem}-{page + 1:04d}.json"
        with path.open("wb") as fh:
            fh.write(head.encode("utf-8"))
            fh.write(data[offsets[first] : offsets[last] - 1])  # drop the last record's comma
            fh.write(tail.encode("utf-8"))
        paths.append(path)
    return paths


def _arrow_text(texts: pl.Series) -> tuple[memoryview, np.ndarray]:
    """The UTF-8 bytes of a string series and each row's offsets, straight from Arrow (no Python str)."""
    import pyarrow as pa

    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = memoryview(arr.buffers()[2]) if arr.buffers()[2] is not None else memoryview(b"")
    return data, offsets


def _utf8_rows(texts: pl.Series) -> list[memoryview]:
    data, offsets = _arrow_text(texts)
    return [data[offsets[i] : offsets[i + 1]] for i in range(len(texts))]


# Jira ---------------------------------------------------------------------------------------------

_JIRA_STATUS_IDS = {
    "Open": "1", "In Progress": "3", "Patch Available": "10002", "Resolved": "5",
    "To Do": "10000", "In Review": "10001", "Done": "10003",
}  # fmt: skip
_JIRA_CATEGORY = {0: ("new", 2, "blue-gray", "To Do"), 1: ("indeterminate", 4, "yellow", "In Progress"),
                  2: ("indeterminate", 4, "yellow", "In Progress"), 3: ("done", 3, "green", "Done")}  # fmt: skip
_SP_FIELD = {
    "classic": ("customfield_12310293", "Story Points"),
    "cloud": ("customfield_10016", "Story point estimate"),
}


def _jira_user(p: Person) -> str:
    avatar = f"{_JIRA_BASE}/secure/useravatar?ownerId={p.login}&avatarId={10000 + p.index}"
    return json.dumps(
        {
            "self": f"{_JIRA_BASE}/rest/api/2/user?accountId={p.account_id}",
            "name": p.login,
            "key": p.login,
            "accountId": p.account_id,
            "avatarUrls": {k: f"{avatar}&size={k}" for k in ("48x48", "24x24", "16x16", "32x32")},
            "displayName": p.name,
            "active": True,
            "timeZone": "Europe/Berlin",
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _jira_status(name: str, stage: int) -> str:
    key, cid, color, cname = _JIRA_CATEGORY[stage]
    sid = _JIRA_STATUS_IDS[name]
    return json.dumps(
        {
            "self": f"{_JIRA_BASE}/rest/api/2/status/{sid}",
            "description": "",
            "iconUrl": f"{_JIRA_BASE}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": {
                "self": f"{_JIRA_BASE}/rest/api/2/statuscategory/{cid}",
                "id": cid,
                "key": key,
                "colorName": color,
                "name": cname,
            },
        },
        separators=(",", ":"),
    )


def _jira_named(kind: str, names: tuple[str, ...], extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {
        name: json.dumps(
            {"self": f"{_JIRA_BASE}/rest/api/2/{kind}/{i + 1}", "iconUrl": f"{_JIRA_BASE}/images/icons/{kind}/{i + 1}.svg",
             "name": name, "id": str(i + 1), **({k: v(name) for k, v in extra.items()} if extra else {})},
            separators=(",", ":"),
        )
        for i, name in enumerate(names)
    }  # fmt: skip


def _jira_frame(
    t: pl.DataFrame, project: Project, people: dict[str, Person], export: int, project_id: int
) -> pl.DataFrame:
    """The per-issue JSON fragments a Jira issue is assembled from."""
    users = {login: _jira_user(p) for login, p in people.items()}
    scheme = project.scheme
    statuses = _JIRA_STATUS[scheme]
    status_json = {name: _jira_status(name, stage) for stage, name in enumerate(statuses)}
    types = _jira_named(
        "issuetype",
        _JIRA_TYPE[scheme],
        {"subtask": lambda name: name in ("Sub-task", "Subtask"), "description": lambda name: ""},
    )
    prios = _jira_named("priority", _JIRA_PRIORITY[scheme])
    export_day = export // DAY
    created = pl.col("created_at")
    resolved = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(created - pl.duration(days=3, hours=2))
        .otherwise(pl.col("resolved_at"))
    )
    by_stage = {0: statuses[0], 1: statuses[1], 2: statuses[2], 3: statuses[3]}

    def history(j: int, at: str, to_stage: int, from_expr: pl.Expr) -> pl.Expr:
        to_name = by_stage[to_stage]
        resolution = (
            (
                ',{"field":"resolution","fieldtype":"jira","from":null,"fromString":null,"to":"1","toString":"'
                + ("Fixed" if scheme == "classic" else "Done")
                + '"}'
            )
            if to_stage == 3
            else ""
        )
        return entry(j, at, [
            pl.lit('{"field":"status","fieldtype":"jira","from":"'),
            from_expr.replace_strict(_JIRA_STATUS_IDS, return_dtype=pl.String),
            pl.lit('","fromString":"'), from_expr, pl.lit('","to":"' + _JIRA_STATUS_IDS[to_name] + '","toString":"' + to_name + '"}'),
            pl.lit(resolution),
        ])  # fmt: skip

    def entry(j: int, at: str, items: list[pl.Expr]) -> pl.Expr:
        """One changelog history (id, author, time, items) where column `at` is set."""
        return pl.when(pl.col(at).is_not_null()).then(
            pl.concat_str([
                pl.lit('{"id":"'), (pl.col("number") * 8 + j + project_id * 10_000_000).cast(pl.String),
                pl.lit('","author":'), pl.col("_author"), pl.lit(',"created":"'), _fmt(at, _JIRA_TS),
                pl.lit('","items":['), *items, pl.lit("]}"),
            ])
        )  # fmt: skip

    account = {login: p.account_id for login, p in people.items()}
    display = {login: p.name for login, p in people.items()}
    handover = [
        pl.lit('{"field":"assignee","fieldtype":"jira","from":"'), pl.col("prev_assignee_login").replace_strict(account, default=""),
        pl.lit('","fromString":"'), pl.col("prev_assignee_login").replace_strict(display, default=""),
        pl.lit('","to":"'), pl.col("assignee_login").replace_strict(account, default=""),
        pl.lit('","toString":"'), pl.col("assignee_login").replace_strict(display, default=""), pl.lit('"}'),
    ]  # fmt: skip
    due_move = [
        pl.lit('{"field":"duedate","fieldtype":"jira","from":"'), _fmt("due_from", "%Y-%m-%d"),
        pl.lit('","fromString":"'), _fmt("due_from", "%Y-%m-%d 00:00:00.0"),
        pl.lit('","to":"'), pl.col("due_at").dt.strftime("%Y-%m-%d"),
        pl.lit('","toString":"'), pl.col("due_at").dt.strftime("%Y-%m-%d 00:00:00.0"), pl.lit('"}'),
    ]  # fmt: skip

    from_done = (
        pl.when(pl.col("review_at").is_not_null()).then(pl.lit(statuses[2]))
        .when(pl.col("started_at").is_not_null()).then(pl.lit(statuses[1]))
        .otherwise(pl.lit(statuses[0]))
    )  # fmt: skip
    release_day = pl.lit(_us(MAIN_START) // DAY + 2) + pl.col("release_index") * 14
    released = release_day <= export_day
    link = (
        '{"id":"@@_lid@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issueLink/@@_lid@@","type":{"id":"10003","name":"Relates",'
        '"inward":"relates to","outward":"relates to","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issueLinkType/10003"},'
        '"outwardIssue":{"id":"@@_lid@@","key":"'
        + project.key
        + '-@@_lnum@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@_lid@@"}}'
    )
    sub = (
        '{"id":"@@_sid@@","key":"'
        + project.key
        + '-@@_snum@@","self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@_sid@@",'
        '"fields":{"summary":"Subtask of '
        + project.key
        + '-@@number@@","status":'
        + status_json[statuses[0]]
        + ',"priority":@@_priority@@,'
        '"issuetype":' + types[_JIRA_TYPE[scheme][5]] + "}}"
    )
    f = t.with_columns(
        (pl.col("number") + project_id * 1_000_000).alias("_id"),
        _q(pl.col("title")).alias("_summary"),
        _lookup("type", types).alias("_type"),
        _lookup("priority", prios).alias("_priority"),
        _lookup("status", status_json).alias("_status"),
        _lookup("assignee_login", users).alias("_assignee"),
        _lookup("reporter_login", users).alias("_reporter"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("null")).otherwise(_q(_fmt("created_at", _JIRA_TS))).alias("_created"),
        _q(_fmt("updated_at", _JIRA_TS)).alias("_updated"),
        _q(resolved.dt.strftime(_JIRA_TS)).alias("_resolved"),
        _q(pl.col("due_at").dt.strftime("%Y-%m-%d")).alias("_due"),
        pl.when(pl.col("release_index").is_null()).then(pl.lit("[]")).otherwise(pl.concat_str([
            pl.lit('[{"self":"' + _JIRA_BASE + '/rest/api/2/version/'), (pl.col("release_index") + 20000).cast(pl.String),
            pl.lit('","id":"'), (pl.col("release_index") + 20000).cast(pl.String),
            pl.lit('","description":"","name":"' + project.key + ' 1.'), pl.col("release_index").cast(pl.String),
            pl.lit('","archived":false,"released":'), pl.when(released).then(pl.lit("true")).otherwise(pl.lit("false")),
            pl.lit(',"releaseDate":"'), (release_day * DAY).cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d"), pl.lit('"}]'),
        ])).alias("_fix"),
        _num((pl.col("original_estimate_h") * 3600).cast(pl.Int64)).alias("_est"),
        _num((pl.col("time_spent_h") * 3600).cast(pl.Int64)).alias("_spent"),
        _num(pl.col("story_points")).alias("_sp"),
        _json_list(pl.col("labels")).alias("_labels"),
        pl.when(pl.col("description_length") == 0).then(pl.lit("null"))
        .otherwise(_q(_description(pl.col("description_length"), pl.col("number") % 97))).alias("_desc"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("null")).otherwise(pl.lit(
            '{"self":"' + _JIRA_BASE + '/rest/api/2/resolution/1","id":"1","description":"","name":"'
            + ("Fixed" if scheme == "classic" else "Done") + '"}')).alias("_resolution"),
        pl.when(pl.col("assignee_login").is_null()).then(_lookup("reporter_login", users)).otherwise(_lookup("assignee_login", users)).alias("_author"),
    )  # fmt: skip
    link_items = [
        pl.when(pl.col("n_links") > j).then(
            _render(
                link.replace("@@_lid@@", "@@_lid" + str(j) + "@@").replace(
                    "@@_lnum@@", "@@_lnum" + str(j) + "@@"
                )
            )
        )
        for j in range(3)
    ]
    sub_items = [
        pl.when(pl.col("n_subtasks") > j).then(
            _render(
                sub.replace("@@_sid@@", "@@_sid" + str(j) + "@@").replace(
                    "@@_snum@@", "@@_snum" + str(j) + "@@"
                )
            )
        )
        for j in range(4)
    ]
    f = f.with_columns(
        *[(pl.col("_id") * 10 + j + 900_000_000).alias(f"_lid{j}") for j in range(3)],
        *[pl.max_horizontal(pl.col("number") - (j + 1) * 3, pl.lit(1)).alias(f"_lnum{j}") for j in range(3)],
        *[(pl.col("_id") * 10 + j + 500_000_000).alias(f"_sid{j}") for j in range(4)],
        *[(pl.col("number") * 10 + j + 100_000).alias(f"_snum{j}") for j in range(4)],
    )
    f = f.with_columns(
        pl.concat_str([pl.lit("["), pl.concat_str(link_items, separator=",", ignore_nulls=True), pl.lit("]")]).alias("_links"),
        pl.concat_str([pl.lit("["), pl.concat_str(sub_items, separator=",", ignore_nulls=True), pl.lit("]")]).alias("_subs"),
        pl.concat_str(
            [
                history(0, "started_at", 1, pl.lit(statuses[0])),
                entry(3, "reassigned_at", handover),
                history(4, "blocked_at", 0, pl.lit(statuses[1])),
                history(5, "unblocked_at", 1, pl.lit(statuses[0])),
                entry(6, "due_moved_at", due_move),
                history(1, "review_at", 2, pl.lit(statuses[1])),
                history(2, "resolved_at", 3, from_done),
            ],
            separator=",",
            ignore_nulls=True,
        ).alias("_hist"),
        pl.sum_horizontal(pl.col(c).is_not_null().cast(pl.Int32) for c in (
            "started_at", "review_at", "resolved_at", "reassigned_at", "blocked_at", "unblocked_at", "due_moved_at",
        )).alias("_nhist"),
    )  # fmt: skip
    return f


def _jira_issue_template(project: Project, project_id: int, people: dict[str, Person]) -> str:
    proj = json.dumps(
        {"self": f"{_JIRA_BASE}/rest/api/2/project/{10000 + project_id}", "id": str(10000 + project_id), "key": project.key,
         "name": project.name, "projectTypeKey": "software", "simplified": project.scheme == "cloud",
         "avatarUrls": {k: f"{_JIRA_BASE}/secure/projectavatar?pid={10000 + project_id}&size={k}" for k in ("48x48", "24x24", "16x16", "32x32")}},
        separators=(",", ":"),
    )  # fmt: skip
    sp_field = _SP_FIELD[project.scheme][0]
    return (
        '{"expand":"operations,versionedRepresentations,editmeta,changelog,renderedFields","id":"@@_id@@",'
        '"self":"' + _JIRA_BASE + '/rest/api/2/issue/@@_id@@","key":"@@key@@","fields":{'
        '"summary":@@_summary@@,"progress":{"progress":0,"total":0},"timetracking":{},"issuetype":@@_type@@,'
        '"timespent":@@_spent@@,"reporter":@@_reporter@@,"created":@@_created@@,"updated":@@_updated@@,'
        '"description":@@_desc@@,"priority":@@_priority@@,"issuelinks":@@_links@@,"subtasks":@@_subs@@,'
        '"status":@@_status@@,"labels":@@_labels@@,"workratio":-1,"project":' + proj + ',"environment":null,'
        '"lastViewed":null,"aggregateprogress":{"progress":0,"total":0},"components":[],'
        '"comment":{"comments":[],"maxResults":0,"total":@@n_comments@@,"startAt":0},'
        '"timeoriginalestimate":@@_est@@,"votes":{"self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@key@@/votes","votes":0,"hasVoted":false},'
        '"fixVersions":@@_fix@@,"resolution":@@_resolution@@,"resolutiondate":@@_resolved@@,"creator":@@_reporter@@,'
        '"aggregatetimeoriginalestimate":@@_est@@,"duedate":@@_due@@,'
        '"watches":{"self":"'
        + _JIRA_BASE
        + '/rest/api/2/issue/@@key@@/watchers","watchCount":1,"isWatching":false},'
        '"assignee":@@_assignee@@,"aggregatetimeestimate":null,"versions":[],"timeestimate":null,"aggregatetimespent":@@_spent@@,'
        '"' + sp_field + '":@@_sp@@},'
        '"changelog":{"startAt":0,"maxResults":@@_nhist@@,"total":@@_nhist@@,"histories":[@@_hist@@]}}'
    )


_JIRA_NAMES = {
    "summary": "Summary", "issuetype": "Issue Type", "timespent": "Time Spent", "reporter": "Reporter",
    "created": "Created", "updated": "Updated", "description": "Description", "priority": "Priority",
    "issuelinks": "Linked Issues", "subtasks": "Sub-Tasks", "status": "Status", "labels": "Labels",
    "project": "Project", "comment": "Comment", "timeoriginalestimate": "Original Estimate",
    "fixVersions": "Fix Version/s", "resolution": "Resolution", "resolutiondate": "Resolved",
    "creator": "Creator", "duedate": "Due Date", "assignee": "Assignee",
}  # fmt: skip


def _write_jira_api(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
    duplicate: bool,
) -> list[Path]:
    f = _jira_frame(t.sort("number"), project, people, export, project_id)
    rendered = f.select(_render(_jira_issue_template(project, project_id, people) + ",").alias("r"))["r"]
    names = json.dumps(
        {**_JIRA_NAMES, _SP_FIELD[project.scheme][0]: _SP_FIELD[project.scheme][1]}, separators=(",", ":")
    )

    def wrap(start: int, total: int) -> tuple[str, str]:
        return (f'{{"expand":"names,schema","startAt":{start},"maxResults":{PAGE_SIZE},"total":{total},"issues":[',
                f'],"names":{names}}}')  # fmt: skip

    return _write_pages(
        rendered, out, f"{project.key}{tag}-search", PAGE_SIZE, wrap, PAGE_SIZE - 1 if duplicate else None
    )


_JIRA_CSV_HEADER = [
    "Summary", "Issue key", "Issue id", "Issue Type", "Status", "Project key", "Project name", "Project type",
    "Project lead", "Project lead id", "Project description", "Priority", "Resolution", "Assignee", "Assignee Id",
    "Reporter", "Reporter Id", "Creator", "Creator Id", "Created", "Updated", "Last Viewed", "Resolved", "Due date",
    "Votes", "Description", "Environment", "Watchers", "Watchers", "Watchers", "Watchers Id", "Watchers Id",
    "Watchers Id", "Original estimate", "Remaining Estimate", "Time Spent", "Work Ratio", "Σ Original Estimate",
    "Σ Remaining Estimate", "Σ Time Spent", "Security Level", "Attachment", "Custom field (Development)",
    "Custom field (Issue color)", "Custom field (Rank)", "Sprint", "Custom field (Start date)",
    "Custom field (Story Points)", "Custom field (Story point estimate)", "Custom field (Team)",
    "Custom field (Vulnerability)", "Comment", "Comment", "Comment", "Status Category", "Status Category Changed",
]  # fmt: skip
_JIRA_CSV_TS = "%d/%b/%y %-I:%M %p"


def _write_jira_csv(
    t: pl.DataFrame, project: Project, project_id: int, people: dict[str, Person], out: Path, tag: str
) -> list[Path]:
    names = {login: p.name for login, p in people.items()}
    accounts = {login: p.account_id for login, p in people.items()}
    lead = min(people.values(), key=lambda p: p.index)
    t = t.sort("number")
    resolved = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=3, hours=2))
        .otherwise(pl.col("resolved_at"))
    )
    category = pl.col("status_category").replace_strict(
        {"todo": "To Do", "in_progress": "In Progress", "done": "Done"}
    )
    last_change = pl.coalesce(
        pl.col("resolved_at"), pl.col("review_at"), pl.col("started_at"), pl.col("created_at")
    )
    comment_author = pl.coalesce(pl.col("assignee_login"), pl.col("reporter_login")).replace_strict(
        accounts, default=""
    )

    def comment(j: int) -> pl.Expr:
        at = pl.col("created_at") + pl.duration(hours=5 + 20 * j)
        return pl.when(pl.col("n_comments") > j).then(pl.concat_str([
            at.dt.strftime(_JIRA_CSV_TS), pl.lit(";"), comment_author, pl.lit(";"),
            pl.lit("Update " + str(j + 1) + ": "), _description(pl.col("description_length") // 3 + 10, pl.col("number") % 53 + j),
        ])).otherwise(pl.lit(""))  # fmt: skip

    blank = pl.lit("")
    cols = [
        pl.col("title"), pl.col("key"), (pl.col("number") + project_id * 1_000_000).cast(pl.String), pl.col("type"),
        pl.col("status"), pl.lit(project.key), pl.lit(project.name), pl.lit("software"), pl.lit(lead.name),
        pl.lit(lead.account_id), blank, pl.col("priority"),
        pl.when(pl.col("resolved_at").is_not_null()).then(pl.lit("Done")).otherwise(blank),
        pl.col("assignee_login").replace_strict(names, default=""), pl.col("assignee_login").replace_strict(accounts, default=""),
        pl.col("reporter_login").replace_strict(names, default=""), pl.col("reporter_login").replace_strict(accounts, default=""),
        pl.col("reporter_login").replace_strict(names, default=""), pl.col("reporter_login").replace_strict(accounts, default=""),
        pl.when(pl.col("defect") == "missing_required_field").then(blank).otherwise(_fmt("created_at", _JIRA_CSV_TS)),
        _fmt("updated_at", _JIRA_CSV_TS), blank, resolved.dt.strftime(_JIRA_CSV_TS).fill_null(""),
        pl.col("due_at").dt.strftime("%d/%b/%y 12:00 AM").fill_null(""), pl.lit("0"),
        _description(pl.col("description_length"), pl.col("number") % 89),
        blank, pl.col("reporter_login").replace_strict(names, default=""), blank, blank,
        pl.col("reporter_login").replace_strict(accounts, default=""), blank, blank,
        (pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""),
        pl.when(pl.col("resolved_at").is_null()).then((pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String)).otherwise(pl.lit("0")).fill_null(""),
        (pl.col("time_spent_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""),
        blank, (pl.col("original_estimate_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""), blank,
        (pl.col("time_spent_h") * 3600).cast(pl.Int64).cast(pl.String).fill_null(""), blank, blank, blank, blank,
        pl.concat_str([pl.lit("0|i0"), pl.col("number").cast(pl.String), pl.lit(":")]),
        pl.concat_str([pl.lit(project.key + " Sprint "), ((pl.col("created_at").dt.epoch("d") - 19967) // 14).cast(pl.String)]),
        blank, pl.col("story_points").cast(pl.String).fill_null(""), blank, blank, blank,
        comment(0), comment(1), comment(2), category, last_change.dt.strftime(_JIRA_CSV_TS),
    ]  # fmt: skip
    frame = t.select([c.alias(f"c{i}") for i, c in enumerate(cols)])
    path = out / f"{project.key}{tag}-all-fields.csv"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(_JIRA_CSV_HEADER)
    with path.open("wb") as fh:
        fh.write(buffer.getvalue().encode("utf-8"))
        frame.write_csv(fh, include_header=False)
    return [path]


# GitHub ---------------------------------------------------------------------------------------------

_GH_LABEL_COLORS = ("d73a4a", "a2eeef", "0e8a16", "fbca04", "5319e7", "1d76db", "b60205", "c5def5")


def _gh_user(login: str, uid: int) -> str:
    api = f"https://api.github.com/users/{login}"
    return json.dumps(
        {
            "login": login, "id": uid, "node_id": f"MDQ6VXNlcj{uid}", "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "", "url": api, "html_url": f"https://github.com/{login}", "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}", "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs", "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events", "type": "User", "user_view_type": "public", "site_admin": False,
        },
        separators=(",", ":"),
    )  # fmt: skip


def _gh_labels(repo: str, names: list[str]) -> dict[str, str]:
    return {
        name: json.dumps(
            {"id": 5000000 + i, "node_id": f"LA_kwDOB{i:06d}", "url": f"https://api.github.com/repos/{repo}/labels/{name.replace(' ', '%20').replace(':', '%3A')}",
             "name": name, "color": _GH_LABEL_COLORS[i % len(_GH_LABEL_COLORS)], "default": name in ("bug", "enhancement"), "description": None},
            separators=(",", ":"),
        )
        for i, name in enumerate(names)
    }  # fmt: skip


def _write_github(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
    duplicate: bool,
) -> tuple[list[Path], int]:
    repo = project.key
    api = f"https://api.github.com/repos/{repo}"
    uid = {login: 1_000_000 + p.index * 7 for login, p in people.items()}
    users = {login: _gh_user(login, uid[login]) for login in people}
    label_names = list(dict.fromkeys([*_GITHUB_TYPE, *_GITHUB_PRIORITY, "in progress", *_LABELS]))
    labels = _gh_labels(repo, label_names)
    creator = users[min(people.values(), key=lambda p: p.index).login]

    # milestones: one every four weeks, due the Wednesday it ships
    milestones: dict[str, str] = {}
    counts = (
        t.filter(pl.col("release_index").is_not_null())
        .group_by("release_index")
        .agg(
            pl.col("resolved_at").is_not_null().sum().alias("closed"),
            pl.col("resolved_at").is_null().sum().alias("open"),
        )
    )
    anchor = _us(MAIN_START) // DAY + 2
    for idx, closed, opened in counts.iter_rows():
        due = (anchor + idx * 28) * DAY
        due_s = datetime.fromtimestamp(due // US, tz=UTC)
        milestones[str(idx)] = json.dumps(
            {"url": f"{api}/milestones/{idx}", "html_url": f"https://github.com/{repo}/milestone/{idx}",
             "labels_url": f"{api}/milestones/{idx}/labels", "id": 9_000_000 + project_id * 10_000 + idx,
             "node_id": f"MI_kwDOA{idx:05d}", "number": idx, "title": f"v2.{idx}", "description": "", "creator": None,
             "open_issues": opened, "closed_issues": closed, "state": "closed" if due < export and opened == 0 else "open",
             "created_at": datetime.fromtimestamp(due // US - 35 * 86400, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "updated_at": due_s.strftime("%Y-%m-%dT%H:%M:%SZ"), "due_on": due_s.strftime("%Y-%m-%dT07:00:00Z"),
             "closed_at": due_s.strftime("%Y-%m-%dT%H:%M:%SZ") if due < export and opened == 0 else None},
            separators=(",", ":"),
        ).replace('"creator":null', '"creator":' + creator)  # fmt: skip

    common = (
        '{"url":"'
        + api
        + '/issues/@@number@@","repository_url":"'
        + api
        + '","labels_url":"'
        + api
        + '/issues/@@number@@/labels{/name}",'
        '"comments_url":"'
        + api
        + '/issues/@@number@@/comments","events_url":"'
        + api
        + '/issues/@@number@@/events",'
        '"html_url":"https://github.com/'
        + repo
        + '/@@_kind@@/@@number@@","id":@@_id@@,"node_id":"I_kwDOHh@@_id@@","number":@@number@@,'
        '"title":@@_title@@,"user":@@_user@@,"labels":[@@_labels@@],"state":"@@_state@@","locked":false,"assignee":@@_assignee@@,'
        '"assignees":@@_assignees@@,"milestone":@@_milestone@@,"comments":@@n_comments@@,"created_at":@@_created@@,'
        '"updated_at":"@@_updated@@","closed_at":@@_closed@@,"author_association":"MEMBER","active_lock_reason":null,'
    )
    tail = (
        '"body":@@_body@@,"reactions":{"url":"'
        + api
        + '/issues/@@number@@/reactions","total_count":0,"+1":0,"-1":0,"laugh":0,'
        '"hooray":0,"confused":0,"heart":0,"rocket":0,"eyes":0},"timeline_url":"'
        + api
        + '/issues/@@number@@/timeline",'
        '"performed_via_github_app":null,"state_reason":@@_reason@@}'
    )
    issue_tpl = common + tail + ","
    pr_tpl = (
        common
        + (
            '"draft":false,"pull_request":{"url":"'
            + api
            + '/pulls/@@number@@","html_url":"https://github.com/'
            + repo
            + '/pull/@@number@@",'
            '"diff_url":"https://github.com/'
            + repo
            + '/pull/@@number@@.diff","patch_url":"https://github.com/'
            + repo
            + '/pull/@@number@@.patch",'
            '"merged_at":@@_closed@@},'
        )
        + tail
        + ","
    )
    closed = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=2, hours=3))
        .otherwise(pl.col("resolved_at"))
    )
    issues = t.with_columns(
        pl.lit("issues").alias("_kind"),
        (pl.col("number") + project_id * 10_000_000 + 2_000_000_000).alias("_id"),
        _q(pl.col("title")).alias("_title"),
        _lookup("reporter_login", users).alias("_user"),
        pl.col("labels").str.split(",").list.eval(pl.element().replace_strict(labels, default=None)).list.drop_nulls().list.join(",").alias("_labels"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("_state"),
        _lookup("assignee_login", users).alias("_assignee"),
        pl.when(pl.col("assignee_login").is_null()).then(pl.lit("[]")).otherwise(
            pl.concat_str([pl.lit("["), _lookup("assignee_login", users), pl.lit("]")])).alias("_assignees"),
        pl.col("release_index").cast(pl.String).replace_strict(milestones, default="null").alias("_milestone"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("null")).otherwise(_q(_fmt("created_at", _GH_TS))).alias("_created"),
        _fmt("updated_at", _GH_TS).alias("_updated"),
        _q(closed.dt.strftime(_GH_TS)).alias("_closed"),
        pl.when(pl.col("description_length") == 0).then(pl.lit("null"))
        .otherwise(_q(_description(pl.col("description_length"), pl.col("number") % 71))).alias("_body"),
        pl.when(pl.col("resolved_at").is_null()).then(pl.lit("null")).otherwise(pl.lit('"completed"')).alias("_reason"),
    )  # fmt: skip
    rendered_issues = issues.select(pl.col("number"), _render(issue_tpl).alias("r"))

    # pull requests take the numbers the issues left free
    used = t["number"].to_numpy()
    lo = used.min() if len(used) else 1
    hi = used.max() if len(used) else 0
    free = np.setdiff1d(np.arange(lo, hi + 1), used)
    rendered = rendered_issues
    if len(free):
        pos = np.clip(np.searchsorted(used, free) - 1, 0, len(used) - 1)
        issue_created = t["created_at"].dt.epoch("us").to_numpy()
        pr_created = issue_created[pos] + 3_600 * US
        rng = np.random.default_rng(int(free[0]) * 31 + project_id)
        merged = pr_created + (np.exp(rng.normal(0.0, 0.9, len(free))) * DAY).astype(np.int64)
        pr_logins = np.array(sorted(people), dtype=object)[rng.integers(0, len(people), len(free))]
        prs = pl.DataFrame({"number": free, "n_comments": rng.poisson(2.0, len(free)), "login": pr_logins.tolist()}).with_columns(
            _ts_series("created_at", pr_created), _ts_series("merged", np.where(merged < export, merged, -1)),
        ).with_columns(
            pl.lit("pull").alias("_kind"),
            (pl.col("number") + project_id * 10_000_000 + 3_000_000_000).alias("_id"),
            _q(pl.concat_str([pl.lit("Fix #"), (pl.col("number") - 1).cast(pl.String)])).alias("_title"),
            _lookup("login", users).alias("_user"), pl.lit("").alias("_labels"),
            pl.when(pl.col("merged").is_null()).then(pl.lit("open")).otherwise(pl.lit("closed")).alias("_state"),
            pl.lit("null").alias("_assignee"), pl.lit("[]").alias("_assignees"), pl.lit("null").alias("_milestone"),
            _q(_fmt("created_at", _GH_TS)).alias("_created"),
            pl.coalesce(pl.col("merged"), pl.col("created_at")).dt.strftime(_GH_TS).alias("_updated"),
            _q(_fmt("merged", _GH_TS)).alias("_closed"), pl.lit('"Closes the issue above."').alias("_body"),
            pl.when(pl.col("merged").is_null()).then(pl.lit("null")).otherwise(pl.lit('"completed"')).alias("_reason"),
        )  # fmt: skip
        rendered = pl.concat([rendered_issues, prs.select(pl.col("number"), _render(pr_tpl).alias("r"))])
    # the API lists newest first
    rendered = rendered.sort("number", descending=True)["r"]
    stem = f"{repo.replace('/', '-')}{tag}-issues-page"
    paths = _write_pages(rendered, out, stem, PAGE_SIZE, lambda start, total: ("[", "]"),
                         PAGE_SIZE - 1 if duplicate else None)  # fmt: skip
    return paths, len(free)


# Asana ----------------------------------------------------------------------------------------------

_ASANA_HEADER = [
    "Task ID", "Created At", "Completed At", "Last Modified", "Name", "Section/Column", "Assignee", "Assignee Email",
    "Start Date", "Due Date", "Tags", "Notes", "Projects", "Parent task", "Blocked By (Dependencies)", "Blocking (Dependencies)",
]  # fmt: skip


def _write_asana(
    t: pl.DataFrame, project: Project, people: dict[str, Person], out: Path, tag: str
) -> list[Path]:
    names = {login: p.name for login, p in people.items()}
    emails = {login: f"{login}@acme.example" for login in people}
    titles = dict(zip(t["key"].to_list(), t["title"].to_list(), strict=True))
    completed = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=3))
        .otherwise(pl.col("resolved_at"))
    )
    section = pl.col("status_category").replace_strict(
        {"todo": "To Do", "in_progress": "In Progress", "done": "Done"}
    )
    section = (
        pl.when(pl.col("review_at").is_not_null() & pl.col("resolved_at").is_null())
        .then(pl.lit("Review"))
        .otherwise(section)
    )
    frame = t.sort("created_at").select(
        pl.col("key").alias("Task ID"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("")).otherwise(pl.col("created_at").dt.strftime("%Y-%m-%d")).alias("Created At"),
        completed.dt.strftime("%Y-%m-%d").fill_null("").alias("Completed At"),
        pl.col("updated_at").dt.strftime("%Y-%m-%d").alias("Last Modified"),
        pl.col("title").alias("Name"),
        pl.when(pl.col("parent_key").is_not_null()).then(pl.lit("")).otherwise(section).alias("Section/Column"),
        pl.col("assignee_login").replace_strict(names, default="").alias("Assignee"),
        pl.col("assignee_login").replace_strict(emails, default="").alias("Assignee Email"),
        pl.col("started_at").dt.strftime("%Y-%m-%d").fill_null("").alias("Start Date"),
        pl.col("due_at").dt.strftime("%Y-%m-%d").fill_null("").alias("Due Date"),
        pl.col("labels").str.replace_all(",", ", ", literal=True).alias("Tags"),
        _description(pl.col("description_length"), pl.col("number") % 83).str.replace(". ", ".\n", literal=True).alias("Notes"),
        pl.when(pl.col("parent_key").is_not_null()).then(pl.lit("")).otherwise(pl.lit(project.name)).alias("Projects"),
        pl.col("parent_key").replace_strict(titles, default="").alias("Parent task"),
        pl.lit("").alias("Blocked By (Dependencies)"),
        pl.lit("").alias("Blocking (Dependencies)"),
    )  # fmt: skip
    path = out / f"{project.key.lower().replace(' ', '-')}{tag}.csv"
    frame.write_csv(path)
    return [path]


# Trello ---------------------------------------------------------------------------------------------

_TRELLO_COLORS = {"Urgent": "red", "High": "orange", "Low": "green"}


def _hex_id(seconds: int, counter: int) -> str:
    return f"{seconds:08x}{counter:016x}"


def _write_trello(
    t: pl.DataFrame,
    project: Project,
    project_id: int,
    people: dict[str, Person],
    export: int,
    out: Path,
    tag: str,
) -> list[Path]:
    start = int(t["created_at"].min().timestamp()) - 86400 if len(t) else export // US
    board_id = _hex_id(start, 0xB0A4D0000000 + project_id)
    board_ref = json.dumps(
        {"id": board_id, "name": project.name, "shortLink": "Cmpgn" + str(project_id)}, separators=(",", ":")
    )
    list_ids = {name: _hex_id(start, 0x11570000 + i) for i, name in enumerate(_TRELLO_LISTS)}
    label_names = ["Urgent", "High", "Low", *_LABELS]
    label_ids = {name: _hex_id(start, 0x1AB00000 + i) for i, name in enumerate(label_names)}
    label_objs = {
        name: json.dumps({"id": label_ids[name], "idBoard": board_id, "name": name,
                          "color": _TRELLO_COLORS.get(name, ("sky", "purple", "lime", "pink", "black", "blue", "yellow", "green")[i % 8])},
                         separators=(",", ":"))
        for i, name in enumerate(label_names)
    }  # fmt: skip
    members = {login: p.account_id for login, p in people.items()}
    creators = {
        login: json.dumps({"id": p.account_id, "activityBlocked": False, "avatarHash": None, "avatarUrl": None, "fullName": p.name,
                           "idMemberReferrer": None, "initials": "".join(w[0] for w in p.name.split()), "nonPublic": {},
                           "nonPublicAvailable": False, "username": p.login}, ensure_ascii=False, separators=(",", ":"))
        for login, p in people.items()
    }  # fmt: skip
    t = t.sort("created_at").with_columns(
        pl.Series("_card", _trello_ids_of(t.sort("created_at"))),
        pl.coalesce(pl.col("assignee_login"), pl.col("reporter_login")).alias("_actor"),
        pl.when(pl.col("priority_ordinal") <= 2)
        .then(pl.lit("Backlog"))
        .otherwise(pl.lit("To Do"))
        .alias("_first_list"),
    )
    card_tpl = (
        '{"id":"@@_card@@","address":null,"checkItemStates":null,"closed":false,"coordinates":null,"creationMethod":null,'
        '"dateLastActivity":"@@_updated@@","desc":@@_desc@@,"descData":{"emoji":{}},"dueReminder":null,"idBoard":"'
        + board_id
        + '",'
        '"idLabels":[@@_idlabels@@],"idList":"@@_list@@","idMembersVoted":[],"idShort":@@number@@,"idAttachmentCover":null,'
        '"locationName":null,"manualCoverAttachment":false,"name":@@_name@@,"pos":@@_pos@@,"shortLink":"@@_short@@","isTemplate":false,'
        '"badges":{"attachmentsByType":{"trello":{"board":0,"card":0}},"location":false,"votes":0,"viewingMemberVoted":false,'
        '"subscribed":false,"fogbugz":"","checkItems":0,"checkItemsChecked":0,"checkItemsEarliestDue":null,"comments":@@n_comments@@,'
        '"attachments":0,"description":@@_hasdesc@@,"due":@@_due@@,"dueComplete":@@_duecomplete@@},"dueComplete":@@_duecomplete@@,'
        '"due":@@_due@@,"idChecklists":[],"idMembers":@@_members@@,"labels":[@@_labelobjs@@],'
        '"shortUrl":"https://trello.com/c/@@_short@@","subscribed":false,"url":"https://trello.com/c/@@_short@@/@@number@@",'
        '"cover":{"idAttachment":null,"color":null,"idUploadedBackground":null,"size":"normal","brightness":"light"},'
        '"attachments":[],"pluginData":[],"customFieldItems":[]}'
    )
    label_list = pl.col("labels").str.split(",")
    cards = t.select(
        pl.col("_card"), pl.col("number"), pl.col("n_comments"),
        _fmt("updated_at", _TRELLO_TS).alias("_updated"),
        _q(_description(pl.col("description_length"), pl.col("number") % 61)).alias("_desc"),
        pl.when(pl.col("description_length") > 0).then(pl.lit("true")).otherwise(pl.lit("false")).alias("_hasdesc"),
        label_list.list.eval(pl.element().replace_strict(label_ids, default=None)).list.drop_nulls()
        .list.eval(pl.concat_str([pl.lit('"'), pl.element(), pl.lit('"')])).list.join(",").alias("_idlabels"),
        label_list.list.eval(pl.element().replace_strict(label_objs, default=None)).list.drop_nulls().list.join(",").alias("_labelobjs"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("5f0000000000000000000000"))
        .otherwise(pl.col("status").replace_strict(list_ids)).alias("_list"),
        _q(pl.col("title")).alias("_name"),
        (pl.col("number") * 16384).alias("_pos"),
        pl.col("_card").str.slice(16, 8).alias("_short"),
        _q(pl.col("deadline_at").dt.strftime("%Y-%m-%dT16:00:00.000Z")).alias("_due"),
        pl.when(pl.col("resolved_at").is_not_null() & pl.col("deadline_at").is_not_null()).then(pl.lit("true")).otherwise(pl.lit("false")).alias("_duecomplete"),
        pl.when(pl.col("assignee_login").is_null()).then(pl.lit("[]")).otherwise(
            pl.concat_str([pl.lit('["'), pl.col("assignee_login").replace_strict(members, default=""), pl.lit('"]')])).alias("_members"),
    ).select(_render(card_tpl).alias("r"))["r"]  # fmt: skip

    # actions: createCard, then one updateCard per move between lists (newest first, as exported)
    base = t.select(
        "_card",
        "number",
        "title",
        "_actor",
        "_first_list",
        "created_at",
        "started_at",
        "review_at",
        "resolved_at",
    )
    prev_done = (
        pl.when(pl.col("review_at").is_not_null())
        .then(pl.lit("Review"))
        .when(pl.col("started_at").is_not_null())
        .then(pl.lit("Doing"))
        .otherwise(pl.col("_first_list"))
    )
    moves = pl.concat([
        base.select(pl.all(), pl.col("created_at").alias("_at"), pl.lit(None, pl.String).alias("_from"), pl.col("_first_list").alias("_to"), pl.lit(0).alias("_j")),
        base.filter(pl.col("started_at").is_not_null()).select(pl.all(), pl.col("started_at").alias("_at"), pl.col("_first_list").alias("_from"), pl.lit("Doing").alias("_to"), pl.lit(1).alias("_j")),
        base.filter(pl.col("review_at").is_not_null()).select(pl.all(), pl.col("review_at").alias("_at"), pl.lit("Doing").alias("_from"), pl.lit("Review").alias("_to"), pl.lit(2).alias("_j")),
        base.filter(pl.col("resolved_at").is_not_null()).select(pl.all(), pl.col("resolved_at").alias("_at"), prev_done.alias("_from"), pl.lit("Done").alias("_to"), pl.lit(3).alias("_j")),
    ]).sort("_at", descending=True)  # fmt: skip
    action_tpl_head = '{"id":"@@_aid@@","idMemberCreator":"@@_mid@@","data":{'
    move_tpl = action_tpl_head + (
        '"old":{"idList":"@@_fromid@@"},"card":{"idList":"@@_toid@@","id":"@@_card@@","name":@@_name@@,"idShort":@@number@@,'
        '"shortLink":"@@_short@@"},"board":'
        + board_ref
        + ',"listBefore":{"id":"@@_fromid@@","name":"@@_from@@"},'
        '"listAfter":{"id":"@@_toid@@","name":"@@_to@@"}},"type":"updateCard","date":"@@_date@@","limits":{},"memberCreator":@@_creator@@}'
    )
    create_tpl = action_tpl_head + (
        '"card":{"id":"@@_card@@","name":@@_name@@,"idShort":@@number@@,"shortLink":"@@_short@@"},'
        '"list":{"id":"@@_toid@@","name":"@@_to@@"},"board":'
        + board_ref
        + '},"type":"createCard","date":"@@_date@@",'
        '"limits":{},"memberCreator":@@_creator@@}'
    )
    actions = moves.with_columns(
        pl.concat_str([pl.col("_at").dt.epoch("s").map_batches(_hex8, return_dtype=pl.String),
                       pl.lit("ac"), pl.col("_card").str.slice(10, 12), pl.col("_j").cast(pl.String).str.zfill(2)]).alias("_aid"),
        pl.col("_actor").replace_strict(members, default="").alias("_mid"),
        pl.col("_actor").replace_strict(creators, default="null").alias("_creator"),
        pl.col("_from").replace_strict(list_ids, default=None).alias("_fromid"),
        pl.col("_to").replace_strict(list_ids).alias("_toid"),
        _q(pl.col("title")).alias("_name"),
        pl.col("_card").str.slice(16, 8).alias("_short"),
        pl.col("_at").dt.strftime(_TRELLO_TS).alias("_date"),
    ).select(pl.when(pl.col("_j") == 0).then(_render(create_tpl)).otherwise(_render(move_tpl)).alias("r"))["r"]  # fmt: skip

    lists = [
        {"id": list_ids[name], "name": name, "closed": False, "idBoard": board_id, "pos": 16384 * (i + 1), "subscribed": False,
         "softLimit": None, "creationMethod": None}
        for i, name in enumerate(_TRELLO_LISTS)
    ]  # fmt: skip
    member_objs = [
        {"id": p.account_id, "activityBlocked": False, "avatarHash": None, "avatarUrl": None, "bio": "", "bioData": {"emoji": {}},
         "confirmed": True, "fullName": p.name, "idEnterprise": None, "initials": "".join(w[0] for w in p.name.split()),
         "memberType": "normal", "nonPublic": {}, "nonPublicAvailable": True, "products": [], "url": f"https://trello.com/{p.login}",
         "username": p.login, "status": "disconnected"}
        for p in sorted(people.values(), key=lambda p: p.index)
    ]  # fmt: skip
    board_head = {
        "id": board_id, "name": project.name, "desc": "", "descData": None, "closed": False, "idOrganization": None,
        "idEnterprise": None, "pinned": False, "starred": False, "url": f"https://trello.com/b/Cmpgn{project_id}/campaigns",
        "prefs": {"permissionLevel": "org", "background": "blue", "cardAging": "regular"}, "shortLink": f"Cmpgn{project_id}",
        "subscribed": False, "labelNames": {}, "powerUps": 0,
        "dateLastActivity": datetime.fromtimestamp(export // US, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "dateLastView": None, "shortUrl": f"https://trello.com/b/Cmpgn{project_id}", "idTags": 0,
    }  # fmt: skip
    dumps = lambda obj: json.dumps(obj, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    memberships = [{"id": _hex_id(start, 0x3E3B0000 + i), "idMember": m["id"], "memberType": "normal", "unconfirmed": False,
                    "deactivated": False} for i, m in enumerate(member_objs)]  # fmt: skip
    tail = (
        '],"labels":['
        + ",".join(label_objs.values())
        + '],"lists":'
        + dumps(lists)
        + ',"members":'
        + dumps(member_objs)
        + ',"checklists":[],"customFields":[],"memberships":'
        + dumps(memberships)
        + ',"pluginData":[]}'
    )
    pieces = [
        dumps(board_head)[:-1] + ',"actions":[',
        actions.str.join(","),
        '],"cards":[',
        cards.str.join(","),
        tail,
    ]
    path = out / f"{project.key.lower().replace(' ', '-')}{tag}-board.json"
    with path.open("wb") as fh:
        for piece in pieces:
            fh.write(piece.encode("utf-8") if isinstance(piece, str) else _utf8_rows(piece)[0])
    return [path]


def _hex8(s: pl.Series) -> pl.Series:
    return pl.Series(_hex(s.to_numpy(), 8))


def _trello_ids_of(t: pl.DataFrame) -> list[str]:
    secs = t["created_at"].dt.epoch("s").to_numpy()
    return np.char.add(_hex(secs, 8), _hex(0x5E4422FC00000000 + t["number"].to_numpy(), 16)).tolist()


# generic CSV ----------------------------------------------------------------------------------------

_CSV_MAPPING = """\
# Mapping for a helpdesk tool's ticket export (semicolon-separated, German date format).
source_name: helpdesk
delimiter: ";"
key: {column: Ticket}
created_at: {column: Opened, format: "%d.%m.%Y %H:%M"}
updated_at: {column: Updated, format: "%d.%m.%Y %H:%M"}
resolved_at: {column: Closed, format: "%d.%m.%Y %H:%M"}
due_at: {column: Due, format: "%d.%m.%Y"}
project: {value: helpdesk}
title: {column: Subject}
type: {column: Category}
priority:
  column: Prio
  map: {"1 - Critical": highest, "2 - High": high, "3 - Normal": medium, "4 - Low": low, "5 - Planning": lowest}
status: {column: State}
status_category:
  column: State
  map: {New: todo, "In Progress": in_progress, "Waiting for Customer": in_progress, Closed: done}
assignee: {column: Agent}
reporter: {column: Requester}
original_estimate_h: {column: "Effort (h)"}
n_comments: {column: Replies}
description: {column: Description}
"""


def _write_csv(t: pl.DataFrame, project: Project, out: Path, tag: str) -> list[Path]:
    closed = (
        pl.when(pl.col("defect") == "resolved_before_created")
        .then(pl.col("created_at") - pl.duration(days=3))
        .otherwise(pl.col("resolved_at"))
    )
    frame = t.sort("created_at").select(
        pl.col("key").alias("Ticket"),
        pl.col("title").alias("Subject"),
        pl.col("type").alias("Category"),
        pl.col("priority").alias("Prio"),
        pl.col("status").alias("State"),
        pl.concat_str([pl.col("assignee_login"), pl.lit("@acme.example")]).fill_null("").alias("Agent"),
        pl.concat_str([pl.col("reporter_login"), pl.lit("@acme.example")]).fill_null("").alias("Requester"),
        pl.when(pl.col("defect") == "missing_required_field").then(pl.lit("")).otherwise(_fmt("created_at", _CSV_TS)).alias("Opened"),
        _fmt("updated_at", _CSV_TS).alias("Updated"),
        closed.dt.strftime(_CSV_TS).fill_null("").alias("Closed"),
        pl.col("due_at").dt.strftime("%d.%m.%Y").fill_null("").alias("Due"),
        pl.col("original_estimate_h").cast(pl.String).str.replace(".", ",", literal=True).fill_null("").alias("Effort (h)"),
        pl.col("n_comments").alias("Replies"),
        _description(pl.col("description_length"), pl.col("number") % 79).alias("Description"),
    )  # fmt: skip
    stem = f"{project.key}{tag}"
    path = out / f"{stem}.csv"
    frame.write_csv(path, separator=";")
    (out / f"{stem}.yaml").write_text(_CSV_MAPPING, encoding="utf-8")
    return [path, out / f"{stem}.yaml"]


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


def cli_generate(args: Any) -> int:
    """``mlops-assets generate``: write the sample unless ``--if-empty`` finds files already there."""
    out = Path(args.out)
    if args.if_empty and out.exists() and any(p.is_file() for p in out.rglob("*")):
        sys.stdout.write(f"{out} already holds files: nothing generated (--if-empty)\n")
        return 0
    summary = generate(out, n_tasks=args.tasks, seed=args.seed, drift=args.drift,
                       main_tasks=getattr(args, "main_tasks", None) or 6000)  # fmt: skip
    batch = "drift batch" if args.drift else "batch"
    sys.stdout.write(f"synthetic {batch}: {args.tasks} tasks, seed {args.seed} -> {out}\n")
    for source, entry in summary["sources"].items():
        extra = f", {entry['pull_requests']} pull requests" if entry["pull_requests"] else ""
        sys.stdout.write(
            f"  {source:<7} {len(entry['files']):>5} files {entry['tasks']:>8} tasks "
            f"({entry['defects']} broken on purpose, {entry['duplicates']} duplicated{extra})\n"
        )
    return 0
