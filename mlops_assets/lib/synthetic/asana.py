"""Asana: a project's CSV export (subtasks under their parent, no section)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mlops_assets.lib.synthetic.common import _description
from mlops_assets.lib.synthetic.world import Person, Project

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
