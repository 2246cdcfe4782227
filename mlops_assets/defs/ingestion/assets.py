"""Ingestion group: one landing asset and one raw multi-asset per source, built by a factory."""


from datetime import UTC, datetime

import dagster as dg

from mlops_assets.lib.ingestion import (
    SOURCES,
    IngestReport,
    LandingZoneError,
    ingest_source,
    list_landing_files,
)
from mlops_assets.lib.pulls import pull_into
from mlops_assets.lib.sources.http import HttpError
from mlops_assets.resources import GitHubResource, JiraResource, LandingZoneResource, WarehouseResource

WAREHOUSE_WRITE_TAGS = {"mlops/warehouse": "write"}
# A live pull that still fails after the HTTP client's own retries (seconds of backoff) met a longer
# outage: try the whole pull again minutes later (it resumes from the watermark). Jitter keeps several
# code locations or sources from hitting a recovering API at the same instant. Only transient errors
# are retried (_pull: allow_retries): a wrong URL, an unreachable host or a bad token fails at once.
# Bound across both layers: (1 + max_retries) step attempts x RetryingHttp.retry_budget (20) retries
# each = at most 80 retried requests per materialization (docs/RELIABILITY.md).
PULL_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL,
                                   jitter=dg.Jitter.PLUS_MINUS)

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
            report = ingest_source(warehouse.get(), landing.root(), source, datetime.now(UTC))
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


def _pull(api: JiraResource | GitHubResource, landing: LandingZoneResource, source: str, env_hint: str):
    """Pull what changed since the watermark into the landing folder, or report the exports-only mode."""
    if not api.configured:
        files = len(list_landing_files(landing.root(), source)) if landing.root().exists() else 0
        return dg.MaterializeResult(metadata={"mode": f"exports only ({env_hint} not set)", "files_in_folder": files,
                                              "pulled_issues": 0})
    try:
        outcome = pull_into(api.client(), landing.source_dir(source))
    except (RuntimeError, ValueError) as exc:  # client errors carry a one-line, credential-free message
        raise dg.Failure(description=f"{source} pull failed: {exc}", allow_retries=_transient(exc)) from None
    except OSError as exc:
        if not exc.filename:  # a socket error the client let through: not about the folder
            raise
        # A read-only, full or forbidden landing folder: waiting minutes for step retries changes nothing.
        raise dg.Failure(description=f"{source} pull cannot write into the landing folder: {exc.strerror} "
                         f"({exc.filename}): make {landing.source_dir(source)} writable and give it space "
                         f"(MLOPS_LANDING_DIR={landing.path}), then run again", allow_retries=False) from None
    return dg.MaterializeResult(metadata={
        "mode": "live API pull", "pulled_issues": outcome.issues, "pages_written": outcome.pages_written,
        "since": str(outcome.since) if outcome.since else "everything (first pull)",
        "new_watermark": str(outcome.new_watermark) if outcome.new_watermark else "unchanged",
    })


def _transient(exc: BaseException) -> bool:
    """The API answered 429/5xx, or stopped answering mid-pull (the clients keep HttpError as the context)."""
    http = exc if isinstance(exc, HttpError) else exc.__context__
    return isinstance(http, HttpError) and http.transient


def _pull_description(source: str, env_hint: str) -> str:
    return (landing_spec(source).description + " Materializing it pulls new and updated issues from the live API "
            f"when {env_hint} is set; without it the folder holds only the exports users dropped.")


@dg.asset(key=["landing", "jira"], group_name="ingestion", kinds={"file", "api"}, retry_policy=PULL_RETRY_POLICY,
          description=_pull_description("jira", "JIRA_URL"))
def landing_jira(landing: LandingZoneResource, jira: JiraResource) -> dg.MaterializeResult:
    """Pull Jira issues updated since the watermark (JQL `updated >=`), with changelogs."""
    return _pull(jira, landing, "jira", "JIRA_URL")


@dg.asset(key=["landing", "github"], group_name="ingestion", kinds={"file", "api"}, retry_policy=PULL_RETRY_POLICY,
          description=_pull_description("github", "GITHUB_REPOS"))
def landing_github(landing: LandingZoneResource, github: GitHubResource) -> dg.MaterializeResult:
    """Pull GitHub issues updated since the watermark (`since=`), following Link pages."""
    return _pull(github, landing, "github", "GITHUB_REPOS")


raw_assets = [build_raw_asset(source) for source in SOURCES]
# Jira and GitHub have live clients: their landing folder is an asset that pulls. The others are exports.
pull_assets = [landing_jira, landing_github]
landing_specs = [landing_spec(source) for source in SOURCES if source not in ("jira", "github")]


def landing_file_counts(landing: LandingZoneResource) -> dict[str, int]:
    """Files per source currently in the landing zone (for sensors and metadata)."""
    return {s: len(list_landing_files(landing.root(), s)) for s in SOURCES}
