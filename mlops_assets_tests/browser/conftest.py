"""One materialized sandbox, the Dagster and MLflow UIs on it, and one headless chromium, shared by the browser tests."""

from __future__ import annotations

import pytest

from mlops_assets.devtools import screenshots


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory, empty_mlflow_store) -> screenshots.Sandbox:
    """1,500 generated tasks (and a drifted batch when drift is monitored) materialized with the CLI into a temp instance."""
    if not screenshots.CHROMIUM.exists():
        pytest.skip(f"{screenshots.CHROMIUM} is absent: `apt-get install -y chromium` (CI installs it)")
    return screenshots.prepare_sandbox(
        tmp_path_factory.mktemp("browser"), n_tasks=1500, mlflow_template=empty_mlflow_store
    )


@pytest.fixture(scope="session")
def dagster_ui(sandbox: screenshots.Sandbox):
    """Base URL of dagster-webserver on the sandbox's instance (127.0.0.1, free port; stopped at teardown)."""
    with screenshots.dagster_webserver(sandbox) as base:
        yield base


@pytest.fixture(scope="session")
def mlflow_ui(sandbox: screenshots.Sandbox):
    """Base URL of `mlflow server` on the sandbox's tracking store (127.0.0.1, free port; stopped at teardown)."""
    with screenshots.mlflow_server(sandbox) as base:
        yield base


@pytest.fixture(scope="session")
def page(sandbox: screenshots.Sandbox, tmp_path_factory: pytest.TempPathFactory):
    """One headless /usr/bin/chromium page with a fresh profile, shared by the tests."""
    with screenshots.browser_page(tmp_path_factory.mktemp("chromium-profile")) as page:
        yield page
