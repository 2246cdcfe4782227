"""Where experiments keep artifacts: a local store gets a file path, a tracking server decides itself."""

from pathlib import Path

import pytest

from mlops_assets.lib import registry


@pytest.mark.parametrize(
    "uri", ["http://mlflow.internal:5000", "https://mlflow.example.com", "HTTP://127.0.0.1:5000"]
)
def test_a_tracking_server_decides_where_artifacts_go(uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS", str(tmp_path / "mount"))
    assert registry.artifact_location(tmp_path / "explicit", uri) is None
    assert not (tmp_path / "mount").exists() and not (tmp_path / "explicit").exists()


@pytest.mark.parametrize(
    "uri", [None, "sqlite:///x.db", "postgresql+psycopg2://u:p@h/mlflow", "file:///tmp/mlruns"]
)
def test_a_local_store_keeps_artifacts_in_the_configured_folder(uri, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_MLFLOW_ARTIFACTS", str(tmp_path / "mount"))
    assert registry.artifact_location(None, uri) == (tmp_path / "mount").resolve().as_uri()
    assert (
        registry.artifact_location(tmp_path / "explicit", uri) == (tmp_path / "explicit").resolve().as_uri()
    )
    assert Path(tmp_path / "mount").is_dir()
