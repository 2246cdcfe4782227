"""Paths do not depend on the working directory (issue 22.6): every entry finds the project's data folder
(MLOPS_HOME, else the checkout the package is installed from) or fails naming MLOPS_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.lib import registry, settings
from mlops_assets.resources import LandingZoneResource, ReportsResource, WarehouseResource

ROOT = Path(__file__).resolve().parents[1]
LOCATIONS = [
    "MLOPS_HOME",
    "MLFLOW_TRACKING_URI",
    *settings.DATA_LOCATIONS,
    "DAGSTER_HOME",
    "DAGSTER_IS_DEV_CLI",
]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """The working directory is a folder that is not the project; no location variable is set."""
    for name in LOCATIONS:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _command(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in LOCATIONS}
    return subprocess.run(args, cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_the_project_folder_is_mlops_home_else_the_checkout_else_an_error_naming_mlops_home(
    tmp_path, elsewhere, monkeypatch
):
    assert settings.project_home() == ROOT  # the editable install `make` does: the checkout, from any folder
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    assert settings.project_home() == tmp_path.resolve()
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "missing"))
    with pytest.raises(settings.ProjectHomeError, match="MLOPS_HOME=.*is not a folder"):
        settings.project_home()
    # installed into site-packages (no checkout above the package) and run from another folder
    monkeypatch.delenv("MLOPS_HOME")
    monkeypatch.setattr(settings, "_package_checkout", lambda: tmp_path / "site-packages")
    with pytest.raises(settings.ProjectHomeError, match="Set MLOPS_HOME to the project folder"):
        settings.project_path("data/warehouse.duckdb")
    assert settings.project_path("/abs/warehouse.duckdb") == Path(
        "/abs/warehouse.duckdb"
    )  # nothing to resolve
    monkeypatch.chdir(ROOT)  # ... or from the project folder itself
    assert settings.project_home() == ROOT


def test_relative_locations_hang_from_the_project_folder_not_the_working_directory(
    tmp_path, elsewhere, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(home))
    assert LandingZoneResource(path="data/landing").source_dir("jira") == home / "data" / "landing" / "jira"
    assert ReportsResource(path="data/reports").dir("x") == home / "data" / "reports" / "x"
    assert WarehouseResource(path="data/warehouse.duckdb").get().path == home / "data" / "warehouse.duckdb"
    assert (
        WarehouseResource(path="ducklake:postgres:dbname=lake").get().location
        == "ducklake:postgres:dbname=lake"
    )
    assert registry.get_tracking_uri() == f"sqlite:///{home}/data/mlflow/mlflow.db"
    assert registry.artifact_location() == (home / "data" / "mlflow" / "artifacts").as_uri()
    assert not (elsewhere / "data").exists()


def test_rollback_from_another_folder_reads_the_projects_store_and_never_creates_one(
    tmp_path, elsewhere, empty_mlflow_store
):
    home = tmp_path / "home"
    home.mkdir()
    cli = [sys.executable, "-m", "mlops_assets.cli", "rollback", "late_risk"]
    done = _command(cli, elsewhere, MLOPS_HOME=str(home))
    assert done.returncode == 1 and f"no MLflow store at {home}/data/mlflow/mlflow.db" in done.stderr
    assert not (home / "data" / "mlflow" / "mlflow.db").exists()
    (home / "data" / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_mlflow_store, home / "data" / "mlflow" / "mlflow.db")
    done = _command(cli, elsewhere, MLOPS_HOME=str(home))
    assert done.returncode == 1 and "has no champion" in done.stderr  # the project's (empty) registry, read
    done = _command(cli, elsewhere, MLOPS_HOME=str(tmp_path / "nope"))
    assert done.returncode == 2 and "MLOPS_HOME=" in done.stderr
    assert not (elsewhere / "data").exists()


def test_generate_writes_into_the_projects_landing_zone_from_any_folder(tmp_path, elsewhere):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".env").write_text("MLOPS_LANDING_DIR=drops\n")  # the project's .env, relative to the project
    done = _command(
        [sys.executable, "-m", "mlops_assets.cli", "generate", "--tasks", "60"],
        elsewhere,
        MLOPS_HOME=str(home),
    )
    assert done.returncode == 0, done.stderr
    assert (
        any((home / "drops").rglob("*.*"))
        and not (elsewhere / "data").exists()
        and not (elsewhere / "drops").exists()
    )


def test_the_project_env_file_is_read_without_overriding_what_is_set(tmp_path):
    (tmp_path / ".env").write_text("JIRA_URL=https://acme.atlassian.net\nJIRA_USER=from-file\n")
    environ = {"MLOPS_HOME": str(tmp_path), "JIRA_USER": "from-shell"}
    assert settings.load_project_env(environ) == ["JIRA_URL"]
    assert environ["JIRA_URL"] == "https://acme.atlassian.net" and environ["JIRA_USER"] == "from-shell"


def test_serving_help_prints_usage_and_exits_without_starting_a_server():
    done = _command([sys.executable, "-m", "mlops_assets.serving", "--help"], ROOT)
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m mlops_assets.serving")
    assert "MLOPS_SERVE_PORT" in done.stdout and "Uvicorn running" not in done.stderr
    wrong = _command([sys.executable, "-m", "mlops_assets.serving", "--port", "9"], ROOT)
    assert wrong.returncode == 2 and "unrecognized arguments" in wrong.stderr


def test_dagster_dev_without_dagster_home_is_told_what_to_set():
    message = settings.dagster_home_warning({"DAGSTER_IS_DEV_CLI": "1"})
    assert message is not None and f"DAGSTER_HOME={ROOT}/.dagster" in message and "make ui" in message
    assert settings.dagster_home_warning({"DAGSTER_IS_DEV_CLI": "1", "DAGSTER_HOME": "/x"}) is None
    assert settings.dagster_home_warning({}) is None  # tests, `dagster asset materialize` with a home, ...


@pytest.mark.parametrize("name", [".env", ".tmp_dagster_home_abc123/"])
def test_secrets_and_temporary_instances_are_git_ignored(name):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 0
    assert subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT).returncode == 1
