"""Raw layer -> clean layer: one validated row per task (its latest version), events, quarantine.

Runs as SQL inside DuckDB so a million tasks clean in seconds. Rules, in order:
1. Every raw task record is checked; one that cannot be used (no key or creation date, resolved
   before it was created, created in the future or before 1990 (task_rules, the rule serving
   applies too), non-finite or negative estimates, negative counts) goes to quarantine with the first
   reason that applies.
2. Of the usable records of one task, the latest version wins (updated_at, then the later
   ingestion). A loser whose normalized content equals the winner's (the same issue exported twice,
   e.g. Jira's plain and `expand=changelog` payloads) or that is older is *superseded*; a loser with
   the same updated_at but different content is a conflicting duplicate and goes to quarantine,
   naming the record that was kept. Every quarantine row has a reason (checked: schemas.QuarantineSchema).
   A mapped CSV row read again (its mapping was fixed) is superseded by its latest reading first,
   whatever the dates: the later reading is the user's correction.
3. Free text (title, labels, project, type, status, raw priority; event values) has its e-mail
   addresses replaced by ``<email>``. Derived columns: canonical priority and ordinal, type in lower case (one "bug" across tools),
   is_late, late_outcome_known, cycle_time_days.
Conservation: raw task records = tasks + superseded + quarantined at this stage (reported in stats).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from mlops_assets.lib import schemas
from mlops_assets.lib.ingestion import SOURCES, raw_table
from mlops_assets.lib.sources.base import TASK_COLUMNS
from mlops_assets.lib.task_rules import BEFORE_EARLIEST, EARLIEST_CREATED_AT, FUTURE_TOLERANCE, IN_THE_FUTURE
from mlops_assets.lib.warehouse import Warehouse

# Canonical priority scale; Jira's classic scheme maps onto it the way Jira's own migration does
# (Blocker->Highest, Critical->High, Major->Medium, Minor->Low, Trivial->Lowest).
PRIORITY_ORDINAL = {"lowest": 1, "low": 2, "medium": 3, "high": 4, "highest": 5}
PRIORITY_SYNONYMS = {
    "highest": "highest",
    "blocker": "highest",
    "urgent": "highest",
    "p0": "highest",
    "critical!": "highest",
    "immediate": "highest",
    "showstopper": "highest",
    "high": "high",
    "critical": "high",
    "p1": "high",
    "important": "high",
    "medium": "medium",
    "major": "medium",
    "normal": "medium",
    "p2": "medium",
    "moderate": "medium",
    "low": "low",
    "minor": "low",
    "p3": "low",
    "lowest": "lowest",
    "trivial": "lowest",
    "p4": "lowest",
    "p5": "lowest",
    "none": "lowest",
}

_META = ("record_hash", "source_file", "locator", "ingested_at")

# No table past raw holds personal data: people are pseudonymous ids, and an e-mail address typed
# into free text (a title, a label, a status name) is replaced by this at cleaning.
EMAIL_MASK = "<email>"
EMAIL_PATTERN = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"


def mask(column: str) -> str:
    """SQL for ``column`` with every e-mail address in it replaced by EMAIL_MASK."""
    return f"regexp_replace({column}, '{EMAIL_PATTERN}', '{EMAIL_MASK}', 'g')"


@dataclass
class CleanStats:
    """Counts that must conserve: input task records = tasks + superseded + quarantined."""

    input_records: int
    tasks: int
    superseded: int
    quarantined: int
    parse_rejects: int
    events: int
    by_source: dict[str, int]
    refused_by_contract: int = (
        0  # of `quarantined`: rows the rules passed and TasksSchema refused (audit_tasks)
    )
    tasks_validation: schemas.ValidationOutcome | None = None  # TasksSchema on the returned clean.tasks

    @property
    def conserved(self) -> bool:
        return self.input_records == self.tasks + self.superseded + self.quarantined


def _existing(con, tables: list[str]) -> list[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables WHERE table_schema = 'raw'"
    ).fetchall()
    present = {r[0] for r in rows}
    return [t for t in tables if t in present]


def _union(
    con, kind: str, columns: list[str], extra: dict[str, str] | None = None, default_extra: str = ""
) -> str:
    """SQL for the union of every source's raw ``kind`` table; ``extra``: source -> one more column's SQL
    (``default_extra`` for the other sources).
    """
    sources = [s for s, spec in SOURCES.items() if kind in spec[2]]
    present = set(_existing(con, [raw_table(s, kind) for s in sources]))
    cols = ", ".join(f'"{c}"' for c in columns)
    parts = []
    for source in sources:
        if raw_table(source, kind) in present:
            more = (extra or {}).get(source, default_extra)
            parts.append(f"SELECT {cols}{', ' + more if more else ''} FROM {raw_table(source, kind)}")
    return " UNION ALL ".join(parts)


# A reject of a reading that a later reading of the same path replaced: for a mapped CSV any reading
# (its rows were read again through the new mapping); for other sources a file that could not be read
# at all and has since been read (records a file's new content no longer holds stay in quarantine).
_REREAD_REJECT = """EXISTS (SELECT 1 FROM raw.ingested_files f
              WHERE f.source = r.source AND f.source_file = r.source_file AND f.status = 'ingested'
                AND f.file_hash <> r.file_hash AND f.ingested_at > r.ingested_at
                AND (r.source = 'csv' OR r.locator = '<file>'))"""


def build_clean(
    warehouse: Warehouse, now: datetime | None = None
) -> tuple[dict[str, pl.DataFrame], CleanStats]:
    """Compute clean.tasks, clean.task_events and clean.quarantine from the raw layer (no writes)."""
    now = now or datetime.now(UTC)
    task_cols = list(TASK_COLUMNS) + list(_META)
    with warehouse.connect() as con:
        # a mapped CSV's row text, to tell a re-read of the same row under a fixed mapping (rule 2)
        union = _union(
            con,
            "tasks",
            task_cols,
            extra={"csv": "hash(payload) AS row_text"},
            default_extra="NULL::UBIGINT AS row_text",
        )
        if not union:
            raise RuntimeError(
                "the raw layer holds no task tables yet: materialize the raw/* ingestion assets first"
            )
        con.register(
            "_prio",
            pl.DataFrame(
                {"alias": list(PRIORITY_SYNONYMS), "canonical": list(PRIORITY_SYNONYMS.values())}
            ).to_arrow(),
        )
        content_cols = ", ".join(f'"{c}"' for c in TASK_COLUMNS if c not in ("updated_at",))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE t_checked AS
            SELECT *, hash({content_cols}) AS content_hash,
              CASE
                WHEN task_id IS NULL OR "key" IS NULL THEN 'no task key: the record cannot be identified'
                WHEN created_at IS NULL THEN 'no created_at: a task without a creation date cannot be placed in time'
                WHEN resolved_at < created_at THEN 'resolved_at ' || strftime(resolved_at, '%Y-%m-%d %H:%M') ||
                     ' is before created_at ' || strftime(created_at, '%Y-%m-%d %H:%M') || ': fix the dates in the source'
                WHEN created_at > $latest::TIMESTAMPTZ THEN 'created_at ' || strftime(created_at, '%Y-%m-%d') || $future
                WHEN created_at < $earliest::TIMESTAMPTZ THEN 'created_at ' || strftime(created_at, '%Y-%m-%d') || $before
                WHEN NOT isfinite(story_points) OR NOT isfinite(original_estimate_h) OR NOT isfinite(time_spent_h) THEN
                     'estimate is not a finite number (' || concat_ws(', ',
                       CASE WHEN NOT isfinite(story_points) THEN 'story_points ' || story_points END,
                       CASE WHEN NOT isfinite(original_estimate_h) THEN 'original_estimate_h ' || original_estimate_h END,
                       CASE WHEN NOT isfinite(time_spent_h) THEN 'time_spent_h ' || time_spent_h END) ||
                     '): fix or clear the estimate in the source'
                WHEN story_points < 0 OR original_estimate_h < 0 OR time_spent_h < 0 THEN
                     'negative story points or hours: estimates must be >= 0'
                WHEN n_comments < 0 OR n_links < 0 OR n_subtasks < 0 OR n_labels < 0 OR description_length < 0 THEN
                     'negative count (' || concat_ws(', ',
                       CASE WHEN n_comments < 0 THEN 'n_comments ' || n_comments END,
                       CASE WHEN n_links < 0 THEN 'n_links ' || n_links END,
                       CASE WHEN n_subtasks < 0 THEN 'n_subtasks ' || n_subtasks END,
                       CASE WHEN n_labels < 0 THEN 'n_labels ' || n_labels END,
                       CASE WHEN description_length < 0 THEN 'description_length ' || description_length END) ||
                     '): counts must be >= 0; fix the export'
              END AS problem,
              -- the latest reading of a mapped CSV row supersedes the earlier ones (a fixed mapping)
              row_text IS NOT NULL AND row_number() OVER (PARTITION BY source_file, row_text
                ORDER BY ingested_at DESC, record_hash) > 1 AS reread
            FROM ({union})""",  # straight from the raw tables: no intermediate copy of every record
            {
                "latest": now + FUTURE_TOLERANCE,
                "earliest": EARLIEST_CREATED_AT,
                "future": IN_THE_FUTURE,
                "before": BEFORE_EARLIEST,
            },
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE t_ranked AS
            SELECT *,
              row_number() OVER w AS version_rank,
              first_value(content_hash) OVER w AS winner_content,
              first_value(updated_at) OVER w AS winner_updated,
              first_value(source_file || ' ' || locator) OVER w AS winner_where
            FROM t_checked WHERE problem IS NULL AND NOT reread
            -- the last tie-break is natural order within a file: line 10 after line 9 (shorter first,
            -- then text: a full natural key, numbers padded, cost ~5 s per 1M records)
            WINDOW w AS (PARTITION BY task_id ORDER BY updated_at DESC NULLS LAST, ingested_at DESC,
                         length(source_file) DESC, source_file DESC, length(locator) DESC, locator DESC)"""
        )
        comments_union = _union(con, "comments", ["task_id", "comment_id"])
        comment_counts = (
            f"(SELECT task_id, count(DISTINCT comment_id) AS n FROM ({comments_union}) GROUP BY task_id)"
            if comments_union
            else "(SELECT NULL::VARCHAR AS task_id, 0::BIGINT AS n WHERE false)"
        )
        tasks = con.execute(
            f"""
            WITH w AS (SELECT * FROM t_ranked WHERE version_rank = 1),
            p AS (
              SELECT w.*, _prio.canonical AS priority_canonical
              FROM w LEFT JOIN _prio ON _prio.alias = lower(trim(regexp_replace(coalesce(w.priority, ''),
                   '^(priority|prio|pri)\\s*[:/_ -]?\\s*', '', 'i')))
            )
            SELECT
              p.task_id, p.source, {mask("p.project")} AS project, p."key", {mask("p.title")} AS title,
              nullif(lower(trim({mask("p.type")})), '') AS type,  -- "Bug" (Jira) and "bug" (GitHub label) are one type
              p.priority_canonical AS priority,
              CASE p.priority_canonical WHEN 'lowest' THEN 1 WHEN 'low' THEN 2 WHEN 'medium' THEN 3
                   WHEN 'high' THEN 4 WHEN 'highest' THEN 5 END::TINYINT AS priority_ordinal,
              {mask("p.priority")} AS priority_raw,
              {mask("p.status")} AS status,
              CASE WHEN p.status_category IN ('todo', 'in_progress', 'done') THEN p.status_category
                   WHEN p.resolved_at IS NOT NULL THEN 'done' ELSE 'todo' END AS status_category,
              p.assignee_id, p.reporter_id,
              p.created_at, p.updated_at, p.resolved_at, p.due_at, p.deadline_at,
              p.story_points, p.original_estimate_h, p.time_spent_h,
              CASE WHEN c.task_id IS NULL THEN p.n_comments ELSE greatest(coalesce(p.n_comments, 0), c.n) END AS n_comments,
              p.n_links, p.n_subtasks, p.n_labels, p.description_length, {mask("p.labels")} AS labels,
              CASE WHEN p.deadline_at IS NULL THEN NULL
                   WHEN p.resolved_at IS NOT NULL THEN p.resolved_at::DATE > p.deadline_at::DATE
                   ELSE $now::TIMESTAMPTZ::DATE > p.deadline_at::DATE END AS is_late,
              (p.resolved_at IS NOT NULL OR (p.deadline_at IS NOT NULL AND $now::TIMESTAMPTZ::DATE > p.deadline_at::DATE))
                AS late_outcome_known,
              CASE WHEN p.resolved_at IS NOT NULL
                   THEN epoch(p.resolved_at - p.created_at) / 86400.0 END AS cycle_time_days,
              p.record_hash, p.source_file, p.ingested_at, p.locator AS _locator
            FROM p LEFT JOIN {comment_counts} c ON c.task_id = p.task_id
            ORDER BY p.task_id
            """,
            {"now": now},
        ).pl()
        quarantine = con.execute(
            """
            SELECT source, source_file, locator, task_id, record_hash, reason, stage, payload, quarantined_at FROM (
              SELECT source, source_file, locator, task_id, record_hash, problem AS reason, 'clean' AS stage,
                     NULL::VARCHAR AS payload, ingested_at AS quarantined_at
              FROM t_checked WHERE problem IS NOT NULL AND NOT reread
              UNION ALL
              SELECT source, source_file, locator, task_id, record_hash,
                     'conflicting duplicate of ' || task_id || ': ' ||
                     CASE WHEN winner_updated IS NULL THEN 'neither version has an updated_at to tell the newer'
                          ELSE 'same updated_at (' || strftime(winner_updated, '%Y-%m-%d %H:%M:%S') || ')' END ||
                     ' but different content; kept ' || winner_where || ', fix or remove the other export' ||
                     CASE WHEN winner_updated IS NULL THEN ' (or map an updated_at column)' ELSE '' END,
                     'clean', NULL, ingested_at
              FROM t_ranked WHERE version_rank > 1 AND content_hash <> winner_content
                   AND updated_at IS NOT DISTINCT FROM winner_updated
            )
            """
        ).pl()
        if _existing(con, ["raw.rejects"]):
            # the rejected record itself (names, e-mails) stays in raw.rejects, one join away on
            # record_hash: no table past raw holds personal data
            # a reading of a file that a later reading of the same path replaced (a fixed mapping, a
            # repaired file) no longer counts against it: its rejects stay in raw.rejects, out of quarantine
            parse_rejects = con.execute(
                f"""SELECT source, source_file, locator, NULL::VARCHAR AS task_id, record_hash, reason,
                          'parse' AS stage, NULL::VARCHAR AS payload, ingested_at AS quarantined_at
                   FROM raw.rejects r
                   WHERE NOT ({_REREAD_REJECT}) ORDER BY source, source_file, locator"""
            ).pl()
        else:
            parse_rejects = quarantine.clear()
        superseded = con.execute(
            """SELECT (SELECT count(*) FROM t_ranked WHERE version_rank > 1
               AND NOT (content_hash <> winner_content AND updated_at IS NOT DISTINCT FROM winner_updated))
               + (SELECT count(*) FROM t_checked WHERE reread)"""
        ).fetchall()[0][0]
        input_records = con.execute("SELECT count(*) FROM t_checked").fetchall()[0][0]
        events_union = _union(
            con,
            "events",
            [
                "task_id",
                "source",
                "event_id",
                "changed_at",
                "field",
                "from_value",
                "to_value",
                "author_id",
                "ingested_at",
            ],
        )
        if events_union:
            con.register("_task_ids", tasks.select("task_id").to_arrow())
            events = con.execute(
                f"""SELECT task_id, source, event_id, changed_at, field, {mask("from_value")} AS from_value,
                           {mask("to_value")} AS to_value, author_id
                    FROM ({events_union}) e
                    WHERE task_id IN (SELECT task_id FROM _task_ids)
                    QUALIFY row_number() OVER (PARTITION BY task_id, event_id ORDER BY ingested_at) = 1
                    ORDER BY task_id, changed_at, event_id"""
            ).pl()
        else:
            events = pl.DataFrame(
                schema={
                    "task_id": pl.String,
                    "source": pl.String,
                    "event_id": pl.String,
                    "changed_at": pl.Datetime("us", "UTC"),
                    "field": pl.String,
                    "from_value": pl.String,
                    "to_value": pl.String,
                    "author_id": pl.String,
                }
            )
    # write-audit-publish: the staged table is validated here, before anything is written; a row the
    # rules above let through but the contract refuses is quarantined with the check it failed
    tasks, refused, validation = audit_tasks(tasks)
    if refused.height:
        quarantine = pl.concat([quarantine, refused], how="vertical_relaxed")
        events = events.filter(pl.col("task_id").is_in(tasks["task_id"].implode()))
    all_quarantine = pl.concat([quarantine, parse_rejects], how="vertical_relaxed").sort(
        ["source", "source_file", "locator"], nulls_last=True
    )
    stats = CleanStats(
        input_records=input_records,
        tasks=tasks.height,
        superseded=superseded,
        quarantined=quarantine.height,
        parse_rejects=parse_rejects.height,
        events=events.height,
        by_source=dict(tasks.group_by("source").len().iter_rows()),
        refused_by_contract=refused.height,
        tasks_validation=validation,
    )
    return {"clean.tasks": tasks, "clean.task_events": events, "clean.quarantine": all_quarantine}, stats


def _contract_reason(check: str, column: str | None, value: str | None) -> str:
    if column and column in schemas.TasksSchema.to_schema().columns:
        shown = value if value is None or len(value) <= 60 else value[:60] + "..."
        return f"{column} = {shown} fails {check}"
    return f"fails {check}"  # a check of the whole row: its value would be the row, titles included


def audit_tasks(staged: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, schemas.ValidationOutcome]:
    """Validate staged clean.tasks rows (with their ``_locator``); (rows to publish, quarantine rows, outcome).

    A row that fails a row-level check of :class:`schemas.TasksSchema` is moved to quarantine with
    the checks it failed, naming its task and file; what remains is validated again and the outcome
    returned, so the caller publishes only a table that passed (failures of the whole table, such
    as a duplicate task_id, stay in the outcome: nothing then may be published).
    """
    locators = staged["_locator"]
    tasks = staged.drop("_locator")
    outcome = schemas.validate(schemas.TasksSchema, tasks)
    empty = pl.DataFrame(
        schema={
            "source": pl.String,
            "source_file": pl.String,
            "locator": pl.String,
            "task_id": pl.String,
            "record_hash": pl.String,
            "reason": pl.String,
            "stage": pl.String,
            "payload": pl.String,
            "quarantined_at": pl.Datetime("us", "UTC"),
        }
    )
    if outcome.passed:
        return tasks, empty, outcome
    row_cases = outcome.cases.filter(pl.col("index").is_not_null() & (pl.col("check") != "field_uniqueness"))
    if row_cases.is_empty():
        return tasks, empty, outcome
    reasons: dict[int, list[str]] = {}
    for index, check, column, value in row_cases.iter_rows():
        text = _contract_reason(check, column, value)
        if text not in reasons.setdefault(index, []):
            reasons[index].append(text)
    bad = sorted(reasons)
    refused = tasks[bad].select(
        "source",
        "source_file",
        pl.Series("locator", locators.gather(bad), pl.String),
        "task_id",
        "record_hash",
        pl.Series(
            "reason",
            [
                f"{tasks['task_id'][i]}: "
                + "; ".join(reasons[i])
                + " (the clean.tasks contract, schemas.TasksSchema): fix the record in the source"
                for i in bad
            ],
            pl.String,
        ),
        pl.lit("clean").alias("stage"),
        pl.lit(None, pl.String).alias("payload"),
        pl.col("ingested_at").alias("quarantined_at"),
    )
    keep = pl.Series([True] * tasks.height).scatter(bad, False)
    tasks = tasks.filter(keep)
    return tasks, refused.cast(empty.schema), schemas.validate(schemas.TasksSchema, tasks)
