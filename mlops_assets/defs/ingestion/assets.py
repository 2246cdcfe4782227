"""Ingestion group: one landing asset and one raw multi-asset per source, built by a factory."""


from datetime import datetime, timezone

import dagster as dg

from mlops_assets.lib.ingestion import SOURCES, IngestReport, LandingZoneError, ingest_source, list_landing_files
from mlops_assets.resources import LandingZoneResource, WarehouseResource

WAREHOUSE_WRITE_TAGS = {"mlops/warehouse": "write"}

SOURCE_TITLES = {
    "jira": "Jira REST API v2/v3 JSON (issues, changelogs, search and comment pages) and Jira CSV exports",
    "github": "GitHub REST API issue JSON (list pages and single issues; pull requests are skipped)",
    "asana": "Asana project CSV exports",
    "trello": "Trello board JSON exports (cards, lists, actions)",
    "csv": "any other tool: a CSV plus a YAML column mapping next to it",
}


def landing_spec(source: str) -> dg.AssetSpec:
    """The landing folder of a source: files dropped by users or written by the live API pulls."""
    return dg.AssetSpec(
        key=["landing", source],
        description=f"Landing folder `<MLOPS_LANDING_DIR>/{source}/`: {SOURCE_TITLES[source]}.",
        group_name="ingestion",
        kinds={"file"},
    )


def build_raw_asset(source: str) -> dg.AssetsDefinition:
    """raw/<source>_<kind>: append-only raw tables of one source, with payloads and provenance."""
    kinds = SOURCES[source][2]
    specs = [
        dg.AssetSpec(
            key=["raw", f"{source}_{kind}"],
            description=f"raw.{source}_{kind}: append-only {kind} records from {SOURCE_TITLES[source]}, "
            "with payload, source file, content hash and ingestion time.",
            deps=[landing_spec(source)],
            group_name="ingestion",
            kinds={"duckdb", "polars"},
            tags={"layer": "raw"},
        )
        for kind in kinds
    ]

    @dg.multi_asset(name=f"ingest_{source}", specs=specs, op_tags=WAREHOUSE_WRITE_TAGS)
    def _ingest(context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingZoneResource):
        try:
            report = ingest_source(warehouse.get(), landing.root(), source, datetime.now(timezone.utc))
        except LandingZoneError as exc:
            raise dg.Failure(description=str(exc)) from None
        for message in report.messages:
            context.log.warning(message)
        for kind in kinds:
            yield dg.MaterializeResult(asset_key=["raw", f"{source}_{kind}"], metadata=_metadata(report, kind))

    _ingest.__doc__ = f"Parse new {source} landing files and append their records to the raw tables."
    return _ingest


def _metadata(report: IngestReport, kind: str) -> dict[str, object]:
    return {
        "dagster/row_count": report.table_rows.get(kind, 0),
        "new_records": report.records_new.get(kind, 0),
        "records_parsed": report.records_parsed.get(kind, 0),
        "files_seen": report.files_seen,
        "files_ingested": report.files_ingested,
        "files_skipped_already_ingested": report.files_skipped,
        "files_unreadable": report.files_unreadable,
        "rejected_records": report.rejects,
        "latin1_files": ", ".join(report.latin1_files) or "none",
    }


raw_assets = [build_raw_asset(source) for source in SOURCES]
landing_specs = [landing_spec(source) for source in SOURCES]


def landing_file_counts(landing: LandingZoneResource) -> dict[str, int]:
    """Files per source currently in the landing zone (for sensors and metadata)."""
    return {s: len(list_landing_files(landing.root(), s)) for s in SOURCES}
