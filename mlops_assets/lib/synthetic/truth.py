"""The ground-truth task table (:func:`synthetic_tasks`) and the source spellings it carries."""

from __future__ import annotations

import numpy as np
import polars as pl

from mlops_assets.lib.sources.base import pseudonymize
from mlops_assets.lib.synthetic.simulation import _Sim, _simulate
from mlops_assets.lib.synthetic.world import (
    _CONTEXTS,
    _LABELS,
    _OBJECTS,
    _VERBS,
    CANONICAL_PRIORITIES,
    CANONICAL_TYPES,
    DAY,
    US,
    Person,
)

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
