"""The scores a project manager opens: ``serving.task_risk_scores`` joined with each task, as files.

After each scores refresh, :func:`write_exports` writes into the exports folder (``data/exports/``)::

    task_risk_scores.csv        every open task: project, key, title, status, assignee, deadline,
                                late_risk, risk_band, reasons, predicted completion, ... (PM_COLUMNS)
    task_risk_scores.parquet    the same rows, typed (for BI tools and notebooks)
    projects/index.html         one line per project with its counts per risk band, linking to
    projects/<project>.html     that project's tasks, riskiest first

A spreadsheet or BI tool opens these without touching the warehouse (a DuckDB file admits one writer
or several readers, so a BI tool holding it open would stop the pipeline's writes).

Safety of what people open:

* **atomic**: every file is written to a temporary name in the same folder and renamed over the old
  one (``os.replace``), so a reader sees the previous export or the new one, never half a file;
* **CSV formula injection**: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return is prefixed with ``'`` (OWASP's advice), so Excel and LibreOffice show it as text
  instead of evaluating it (task titles come from anyone who can file a ticket);
* **HTML**: every value is escaped.

People are the pseudonymous ids of the clean layer (``assignee_id``): no table past raw holds names.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

CSV_NAME = "task_risk_scores.csv"
PARQUET_NAME = "task_risk_scores.parquet"
PROJECTS_DIR = "projects"
INDEX_NAME = "index.html"
NO_PROJECT = "(no project)"

# What a PM reads, in this order; the last columns say which models and which moment produced the row.
PM_COLUMNS = (
    "project", "key", "title", "status", "assignee_id", "deadline", "late_risk", "risk_band",
    "reason_1", "reason_2", "reason_3", "predicted_completion_at", "completion_overdue",
    "predicted_cycle_days", "warnings", "source", "task_id", "scored_at", "late_risk_version",
    "cycle_time_version",
)  # fmt: skip
BAND_ORDER = ("high", "medium", "low", "no deadline")
# Cells a spreadsheet would evaluate as a formula (OWASP "CSV injection").
_FORMULA_START = re.compile(r"^[=+\-@\t\r]")


def pm_view(scores: pl.DataFrame, tasks: pl.DataFrame) -> pl.DataFrame:
    """The scores joined with each task's title, project, assignee, deadline and status (PM_COLUMNS).

    Sorted by project, then risk band (high first, no deadline last), then late_risk descending.
    """
    about = tasks.select(
        "task_id", "project", "key", "title", "status", "assignee_id", "source",
        pl.coalesce(pl.col("deadline_at"), pl.col("due_at")).alias("deadline"),
    )  # fmt: skip
    band_rank = {band: i for i, band in enumerate(BAND_ORDER)}
    view = scores.join(about, on="task_id", how="left").with_columns(
        pl.col("warnings").list.join("; ").alias("warnings"),
    )
    return (
        view.with_columns(pl.col("risk_band").replace_strict(band_rank, default=len(band_rank),
                                                             return_dtype=pl.Int8).alias("_band"))
        .sort(["project", "_band", "late_risk"], descending=[False, False, True], nulls_last=True)
        .select(PM_COLUMNS)
    )  # fmt: skip


def escape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells that a spreadsheet would evaluate (leading = + - @ tab CR) prefixed with ``'``."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_START.pattern)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c))
        .alias(c) for c in text
    )  # fmt: skip


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(temporary path)`` in ``path``'s folder, then rename it to ``path`` (all or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from a BI tool's service user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def project_file(project: str | None) -> str:
    """A safe file name for a project's page: its name when that is safe, else a cleaned name plus a hash."""
    name = project if project is not None else NO_PROJECT
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "project"
    if safe != name:  # distinct projects never share a page ("a b" and "a_b")
        safe = f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return f"{safe}.html"


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: the files (relative to the exports folder) and the counts."""

    root: Path
    csv: Path
    parquet: Path
    index: Path
    projects: dict[str, Path] = field(default_factory=dict)  # project -> its page
    rows: int = 0


def write_exports(
    view: pl.DataFrame, root: Path | str, as_of: datetime, as_of_source: str = ""
) -> ExportResult:
    """CSV (formula-escaped), Parquet and HTML pages per project of a :func:`pm_view` frame, each atomic."""
    root = Path(root)
    csv = atomic_write(
        root / CSV_NAME, lambda p: escape_formulas(view).write_csv(p, datetime_format="%Y-%m-%dT%H:%M:%SZ")
    )
    parquet = atomic_write(root / PARQUET_NAME, lambda p: view.write_parquet(p))
    pages_dir = root / PROJECTS_DIR
    pages: dict[str, Path] = {}
    summary = []
    for (project,), rows in view.group_by("project", maintain_order=True):
        name = project if project is not None else NO_PROJECT
        page = pages_dir / project_file(project)
        atomic_write(
            page,
            lambda p, rows=rows, name=name: p.write_text(
                _project_page(name, rows, as_of, as_of_source), encoding="utf-8"
            ),
        )
        pages[name] = page
        summary.append((name, page.name, dict(rows.group_by("risk_band").len().iter_rows()), rows.height))
    index = atomic_write(
        pages_dir / INDEX_NAME,
        lambda p: p.write_text(_index_page(summary, as_of, as_of_source), encoding="utf-8"),
    )
    keep = {p.name for p in pages.values()} | {INDEX_NAME}
    for stale in pages_dir.glob("*.html"):  # projects that have no open task any more
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return ExportResult(root, csv, parquet, index, pages, view.height)


# ---------------------------------------------------------------------------------------------------
# HTML

_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24}
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.num{text-align:right}
.high{background:#ffd8d3}.medium{background:#fff1c2}.low{background:#dcf5e3}.none{background:#eef1f4}
</style>"""
_PAGE_COLUMNS = (
    ("key", "key"),
    ("title", "title"),
    ("status", "status"),
    ("assignee_id", "assignee"),
    ("deadline", "deadline"),
    ("late_risk", "late risk"),
    ("risk_band", "band"),
    ("reason_1", "why (1)"),
    ("reason_2", "why (2)"),
    ("reason_3", "why (3)"),
    ("predicted_completion_at", "predicted completion"),
    ("completion_overdue", "older than predicted"),
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.0%}"
    return html.escape(str(value))


def _head(title: str, as_of: datetime, as_of_source: str) -> str:
    source = f" ({html.escape(as_of_source)})" if as_of_source else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"{_STYLE}</head><body><h1>{html.escape(title)}</h1>"
        f"<p>Scores as of {as_of:%Y-%m-%d %H:%M} UTC{source}. Late risk: the probability that the task "
        "ends after its deadline (bands: low &lt; 25% &le; medium &lt; 50% &le; high).</p>"
    )


def _project_page(project: str, rows: pl.DataFrame, as_of: datetime, as_of_source: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in _PAGE_COLUMNS)
    body = []
    for row in rows.select([c for c, _ in _PAGE_COLUMNS]).iter_rows(named=True):
        band = row["risk_band"] or ""
        css = band if band in ("high", "medium", "low") else "none"
        cells = "".join(
            f'<td class="{"num" if c == "late_risk" else ""}">{_cell(row[c])}</td>' for c, _ in _PAGE_COLUMNS
        )
        body.append(f'<tr class="{css}">{cells}</tr>')
    return (
        _head(f"{project}: open tasks by risk", as_of, as_of_source)
        + f'<p><a href="{INDEX_NAME}">all projects</a> &middot; {rows.height} open tasks</p>'
        + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></body></html>"
    )


def _index_page(summary: list[tuple[str, str, dict, int]], as_of: datetime, as_of_source: str) -> str:
    head = "".join(f"<th>{b}</th>" for b in ("project", *BAND_ORDER, "open tasks"))
    body = "".join(
        f'<tr><td><a href="{html.escape(page)}">{html.escape(name)}</a></td>'
        + "".join(f'<td class="num">{bands.get(b, 0)}</td>' for b in BAND_ORDER)
        + f'<td class="num">{n}</td></tr>'
        for name, page, bands, n in summary
    )
    return (
        _head("Open tasks by project", as_of, as_of_source)
        + f'<p>Also as <a href="../{CSV_NAME}">CSV</a> and <a href="../{PARQUET_NAME}">Parquet</a>.</p>'
        + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
