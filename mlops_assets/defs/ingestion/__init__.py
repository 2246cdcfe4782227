"""Ingestion group: landing folders -> raw tables."""

import dagster as dg

from .assets import landing_specs, pull_assets, raw_assets
from .jobs import ingest_job
from .schedules import daily_ingest_schedule
from .sensors import landing_files_sensor

defs = dg.Definitions(
    assets=[*landing_specs, *pull_assets, *raw_assets],
    jobs=[ingest_job],
    sensors=[landing_files_sensor],
    schedules=[daily_ingest_schedule],
)
