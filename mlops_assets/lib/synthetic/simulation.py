"""The latent task model: one seeded batch simulated as numpy arrays (:class:`_Sim`).

Creation times, assignees and their open workload, cycle times, status paths, deadlines, the event
history after creation (hand-overs, blocked spells, moved due dates), what gets recorded, and the
deliberate defects; ``drift=True`` gives the later, shifted batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops_assets.lib.synthetic.world import (
    _CONTEXTS,
    _LOREM,
    _OBJECTS,
    _VERBS,
    DAY,
    DEFECT_RATE,
    DRIFT_EXPORT,
    DRIFT_PROJECT,
    DRIFT_START,
    DRIFT_TEAM,
    MAIN_EXPORT,
    MAIN_START,
    PR_SHARE,
    PROJECTS,
    TEAMS,
    US,
    Person,
    Project,
    _people,
    _us,
)

# --- the simulation ---------------------------------------------------------------------------

_TYPE_P = np.array([0.30, 0.30, 0.20, 0.10, 0.03, 0.07])
_TYPE_SIZE = np.array([0.4, 0.9, 1.3, 1.0, 2.6, 0.1])  # log ideal effort (days)
_TYPE_EFFECT = np.array([-0.30, 0.0, 0.15, 0.10, 0.55, -0.20])
_PRIO_P = np.array([0.05, 0.20, 0.47, 0.20, 0.08])
_PRIO_P_DRIFT = np.array([0.03, 0.10, 0.30, 0.35, 0.22])
_PRIO_EFFECT = np.array([0.65, 0.35, 0.0, -0.45, -0.95])
_ABANDON_P = np.array([0.50, 0.30, 0.12, 0.05, 0.02])  # backlog items nobody ever finishes


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
        handed_over = can_hand_over & (
            u_handover < np.where(abandoned, 0.35, np.where(load > 1.5 * mean_load, 0.25, 0.08) * turmoil)
        )
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
    move &= (
        (due_moved > created + 3600 * US) & (due_moved < export) & ((resolved < 0) | (due_moved < resolved))
    )
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
