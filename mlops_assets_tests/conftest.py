"""Shared fixtures: each test gets its own warehouse, landing zone, MLflow store and reports folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a reason when it is absent (a user's clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"real data {path} is absent (it lives beside the repository in ../shared/data, not in it)"
        )
    return path


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    path = tmp_path / "reports"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialized, empty MLflow SQLite store: creating one runs MLflow's migrations (5-15 s here)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_store: Path) -> str:
    """A fresh SQLite MLflow tracking store and registry for this test (a copy of the empty template)."""
    import shutil

    store = tmp_path / "mlflow"
    store.mkdir()
    shutil.copy(empty_mlflow_store, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS", str(store / "artifacts"))
    return uri


def project_resources(warehouse_path: Path, landing_dir: Path, reports_dir: Path | None = None) -> dict:
    """The Definitions' resources pointed at temporary paths."""
    from mlops_assets.definitions import build_resources

    return build_resources(
        str(warehouse_path), str(landing_dir), str(reports_dir or warehouse_path.parent / "reports")
    )


def materialize(
    selection,
    warehouse_path: Path,
    landing_dir: Path,
    reports_dir: Path | None = None,
    instance=None,
    raise_on_error: bool = True,
):
    """Materialize an asset selection of the real Definitions in-process against temporary storage."""
    import dagster as dg

    from mlops_assets.definitions import defs

    return dg.materialize(
        list(defs.assets),
        selection=selection,
        resources=project_resources(warehouse_path, landing_dir, reports_dir),
        instance=instance,
        raise_on_error=raise_on_error,
    )
