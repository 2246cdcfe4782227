"""Run the hostile-input corpus through ingestion and cleaning for real, and judge every case.

``run_pipeline`` ingests every source with ``ingestion.ingest_source`` and builds the clean layer
with ``cleaning.build_clean`` (plus the blocking contract checks the cleaning asset runs before it
publishes); an exception anywhere is a crash. ``judge`` compares clean.tasks and clean.quarantine
with what each :class:`corpus.Case` expects.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mlops_assets.lib import schemas
from mlops_assets.lib.cleaning import build_clean
from mlops_assets.lib.ingestion import SOURCES, ingest_source
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.reliability.corpus import Case


@dataclass
class PipelineRun:
    """What one ingestion + cleaning of a landing zone gave."""

    crashes: list[str] = field(default_factory=list)  # "<step>: <exception>", one per crashed step
    tasks: pl.DataFrame | None = None
    quarantine: pl.DataFrame | None = None
    messages: list[str] = field(default_factory=list)  # ingestion reports' messages (what a log shows)

    @property
    def crashed(self) -> bool:
        return bool(self.crashes)


def run_pipeline(landing: Path, warehouse_path: Path) -> PipelineRun:
    """Ingest every source, then build and audit the clean layer; record crashes instead of raising."""
    run = PipelineRun()
    warehouse = Warehouse(warehouse_path)
    for source in SOURCES:
        try:
            report = ingest_source(warehouse, landing, source)
            run.messages += report.messages
        except Exception as exc:  # noqa: BLE001 - a crash is the figure being measured
            run.crashes.append(
                f"ingest {source}: {type(exc).__name__}: {exc}"[:500] + "\n" + traceback.format_exc()[-1500:]
            )
    try:
        tables, stats = build_clean(warehouse)
    except Exception as exc:  # noqa: BLE001
        run.crashes.append(f"clean: {type(exc).__name__}: {exc}"[:500])
        return run
    run.tasks, run.quarantine = tables["clean.tasks"], tables["clean.quarantine"]
    # the blocking checks the cleaning asset runs before it publishes: a failure is a failed run
    task_check = stats.tasks_validation or schemas.validate(schemas.TasksSchema, run.tasks)
    for name, outcome in (
        ("tasks_schema_valid", task_check),
        ("quarantine_reasons_present", schemas.validate(schemas.QuarantineSchema, run.quarantine)),
    ):
        if not outcome.passed:
            run.crashes.append(f"clean: blocking check {name} failed: {str(outcome)[:300]}")
    if run.tasks["task_id"].n_unique() != run.tasks.height:
        run.crashes.append("clean: blocking check task_id_unique failed")
    if not stats.conserved:
        run.crashes.append(f"clean: records_conserved failed: {stats}")
    return run


@dataclass(frozen=True)
class CaseOutcome:
    """One case judged: which promises held."""

    case: Case
    lost: frozenset[str]  # good keys missing from clean.tasks
    leaked: frozenset[str]  # bad keys present in clean.tasks
    quarantined: int  # quarantine rows of this file with a non-empty reason
    unexplained: int  # rows the case needed quarantined (with a reason) that are not there

    @property
    def ok(self) -> bool:
        return not self.lost and not self.leaked and not self.unexplained


def judge(cases: list[Case], run: PipelineRun, landing: Path) -> list[CaseOutcome]:
    """Each case against clean.tasks and clean.quarantine (nothing survives a crashed cleaning)."""
    tasks = (
        run.tasks if run.tasks is not None else pl.DataFrame(schema={"source": pl.String, "key": pl.String})
    )
    quarantine = (
        run.quarantine
        if run.quarantine is not None
        else pl.DataFrame(schema={"source_file": pl.String, "reason": pl.String})
    )
    present = set(zip(tasks["source"].to_list(), tasks["key"].to_list(), strict=True))
    with_reason = quarantine.filter(
        pl.col("reason").is_not_null() & (pl.col("reason").str.strip_chars() != "")
    )
    per_file = dict(with_reason.group_by("source_file").len().iter_rows())
    root = str(landing)
    out = []
    for case in cases:
        rows = per_file.get(f"{root}/{case.path}", 0) + per_file.get(case.path, 0)
        out.append(
            CaseOutcome(
                case=case,
                lost=frozenset(k for k in case.good if (case.source, k) not in present),
                leaked=frozenset(k for k in case.bad if (case.source, k) in present),
                quarantined=rows,
                unexplained=max(0, case.min_quarantined - rows),
            )
        )
    return out


def reasonless_rows(run: PipelineRun) -> int:
    """clean.quarantine rows whose reason is missing or blank."""
    if run.quarantine is None:
        return 0
    return run.quarantine.filter(
        pl.col("reason").is_null() | (pl.col("reason").str.strip_chars() == "")
    ).height
