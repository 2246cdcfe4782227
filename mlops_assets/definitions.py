"""The one Definitions object of the code location: everything under mlops_assets/defs/, with the resources.

`dagster ... -m mlops_assets.definitions` and `dg` (pyproject's [tool.dg]) both load `defs` from here.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path

import dagster as dg

from mlops_assets import profiles
from mlops_assets.lib import settings
from mlops_assets.resources import (
    DEFAULT_LANDING,
    DEFAULT_REPORTS,
    DEFAULT_WAREHOUSE,
    ExportsResource,
    GitHubResource,
    JiraResource,
    LandingZoneResource,
    MLflowResource,
    ReportsResource,
    ServingTelemetryResource,
    WarehouseResource,
    default_serve_url,
    env_or_default,
)


def build_resources(
    warehouse: str | None = None,
    landing: str | None = None,
    reports: str | None = None,
    exports: str | None = None,
) -> dict[str, object]:
    """Resources configured from environment variables with defaults; explicit paths win (tests, bench).

    The exports folder defaults to `exports` beside the reports folder (data/reports -> data/exports), so a
    sandbox that moves its reports (tests, screenshots, bench) keeps its exports with them.
    """
    beside_reports = str(Path(reports or settings.env("MLOPS_REPORTS_DIR")).parent / "exports")
    return {
        "warehouse": WarehouseResource(
            path=warehouse or env_or_default("MLOPS_WAREHOUSE", DEFAULT_WAREHOUSE),
            data_path=env_or_default("MLOPS_WAREHOUSE_DATA_PATH", ""),
        ),
        "landing": LandingZoneResource(path=landing or env_or_default("MLOPS_LANDING_DIR", DEFAULT_LANDING)),
        "reports": ReportsResource(path=reports or env_or_default("MLOPS_REPORTS_DIR", DEFAULT_REPORTS)),
        "exports": ExportsResource(
            path=exports or env_or_default("MLOPS_EXPORTS_DIR", beside_reports), serve_url=default_serve_url()
        ),
        "jira": JiraResource(
            url=env_or_default("JIRA_URL", ""),
            user=env_or_default("JIRA_USER", ""),
            api_token=env_or_default("JIRA_API_TOKEN", ""),
            api_version=env_or_default("JIRA_API_VERSION", ""),
            projects=env_or_default("JIRA_PROJECTS", ""),
            jql=env_or_default("JIRA_JQL", ""),
            start_date=env_or_default("JIRA_START_DATE", ""),
        ),
        "mlflow": MLflowResource(
            tracking_uri=env_or_default("MLFLOW_TRACKING_URI", ""),
            artifacts_dir=env_or_default("MLOPS_MLFLOW_ARTIFACTS", ""),
        ),
        "github": GitHubResource(
            token=env_or_default("GITHUB_TOKEN", ""),
            repos=env_or_default("GITHUB_REPOS", ""),
            api_url=env_or_default("GITHUB_API_URL", "https://api.github.com"),
            start_date=env_or_default("GITHUB_START_DATE", ""),
        ),
        # only an explicitly set MLOPS_SERVE_URL: the default address of the links is no service to watch
        "serving_telemetry": ServingTelemetryResource(url=env_or_default("MLOPS_SERVE_URL", "")),
    }


PACKAGE = Path(__file__).resolve().parent


def load_defs_folder(package: Path = PACKAGE) -> dg.Definitions:
    """Every Dagster object in the modules under mlops_assets/defs/, found as a create-dagster project finds them.

    A group's package may also gather its objects in a module-level `defs` (with the group's own
    resources), so the loader meets some objects twice: each is kept once.
    """
    if (package.parent / "pyproject.toml").exists():
        found = dg.load_from_defs_folder(path_within_project=package)
    else:  # installed without the source tree (a wheel): no pyproject.toml to read [tool.dg] from
        import mlops_assets.defs

        found = dg.ComponentTree.from_module(
            defs_module=mlops_assets.defs, project_root=package.parent
        ).build_defs()
    return dg.Definitions(
        assets=_once(found.assets),
        asset_checks=_once(found.asset_checks),
        jobs=_once(found.jobs),
        sensors=_once(found.sensors),
        schedules=_once(found.schedules),
        resources=found.resources,
        executor=found.executor,
        loggers=found.loggers,
        metadata=found.metadata,
        component_tree=found.component_tree,
    )


def _once(objects) -> list | None:
    """The objects in order, each object (by identity) once."""
    if objects is None:
        return None
    seen: set[int] = set()
    return [o for o in objects if not (id(o) in seen or seen.add(id(o)))]


# `dagster dev` without DAGSTER_HOME keeps a temporary instance that vanishes at exit: say what to set.
if (_no_home := settings.dagster_home_warning()) is not None:
    logging.getLogger("mlops_assets").warning(_no_home)

defs = dg.Definitions.merge(
    load_defs_folder(),
    # The profile (MLOPS_PROFILE: local by default, or cluster) picks the executor; see profiles.py.
    dg.Definitions(resources=build_resources(), executor=profiles.executor()),
)


def _skip_the_last_collection() -> None:
    """At exit, move every object to the garbage collector's permanent generation (``gc.freeze``).

    A run process ends with ~5,000 modules loaded (Dagster, MLflow, Evidently, LightGBM, pandas, ...), and
    the interpreter's final collections walk all of their objects: 1.1-1.9 s at the end of every
    `dagster asset materialize` here, 1.2 s for a bare `import` of those libraries (0.07 s frozen;
    docs/BENCHMARKS.md). Nothing is lost by skipping them: module globals are still released, the atexit
    handlers registered before this one (logging's flush, weakref.finalize, multiprocessing) still run
    after it, and every store we write (DuckDB, SQLite, files) is committed when its step ends, not
    when Python collects it; Python does not promise finalizers of objects alive at exit anyway.
    """
    import gc

    gc.freeze()


atexit.register(_skip_the_last_collection)
