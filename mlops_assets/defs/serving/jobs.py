"""The score refresh: rescore every open task with the champions, nothing upstream rebuilt."""

import dagster as dg

from ..shared import WAREHOUSE_WRITE_TAGS

score_job = dg.define_asset_job(
    name="score_job",
    selection=dg.AssetSelection.assets(["serving", "task_risk_scores"]),
    description="Rescore every open task with the current champions (as of MLOPS_AS_OF, else the data's "
    "end) and export the PM files. New tasks, new events and a new champion already rescore on their own "
    "(the asset's eager automation condition); this job is the daily refresh, so a task's age, time in its "
    "status and time left to its deadline move on even on a day when nothing lands.",
    tags=WAREHOUSE_WRITE_TAGS,
)
