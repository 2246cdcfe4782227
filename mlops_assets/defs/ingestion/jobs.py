"""Jobs of the ingestion group."""

import dagster as dg

from ..shared import WAREHOUSE_WRITE_TAGS

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Ingest new landing files of every source into the raw layer.",
    tags=WAREHOUSE_WRITE_TAGS,
)
