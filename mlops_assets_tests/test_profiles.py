"""Profile selection: local by default (in-process), cluster only with every setting present."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets import profiles


def test_local_is_the_default_and_runs_in_process(monkeypatch):
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    assert profiles.current_profile() == "local"
    assert profiles.executor() is dg.in_process_executor


def test_an_unknown_profile_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("MLOPS_PROFILE", "kubernetes")
    with pytest.raises(profiles.ProfileError, match="local, cluster"):
        profiles.current_profile()


def test_cluster_names_every_missing_setting(monkeypatch):
    for name in profiles.CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_WAREHOUSE", "data/warehouse.duckdb")
    with pytest.raises(profiles.ProfileError) as info:
        profiles.executor("cluster")
    message = str(info.value)
    for name in set(profiles.CLUSTER_ENV) - {"MLOPS_WAREHOUSE"}:
        assert name in message
    assert "DuckLake URL" in message


def test_cluster_sends_steps_to_celery(monkeypatch):
    pytest.importorskip("dagster_celery")
    monkeypatch.setenv("MLOPS_WAREHOUSE", "ducklake:postgres:dbname=lake host=db")
    monkeypatch.setenv("MLOPS_WAREHOUSE_DATA_PATH", "/mnt/lake")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLOPS_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MLOPS_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    executor = profiles.executor("cluster")
    assert executor.name == "celery"


def test_cluster_without_the_cluster_extra_says_how_to_install_it(monkeypatch):
    """A laptop install leaves Celery out (pyproject's `cluster` extra): the error names the extra."""
    import sys

    monkeypatch.setenv("MLOPS_WAREHOUSE", "ducklake:postgres:dbname=lake host=db")
    monkeypatch.setenv("MLOPS_WAREHOUSE_DATA_PATH", "/mnt/lake")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLOPS_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("MLOPS_CELERY_BACKEND", "redis://127.0.0.1:6379/1")
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # as when the extra is not installed
    with pytest.raises(profiles.ProfileError, match=r"pip install -e '\.\[cluster\]'"):
        profiles.executor("cluster")


def test_the_cluster_stack_is_an_extra_that_the_dev_extra_includes():
    """A laptop install stays light; `make test` (the dev extra) still gets what the cluster tests need."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    names = {
        dep.split("[")[0].split(">")[0].split("=")[0].split(";")[0].strip() for dep in project["dependencies"]
    }
    cluster = project["optional-dependencies"]["cluster"]
    assert {"dagster-celery", "dagster-postgres", "psycopg2-binary", "duckdb-extension-ducklake"} <= {
        dep.split("[")[0].split(">")[0].split("=")[0] for dep in cluster
    }
    assert not names & {"dagster-celery", "dagster-postgres", "psycopg2-binary", "duckdb-extension-ducklake"}
    assert "mlops_assets[cluster]" in project["optional-dependencies"]["dev"]
