"""Typed resources: every asset reaches storage, MLflow and the sources through these."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from mlops_assets.lib import long_lived
from mlops_assets.lib.pulls import (
    PULL_VARIABLES,
    github_client,
    jira_client,
    misspelled_variables,
    parse_start_date,
    pull_status,
)
from mlops_assets.lib.settings import env, is_set, location, project_path
from mlops_assets.lib.sources.http import safe_url
from mlops_assets.lib.warehouse import Warehouse

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LANDING = "data/landing"
DEFAULT_REPORTS = "data/reports"
DEFAULT_EXPORTS = "data/exports"


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set (the UI then shows where it came from), else the default.

    Only variables listed in lib/settings.py VARIABLES (the one list, with README's table).
    """
    return dg.EnvVar(name) if is_set(name) else default


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (MLOPS_WAREHOUSE): a DuckDB file (default data/warehouse.duckdb) or a DuckLake URL."""

    path: str = DEFAULT_WAREHOUSE
    data_path: str = ""  # a DuckLake's Parquet folder (MLOPS_WAREHOUSE_DATA_PATH); unused for a file

    def get(self) -> Warehouse:
        return Warehouse(location(self.path), data_path=location(self.data_path) if self.data_path else None)

    # Every run uses the warehouse, and the in-process executor sets its resources up once per run: while
    # the run executes, the survivors of full garbage collections are frozen (lib/long_lived.py).
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        long_lived.start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        long_lived.stop()


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone where exports and API pulls arrive, one folder per source (MLOPS_LANDING_DIR)."""

    path: str = DEFAULT_LANDING

    def root(self) -> Path:
        return project_path(
            self.path
        )  # a relative path is under the project folder, not the working directory

    def source_dir(self, source: str) -> Path:
        return self.root() / source


class ReportsResource(dg.ConfigurableResource):
    """Where HTML and PNG reports are written (MLOPS_REPORTS_DIR, default data/reports)."""

    path: str = DEFAULT_REPORTS

    def dir(self, *parts: str) -> Path:
        out = project_path(self.path).joinpath(*parts)
        out.mkdir(parents=True, exist_ok=True)
        return out


class ExportsResource(dg.ConfigurableResource):
    """Where the PM exports go (MLOPS_EXPORTS_DIR, default data/exports) and the URL that serves them.

    ``serve_url`` is the scoring service (``make serve``), which serves data/reports/ and data/exports/
    read-only at /reports/ and /exports/ (MLOPS_SERVE_URL, default http://MLOPS_SERVE_HOST:MLOPS_SERVE_PORT);
    empty: no links, only paths.
    """

    path: str = DEFAULT_EXPORTS
    serve_url: str = ""

    def dir(self) -> Path:
        out = project_path(self.path)
        out.mkdir(parents=True, exist_ok=True)
        return out

    def url(self, route: str, relative: str | Path) -> str:
        """``<serve_url>/<route>/<relative>`` (route: "exports" or "reports"), or "" without a serve_url."""
        from urllib.parse import quote

        if not self.serve_url:
            return ""
        return f"{self.serve_url.rstrip('/')}/{route}/{quote(Path(relative).as_posix())}"


def default_serve_url() -> str:
    """MLOPS_SERVE_URL, else the address `make serve` listens on (MLOPS_SERVE_HOST, MLOPS_SERVE_PORT)."""
    if is_set("MLOPS_SERVE_URL"):
        return env("MLOPS_SERVE_URL")
    host = env("MLOPS_SERVE_HOST")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # a browser cannot open the wildcard address
    return f"http://{host}:{env('MLOPS_SERVE_PORT')}"


class JiraResource(dg.ConfigurableResource):
    """A live Jira site (JIRA_URL, JIRA_USER, JIRA_API_TOKEN, JIRA_API_VERSION) and what to pull from it
    (JIRA_PROJECTS, JIRA_JQL, JIRA_START_DATE); unset URL = exports only.
    """

    url: str = Field(default="", description="JIRA_URL: " + PULL_VARIABLES["jira"]["JIRA_URL"])
    user: str = Field(default="", description="JIRA_USER: " + PULL_VARIABLES["jira"]["JIRA_USER"])
    api_token: str = Field(
        default="", description="JIRA_API_TOKEN: " + PULL_VARIABLES["jira"]["JIRA_API_TOKEN"]
    )
    api_version: str = Field(
        default="", description="JIRA_API_VERSION: " + PULL_VARIABLES["jira"]["JIRA_API_VERSION"]
    )
    projects: str = Field(default="", description="JIRA_PROJECTS: " + PULL_VARIABLES["jira"]["JIRA_PROJECTS"])
    jql: str = Field(default="", description="JIRA_JQL: " + PULL_VARIABLES["jira"]["JIRA_JQL"])
    start_date: str = Field(
        default="", description="JIRA_START_DATE: " + PULL_VARIABLES["jira"]["JIRA_START_DATE"]
    )

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def start(self) -> datetime | None:
        return parse_start_date(self.start_date, "JIRA_START_DATE")

    def client(self):
        """The client, through the one validated constructor (lib/pulls.py, as JiraClient.from_env)."""
        return jira_client(
            self.url,
            self.user,
            self.api_token,
            api_version=self.api_version,
            projects=self.projects,
            jql=self.jql,
        )

    def status(self) -> str:
        """One line for metadata and the log: what the pull does, or why it is off."""
        return pull_status(
            "jira",
            self.configured,
            f"Jira at {safe_url(self.url)}" if self.url else "",
            {"JIRA_USER": self.user, "JIRA_API_TOKEN": self.api_token},
        )

    def environment_warnings(self) -> list[str]:
        return misspelled_variables("jira")


class GitHubResource(dg.ConfigurableResource):
    """GitHub repositories to pull issues from (GITHUB_TOKEN, GITHUB_REPOS, GITHUB_START_DATE); unset repos = exports only."""

    token: str = Field(default="", description="GITHUB_TOKEN: " + PULL_VARIABLES["github"]["GITHUB_TOKEN"])
    repos: str = Field(default="", description="GITHUB_REPOS: " + PULL_VARIABLES["github"]["GITHUB_REPOS"])
    api_url: str = Field(
        default="https://api.github.com",
        description="GITHUB_API_URL: " + PULL_VARIABLES["github"]["GITHUB_API_URL"],
    )
    start_date: str = Field(
        default="", description="GITHUB_START_DATE: " + PULL_VARIABLES["github"]["GITHUB_START_DATE"]
    )

    @property
    def configured(self) -> bool:
        return bool(self.repos.strip())

    def start(self) -> datetime | None:
        return parse_start_date(self.start_date, "GITHUB_START_DATE")

    def client(self):
        """The client, through the one validated constructor (lib/pulls.py, as GitHubClient.from_env)."""
        return github_client(self.token, self.repos, api_url=self.api_url)

    def status(self) -> str:
        """One line for metadata and the log: what the pull does, or why it is off."""
        return pull_status(
            "github", self.configured, f"GitHub at {safe_url(self.api_url)}", {"GITHUB_TOKEN": self.token}
        )

    def environment_warnings(self) -> list[str]:
        return misspelled_variables("github")


class ServingTelemetryResource(dg.ConfigurableResource):
    """The scoring service whose /metrics monitoring reads (MLOPS_SERVE_URL; empty: none is watched)."""

    url: str = ""
    timeout_s: float = 10.0

    def scrape(self) -> str:
        import requests

        answer = requests.get(self.url.rstrip("/") + "/metrics", timeout=self.timeout_s)
        answer.raise_for_status()
        return answer.text


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry (MLFLOW_TRACKING_URI; default a SQLite store under data/mlflow/)."""

    tracking_uri: str = (
        ""  # empty: registry.get_tracking_uri() (MLFLOW_TRACKING_URI or data/mlflow/mlflow.db)
    )
    artifacts_dir: str = ""  # empty: MLOPS_MLFLOW_ARTIFACTS or data/mlflow/artifacts
    experiment: str = "task_models"

    def uri(self) -> str:
        from mlops_assets.lib import registry

        return self.tracking_uri or registry.get_tracking_uri()

    def client(self):
        from mlops_assets.lib import registry

        return registry.get_client(self.uri())
