"""Settings read from the environment (numbers, the project's folder, its .env), with errors a user can act on."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any


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
            raise ProjectHomeError(f"{HOME_VARIABLE}={raw!r} is not a folder: set it to the project folder "
                                   "(the one holding pyproject.toml and data/), or unset it")
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
    return (f"DAGSTER_HOME is not set: `dagster dev` keeps runs, schedules and sensor state in a temporary "
            f".tmp_dagster_home_* folder deleted when it stops, so the UI starts empty and `make run`'s runs are "
            f"not there. Use `make ui`, or set DAGSTER_HOME={home} (absolute; in the shell or in the project's .env)")


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
