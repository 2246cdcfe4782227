"""pandera (polars) schemas of the clean layer: the contract BI tools and later assets rely on."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

UTC = pl.Datetime("us", "UTC")


class TasksSchema(pa.DataFrameModel):
    """clean.tasks: one row per task, latest version, pseudonymous people, UTC timestamps."""

    task_id: str = pa.Field(unique=True, nullable=False)
    source: str = pa.Field(isin=["jira", "github", "asana", "trello", "csv"])
    project: str = pa.Field(nullable=True)
    key: str = pa.Field(nullable=False)
    title: str = pa.Field(nullable=True)
    type: str = pa.Field(nullable=True)
    priority: str = pa.Field(nullable=True, isin=["lowest", "low", "medium", "high", "highest"])
    priority_ordinal: pl.Int8 = pa.Field(nullable=True, ge=1, le=5)
    priority_raw: str = pa.Field(nullable=True)
    status: str = pa.Field(nullable=True)
    status_category: str = pa.Field(isin=["todo", "in_progress", "done"])
    assignee_id: str = pa.Field(nullable=True, str_startswith="u_")
    reporter_id: str = pa.Field(nullable=True, str_startswith="u_")
    created_at: UTC = pa.Field(nullable=False)
    updated_at: UTC = pa.Field(nullable=True)
    resolved_at: UTC = pa.Field(nullable=True)
    due_at: UTC = pa.Field(nullable=True)
    deadline_at: UTC = pa.Field(nullable=True)
    story_points: float = pa.Field(nullable=True, ge=0)
    original_estimate_h: float = pa.Field(nullable=True, ge=0)
    time_spent_h: float = pa.Field(nullable=True, ge=0)
    n_comments: int = pa.Field(nullable=True, ge=0)
    n_links: int = pa.Field(nullable=True, ge=0)
    n_subtasks: int = pa.Field(nullable=True, ge=0)
    n_labels: int = pa.Field(nullable=True, ge=0)
    description_length: int = pa.Field(nullable=True, ge=0)
    labels: str = pa.Field(nullable=True)
    is_late: bool = pa.Field(nullable=True)
    late_outcome_known: bool = pa.Field(nullable=True)
    cycle_time_days: float = pa.Field(nullable=True, ge=0)
    record_hash: str = pa.Field(nullable=False)
    source_file: str = pa.Field(nullable=False)
    ingested_at: UTC = pa.Field(nullable=False)

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def created_before_resolved(cls, data: PolarsData) -> pl.LazyFrame:
        """A task cannot be resolved before it was created."""
        return data.lazyframe.select(
            pl.col("resolved_at").is_null() | (pl.col("created_at") <= pl.col("resolved_at"))
        )

    @pa.dataframe_check
    def late_only_with_deadline(cls, data: PolarsData) -> pl.LazyFrame:
        """is_late is null exactly when there is no deadline."""
        return data.lazyframe.select(pl.col("is_late").is_null() == pl.col("deadline_at").is_null())


class TaskEventsSchema(pa.DataFrameModel):
    """clean.task_events: status transitions (Jira changelog, Trello list moves)."""

    task_id: str = pa.Field(nullable=False)
    source: str
    event_id: str = pa.Field(nullable=False)
    changed_at: UTC = pa.Field(nullable=False)
    field: str
    from_value: str = pa.Field(nullable=True)
    to_value: str = pa.Field(nullable=True)
    author_id: str = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class QuarantineSchema(pa.DataFrameModel):
    """clean.quarantine: every unusable record or file, each with a reason a user can act on."""

    source: str = pa.Field(nullable=False)
    source_file: str = pa.Field(nullable=True)
    locator: str = pa.Field(nullable=True)
    task_id: str = pa.Field(nullable=True)
    record_hash: str = pa.Field(nullable=True)
    reason: str = pa.Field(
        nullable=False, str_length={"min_value": 1}
    )  # a row without one tells nobody what to fix
    stage: str = pa.Field(isin=["parse", "clean"])
    payload: str = pa.Field(nullable=True)
    quarantined_at: UTC = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


@dataclass
class ValidationOutcome:
    """The result of validating a frame: passed, the failures as a small table a user can read, and where."""

    passed: bool
    failures: pl.DataFrame  # check, column, failure_case, n
    # one row per failing (row, check): index into the validated frame, check, column, failure_case;
    # index is null for a failure of the whole frame (a column missing, a wrong type)
    cases: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_CASES))
    examples: list[str] = field(default_factory=list)  # "task_id (source_file locator)" of failing rows

    def summary(self, limit: int = 5) -> str:
        if self.passed:
            return "all checks passed"
        rows = self.failures.head(limit).iter_rows(named=True)
        text = "; ".join(f"{r['check']} on {r['column']}: {r['failure_case']} ({r['n']} rows)" for r in rows)
        if self.examples:  # name the task and the file, so the failure can be fixed at its source
            text += "; e.g. " + ", ".join(self.examples[:limit])
        return text


_CASES = {"index": pl.Int64, "check": pl.String, "column": pl.String, "failure_case": pl.String}
_EMPTY_FAILURES = {"check": pl.String, "column": pl.String, "failure_case": pl.String, "n": pl.Int64}


def describe_rows(frame: pl.DataFrame, indices: list[int]) -> list[str]:
    """``task_id (file locator)`` for rows of ``frame``, with whichever of those columns it has."""
    out = []
    for i in indices:
        if not 0 <= i < frame.height:
            continue
        row = frame.row(i, named=True)
        where = " ".join(str(row[c]) for c in ("source_file", "locator") if row.get(c) is not None)
        who = row.get("task_id") or f"row {i}"
        out.append(f"{who} ({where})" if where else str(who))
    return out


def validate(schema: type[pa.DataFrameModel], frame: pl.DataFrame) -> ValidationOutcome:
    """Validate lazily (every failure, not just the first) and summarize the failure cases."""
    try:
        schema.validate(frame, lazy=True)
        return ValidationOutcome(True, pl.DataFrame(schema=_EMPTY_FAILURES))
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        cases = getattr(exc, "failure_cases", None)
        if cases is None:
            return ValidationOutcome(
                False, pl.DataFrame({"check": [str(exc)], "column": [None], "failure_case": [None], "n": [1]})
            )
        cases = pl.from_pandas(cases) if not isinstance(cases, pl.DataFrame) else cases
        cols = {c: c for c in ("check", "column", "failure_case") if c in cases.columns}
        summary = (
            cases.select([pl.col(c).cast(pl.String) for c in cols])
            .group_by(list(cols))
            .len(name="n")
            .sort("n", descending=True)
        )
        for c in ("check", "column", "failure_case"):
            if c not in summary.columns:
                summary = summary.with_columns(pl.lit(None, pl.String).alias(c))
        located = cases.select(
            [
                pl.col("index").cast(pl.Int64)
                if "index" in cases.columns
                else pl.lit(None, pl.Int64).alias("index")
            ]
            + [
                pl.col(c).cast(pl.String) if c in cases.columns else pl.lit(None, pl.String).alias(c)
                for c in ("check", "column", "failure_case")
            ]
        )
        indices = located["index"].drop_nulls().unique(maintain_order=True).to_list()
        return ValidationOutcome(
            False,
            summary.select("check", "column", "failure_case", "n"),
            located,
            describe_rows(frame, indices[:5]),
        )
