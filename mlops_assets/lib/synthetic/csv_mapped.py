"""The generic CSV: a helpdesk tool's semicolon-separated ticket export and its YAML mapping."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mlops_assets.lib.synthetic.common import _description, _fmt
from mlops_assets.lib.synthetic.world import Project

_CSV_TS = "%d.%m.%Y %H:%M"

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
