"""Settings read from the environment (numbers, the project's folder, its .env), with errors a user can act on.

:data:`VARIABLES` is the one list of every environment variable the package reads, with its default and
meaning (README's configuration table shows the same; a test compares them). Configuration flows one way:
environment -> resources (``dg.EnvVar``, so the UI shows where a value came from; defs/ and definitions.py)
-> parameters of lib/ functions. Where lib/ or a command must read a variable itself (a CLI or script path,
a fallback when no resource gives the value), it reads it with :func:`env`, which knows only listed names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Variable:
    """An environment variable: its default as text ("" = unset; the meaning says what unset does) and meaning."""

    default: str
    what: str


# The live pulls' variables (lib/pulls.py reads them; the resources' field descriptions quote them).
PULL_VARIABLES: dict[str, dict[str, str]] = {
    "jira": {
        "JIRA_URL": "the Jira site root, e.g. https://example.atlassian.net",
        "JIRA_USER": "your login (the e-mail on Jira Cloud)",
        "JIRA_API_TOKEN": "an API token (Cloud) or a password / personal access token (Server)",
        "JIRA_API_VERSION": "2 or 3; unset detects Cloud vs Server",
        "JIRA_PROJECTS": "project keys to pull, comma-separated (e.g. PAY,OPS); unset: every project",
        "JIRA_JQL": "extra JQL ANDed to the query, e.g. issuetype != Epic",
        "JIRA_START_DATE": "pull issues updated on or after this date (YYYY-MM-DD); unset: all history",
    },
    "github": {
        "GITHUB_TOKEN": "a token that can read the repositories' issues",
        "GITHUB_REPOS": "owner/repo[,owner/repo...]",
        "GITHUB_API_URL": "https://api.github.com, or https://<host>/api/v3 for GitHub Enterprise",
        "GITHUB_START_DATE": "pull issues updated on or after this date (YYYY-MM-DD); unset: all history",
    },
}

VARIABLES: dict[str, Variable] = {
    # where things live
    "MLOPS_HOME": Variable(
        "", "the project folder relative locations hang from (unset: the source checkout)"
    ),
    "MLOPS_WAREHOUSE": Variable("data/warehouse.duckdb", "the warehouse: a DuckDB file or a ducklake: URL"),
    "MLOPS_WAREHOUSE_DATA_PATH": Variable("", "a DuckLake's Parquet folder (cluster profile)"),
    "MLOPS_LANDING_DIR": Variable("data/landing", "the landing zone"),
    "MLOPS_REPORTS_DIR": Variable("data/reports", "HTML and PNG reports"),
    "MLOPS_EXPORTS_DIR": Variable("", "the PM exports (unset: exports beside the reports folder)"),
    "MLFLOW_TRACKING_URI": Variable(
        "", "MLflow tracking store and registry (unset: sqlite under data/mlflow/)"
    ),
    "MLOPS_MLFLOW_ARTIFACTS": Variable(
        "data/mlflow/artifacts", "artifact location of experiments created here"
    ),
    "MLOPS_MODEL_CACHE": Variable("", "champions compiled to native code (unset: the user's cache folder)"),
    "DAGSTER_HOME": Variable("", "the Dagster instance folder (`make ui` sets .dagster)"),
    # data
    "MLOPS_AS_OF": Variable("", "the time batch scores are as of (ISO 8601 or now; unset: from the data)"),
    "MLOPS_PSEUDONYM_SALT": Variable("mlops-assets", "salt of the pseudonymous person ids"),
    "MLOPS_JIRA_STORY_POINTS_FIELDS": Variable("", "Jira custom field ids read as story points"),
    "MLOPS_JIRA_CSV_TIMEZONE": Variable("UTC", "IANA time zone of Jira CSV exports' timestamps"),
    "MLOPS_INGEST_BATCH_MB": Variable("512", "megabytes of landing files per ingestion transaction"),
    "MLOPS_INGEST_MEMORY_LIMIT": Variable("768MB", "DuckDB's memory cap while ingestion writes"),
    # the scoring service
    "MLOPS_SERVE_URL": Variable(
        "",
        "the scoring service the asset pages link and telemetry reads "
        "(unset: http://MLOPS_SERVE_HOST:MLOPS_SERVE_PORT for links, no telemetry)",
    ),
    "MLOPS_SERVE_HOST": Variable("127.0.0.1", "address `make serve` binds to"),
    "MLOPS_SERVE_PORT": Variable("8000", "port of `make serve`"),
    "MLOPS_SERVE_CHECK_S": Variable("30", "seconds between the service's checks for new champions"),
    "MLOPS_SERVE_MAX_TASKS": Variable("1000", "most tasks in one /predict/batch request"),
    "MLOPS_SERVE_MAX_BYTES": Variable("1000000", "largest request body the service accepts"),
    "MLOPS_SERVE_WORKERS": Variable("1", "service worker processes"),
    "MLOPS_SERVE_TELEMETRY": Variable("1", "0: the service counts nothing per request"),
    "MLOPS_SERVE_FREEZE_GC": Variable(
        "1", "0: the service's full garbage collections also walk the loaded champions and history"
    ),
    "MLOPS_SERVE_MAX_P99_MS": Variable("20", "telemetry check: most p99 latency (ms)"),
    "MLOPS_SERVE_MAX_ERROR_RATE": Variable("0.01", "telemetry check: most share of error answers"),
    "MLOPS_SERVE_MIN_REQUESTS": Variable(
        "20", "telemetry check: fewer requests since the last reading: not judged"
    ),
    "MLOPS_TELEMETRY_CRON": Variable("*/15 * * * *", "cron (UTC) of serving_telemetry_schedule"),
    # schedules, sensors, monitoring
    "MLOPS_INGEST_CRON": Variable("0 5 * * *", "cron (UTC) of daily_ingest_schedule"),
    "MLOPS_SCORE_CRON": Variable("30 5 * * *", "cron (UTC) of daily_score_schedule"),
    "MLOPS_MONITOR_CRON": Variable("0 6 * * *", "cron (UTC) of daily_monitoring_schedule"),
    "MLOPS_SENSOR_INTERVAL_S": Variable("30", "seconds between ticks of the monitoring sensors"),
    "MLOPS_RETRAIN_COOLDOWN_S": Variable("21600", "minimum seconds between two triggered retrains"),
    "MLOPS_RETRAIN_TRIALS": Variable("0", "search trials of a triggered retrain (0: TrainingConfig's)"),
    "MLOPS_ALERT_WEBHOOK": Variable(
        "", "URL that receives a JSON POST per failed run or check (unset: log only)"
    ),
    "MLOPS_DRIFT_WINDOW_DAYS": Variable(
        "30", "the current window: tasks created in the last N days of the data"
    ),
    "MLOPS_DRIFT_COLUMN_THRESHOLD": Variable(
        "0.15", "effect size at which a monitored feature counts as drifted"
    ),
    "MLOPS_DRIFT_SHARE_THRESHOLD": Variable("0.1", "share of drifted features that fails the drift check"),
    "MLOPS_PREDICTION_DRIFT_THRESHOLD": Variable(
        "0.15", "smallest score shift that counts as prediction drift"
    ),
    "MLOPS_DRIFT_MIN_ROWS": Variable("100", "fewer tasks in the window: drift is not judged"),
    # the cluster profile (profiles.py, docs/SCALING.md)
    "MLOPS_PROFILE": Variable("local", "local or cluster: the executor and what must be set"),
    "MLOPS_CELERY_BROKER": Variable("", "the Celery broker (cluster profile)"),
    "MLOPS_CELERY_BACKEND": Variable("", "the Celery result backend (cluster profile)"),
    # the live pulls
    **{
        name: Variable("https://api.github.com" if name == "GITHUB_API_URL" else "", what)
        for variables in PULL_VARIABLES.values()
        for name, what in variables.items()
    },
}


def env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value (stripped), or its default in :data:`VARIABLES` when unset or empty.

    Only listed names: a KeyError says to list a new one (and document it in README's configuration table).
    """
    if name not in VARIABLES:
        raise KeyError(
            f"{name} is not in mlops_assets.lib.settings.VARIABLES: list it there (default, meaning) "
            "and in README's configuration table"
        )
    return (os.environ if environ is None else environ).get(name, "").strip() or VARIABLES[name].default


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the listed variable has a (non-blank) value in the environment."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not in mlops_assets.lib.settings.VARIABLES")
    return bool((os.environ if environ is None else environ).get(name, "").strip())


def env_number(name: str, default: Any, kind: type = float, environ: Mapping[str, str] | None = None) -> Any:
    """``kind(environ[name])`` when set (it must be positive), else ``default``; a ValueError names the variable."""
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number ({kind.__name__}): unset it or give one") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


# ---------------------------------------------------------------------------------------------------
# The project's folder, whatever the working directory

HOME_VARIABLE = "MLOPS_HOME"


class ProjectHomeError(RuntimeError):
    """The project's folder cannot be told; the message names the variable to set."""


def _is_project(folder: Path) -> bool:
    """A source checkout of this project: a pyproject.toml whose [project] name is mlops_assets."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'^name\s*=\s*"mlops[_-]assets"', text, re.MULTILINE) is not None


def _package_checkout() -> Path:
    """The folder above the installed package: the checkout itself for `pip install -e .` (make)."""
    return Path(__file__).resolve().parents[2]


def project_home(environ: Mapping[str, str] | None = None) -> Path:
    """The project root that relative data paths (data/warehouse.duckdb, data/mlflow/, ...) hang from.

    MLOPS_HOME when set; else the source checkout the package is installed from (an editable
    install, as `make` does); else the working directory if it is that checkout. Otherwise a
    ProjectHomeError says to set MLOPS_HOME: never a silent new data/ folder wherever a command ran.
    """
    raw = (os.environ if environ is None else environ).get(HOME_VARIABLE, "").strip()
    if raw:
        home = Path(raw).expanduser()
        if not home.is_dir():
            raise ProjectHomeError(
                f"{HOME_VARIABLE}={raw!r} is not a folder: set it to the project folder "
                "(the one holding pyproject.toml and data/), or unset it"
            )
        return home.resolve()
    for candidate in (_package_checkout(), Path.cwd()):
        if _is_project(candidate):
            return candidate
    raise ProjectHomeError(
        f"cannot tell where this project's data lives: mlops_assets is installed outside its source folder and "
        f"{Path.cwd()} is not that folder. Set {HOME_VARIABLE} to the project folder (the one holding data/), "
        "or give every location: MLOPS_WAREHOUSE, MLOPS_LANDING_DIR, MLOPS_REPORTS_DIR, MLFLOW_TRACKING_URI"
    )


def project_path(value: str | Path, environ: Mapping[str, str] | None = None) -> Path:
    """``value`` as an absolute path: relative ones are relative to :func:`project_home`, not the working directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else project_home(environ) / path


def location(value: str) -> str:
    """A storage location as given (a URL such as ``ducklake:...``/``sqlite:...``) or a path made absolute."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", value) and not re.match(r"^[A-Za-z]:[\\/]", value):
        return value
    return str(project_path(value))


def load_project_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Read ``<project home>/.env`` into the environment (set variables win); the names read.

    Dagster's own commands load ``.env`` from the folder they start in; the `mlops-assets` command
    and the scoring service load the project's, so they see the same tokens and paths from anywhere.
    """
    environ = os.environ if environ is None else environ
    try:
        path = project_home(environ) / ".env"
    except ProjectHomeError:
        return []
    if not path.is_file():
        return []
    from dotenv import dotenv_values

    read = []
    for name, value in dotenv_values(path).items():
        if value is not None and name not in environ:
            environ[name] = value
            read.append(name)
    return read


def dagster_home_warning(environ: Mapping[str, str] | None = None) -> str | None:
    """What to do when `dagster dev` runs without DAGSTER_HOME (its instance is deleted at exit), else None."""
    environ = os.environ if environ is None else environ
    if environ.get("DAGSTER_HOME", "").strip() or not environ.get("DAGSTER_IS_DEV_CLI"):
        return None
    try:
        home = project_home(environ) / ".dagster"
    except ProjectHomeError:
        home = Path("<project folder>/.dagster")
    return (
        f"DAGSTER_HOME is not set: `dagster dev` keeps runs, schedules and sensor state in a temporary "
        f".tmp_dagster_home_* folder deleted when it stops, so the UI starts empty and `make run`'s runs are "
        f"not there. Use `make ui`, or set DAGSTER_HOME={home} (absolute; in the shell or in the project's .env)"
    )


# The data locations and their defaults under the project folder (resources.py, serving, the CLI).
DATA_LOCATIONS = {
    "MLOPS_WAREHOUSE": "data/warehouse.duckdb",
    "MLOPS_LANDING_DIR": "data/landing",
    "MLOPS_REPORTS_DIR": "data/reports",
    "MLOPS_EXPORTS_DIR": "data/exports",
    "MLOPS_MLFLOW_ARTIFACTS": "data/mlflow/artifacts",
}


def absolute_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Set every data location variable to an absolute path (relative ones and defaults under the project folder).

    For a command's own process (`mlops-assets`, `python -m mlops_assets.serving`): whatever reads
    ``os.environ.get(name) or "data/..."`` afterwards, in this process or a child, reads the same files.
    """
    environ = os.environ if environ is None else environ
    for name, default in DATA_LOCATIONS.items():
        environ[name] = location(environ.get(name, "").strip() or default)
