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
from mlops_assets.lib.pulls import pull_into, scope_text
from mlops_assets.lib.sources.http import HttpError
from mlops_assets.metadata import readable
from mlops_assets.resources import GitHubResource, JiraResource, LandingZoneResource, WarehouseResource

from ..shared import WAREHOUSE_WRITE_TAGS

# A live pull that still fails after the HTTP client's own retries (seconds of backoff) met a longer
# outage: try the whole pull again minutes later (it resumes from the watermark). Jitter keeps several
# code locations or sources from hitting a recovering API at the same instant. Only transient errors
# are retried (_pull: allow_retries): a wrong URL, an unreachable host or a bad token fails at once.
# Bound across both layers: (1 + max_retries) step attempts x RetryingHttp.retry_budget (20) retries
# each = at most 80 retried requests per materialization (docs/RELIABILITY.md).
PULL_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

SOURCE_TITLES = {
    "jira": "Jira REST API v2/v3 JSON (issues, changelogs, search and comment pages) and Jira CSV exports",
    "github": "GitHub REST API issue JSON (list pages, single issues, gh api --paginate output; pull requests are skipped)",
    "asana": "Asana project exports (CSV, or JSON as the export and the API give it)",
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

    checked = ["raw", f"{source}_{kinds[0]}"]
    check = dg.AssetCheckSpec(
        FILES_READ_CHECK,
        asset=checked,
        blocking=True,
        description=f"Every file in the {source} landing folder could be read. A file that cannot be read at all "
        "(not the export it claims to be, cut short, a wrong or missing CSV mapping) fails this check, and the run, "
        "until the file or its mapping is fixed or the file is moved out; its good neighbours are ingested all the same.",
    )

    @dg.multi_asset(name=f"ingest_{source}", specs=specs, check_specs=[check], op_tags=WAREHOUSE_WRITE_TAGS)
    def _ingest(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingZoneResource
    ):
        try:
            report = ingest_source(warehouse.get(), landing.root(), source, datetime.now(UTC))
        except LandingZoneError as exc:
            raise dg.Failure(description=str(exc)) from None
        for message in report.messages:
            context.log.warning(message)
        for kind in kinds:
            yield dg.MaterializeResult(
                asset_key=["raw", f"{source}_{kind}"], metadata=_metadata(report, kind)
            )
        yield files_read_result(report, checked, landing.root() / source)

    _ingest.__doc__ = f"Parse new {source} landing files and append their records to the raw tables."
    return _ingest


FILES_READ_CHECK = "every_landing_file_read"
_LISTED = 10  # unreadable files named in a check's description; all of them are in its metadata


def files_read_result(report: IngestReport, asset_key: list[str], folder) -> dg.AssetCheckResult:
    """The blocking check of one ingestion: ERROR while any landing file cannot be read, naming each and why."""
    bad = report.unreadable
    if not bad:
        return dg.AssetCheckResult(
            asset_key=asset_key,
            check_name=FILES_READ_CHECK,
            passed=True,
            metadata={"files_seen": report.files_seen, "unreadable_files": 0},
        )
    shown = "\n".join(f"- {name}: {why}" for name, why in bad[:_LISTED])
    more = f"\n... and {len(bad) - _LISTED} more (see this check's metadata)" if len(bad) > _LISTED else ""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=FILES_READ_CHECK,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(bad)} file(s) in {folder} could not be read; the other files were ingested. Fix each "
        f"file (or its .yaml mapping) and re-run, or move it out of the landing folder:\n{shown}{more}",
        metadata={
            "files_seen": report.files_seen,
            "unreadable_files": len(bad),
            "files": dg.MetadataValue.json([{"file": name, "reason": why} for name, why in bad]),
        },
    )


def _metadata(report: IngestReport, kind: str) -> dict[str, object]:
    return readable(
        {
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
    )


def _pull(
    context: dg.AssetExecutionContext,
    api: JiraResource | GitHubResource,
    landing: LandingZoneResource,
    source: str,
    env_hint: str,
):
    """Pull what changed since the watermark into the landing folder, or say why the pull is off."""
    status, warnings = api.status(), api.environment_warnings()
    for warning in warnings:
        context.log.warning(warning)
    said = {"pull": status, "environment_warnings": "\n".join(warnings) or "none"}
    if not api.configured:
        (context.log.warning if warnings else context.log.info)(f"landing/{source}: {status}")
        files = len(list_landing_files(landing.root(), source)) if landing.root().exists() else 0
        return dg.MaterializeResult(
            metadata={
                "mode": f"exports only ({env_hint} not set)",
                **said,
                "files_in_folder": files,
                "pulled_issues": 0,
            }
        )
    context.log.info(f"landing/{source}: {status}")
    try:
        start, client = api.start(), api.client()
        context.log.info(f"landing/{source} scope: {scope_text(client.scope, start)}")
        outcome = pull_into(client, landing.source_dir(source), start=start, scope=client.scope)
    except (RuntimeError, ValueError) as exc:  # client errors carry a one-line, credential-free message
        raise dg.Failure(description=f"{source} pull failed: {exc}", allow_retries=_transient(exc)) from None
    except OSError as exc:
        if not exc.filename:  # a socket error the client let through: not about the folder
            raise
        # A read-only, full or forbidden landing folder: waiting minutes for step retries changes nothing.
        raise dg.Failure(
            description=f"{source} pull cannot write into the landing folder: {exc.strerror} "
            f"({exc.filename}): make {landing.source_dir(source)} writable and give it space "
            f"(MLOPS_LANDING_DIR={landing.path}), then run again",
            allow_retries=False,
        ) from None
    if outcome.restarted:
        context.log.warning(f"landing/{source}: {outcome.restarted}: pulled from the start date again")
    return dg.MaterializeResult(
        metadata={
            "mode": "live API pull",
            **said,
            "scope": scope_text(client.scope, start),
            "pulled_issues": outcome.issues,
            "pages_written": outcome.pages_written,
            "since": str(outcome.since) if outcome.since else "everything (first pull)",
            "new_watermark": str(outcome.new_watermark) if outcome.new_watermark else "unchanged",
            "restarted": outcome.restarted or "no (went on from the watermark)",
        }
    )


def _transient(exc: BaseException) -> bool:
    """The API answered 429/5xx, or stopped answering mid-pull (the clients keep HttpError as the context)."""
    http = exc if isinstance(exc, HttpError) else exc.__context__
    return isinstance(http, HttpError) and http.transient


def _pull_description(source: str, env_hint: str) -> str:
    return (
        landing_spec(source).description + " Materializing it pulls new and updated issues from the live API "
        f"when {env_hint} is set; without it the folder holds only the exports users dropped."
    )


@dg.asset(
    key=["landing", "jira"],
    group_name="ingestion",
    kinds={"file", "api"},
    retry_policy=PULL_RETRY_POLICY,
    description=_pull_description("jira", "JIRA_URL"),
)
def landing_jira(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, jira: JiraResource
) -> dg.MaterializeResult:
    """Pull Jira issues updated since the watermark (JQL `updated >=`, JIRA_PROJECTS, JIRA_JQL), with changelogs."""
    return _pull(context, jira, landing, "jira", "JIRA_URL")


@dg.asset(
    key=["landing", "github"],
    group_name="ingestion",
    kinds={"file", "api"},
    retry_policy=PULL_RETRY_POLICY,
    description=_pull_description("github", "GITHUB_REPOS"),
)
def landing_github(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, github: GitHubResource
) -> dg.MaterializeResult:
    """Pull GitHub issues updated since the watermark (`since=`, GITHUB_START_DATE), following Link pages."""
    return _pull(context, github, landing, "github", "GITHUB_REPOS")


raw_assets = [build_raw_asset(source) for source in SOURCES]
# Jira and GitHub have live clients: their landing folder is an asset that pulls. The others are exports.
pull_assets = [landing_jira, landing_github]
landing_specs = [landing_spec(source) for source in SOURCES if source not in ("jira", "github")]
