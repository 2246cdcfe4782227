"""The one Definitions object of the code location: every group's defs merged, with the resources."""

from __future__ import annotations

import dagster as dg

from mlops_assets import profiles
from mlops_assets.defs import all_group_defs
from mlops_assets.resources import (
    DEFAULT_LANDING,
    DEFAULT_REPORTS,
    DEFAULT_WAREHOUSE,
    GitHubResource,
    JiraResource,
    LandingZoneResource,
    MLflowResource,
    ReportsResource,
    WarehouseResource,
    env_or_default,
)


def build_resources(
    warehouse: str | None = None, landing: str | None = None, reports: str | None = None
) -> dict[str, object]:
    """Resources configured from environment variables with defaults; explicit paths win (tests, bench)."""
    return {
        "warehouse": WarehouseResource(path=warehouse or env_or_default("MLOPS_WAREHOUSE", DEFAULT_WAREHOUSE),
                                       data_path=env_or_default("MLOPS_WAREHOUSE_DATA_PATH", "")),
        "landing": LandingZoneResource(path=landing or env_or_default("MLOPS_LANDING_DIR", DEFAULT_LANDING)),
        "reports": ReportsResource(path=reports or env_or_default("MLOPS_REPORTS_DIR", DEFAULT_REPORTS)),
        "jira": JiraResource(
            url=env_or_default("JIRA_URL", ""),
            user=env_or_default("JIRA_USER", ""),
            api_token=env_or_default("JIRA_API_TOKEN", ""),
            api_version=env_or_default("JIRA_API_VERSION", ""),
        ),
        "mlflow": MLflowResource(
            tracking_uri=env_or_default("MLFLOW_TRACKING_URI", ""),
            artifacts_dir=env_or_default("MLOPS_MLFLOW_ARTIFACTS", ""),
        ),
        "github": GitHubResource(
            token=env_or_default("GITHUB_TOKEN", ""),
            repos=env_or_default("GITHUB_REPOS", ""),
            api_url=env_or_default("GITHUB_API_URL", "https://api.github.com"),
        ),
    }


defs = dg.Definitions.merge(
    *all_group_defs(),
    # The profile (MLOPS_PROFILE: local by default, or cluster) picks the executor; see profiles.py.
    dg.Definitions(resources=build_resources(), executor=profiles.executor()),
)
