"""The one Definitions object of the code location: every group's defs merged, with the resources."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs import all_group_defs
from mlops_assets.resources import (
    DEFAULT_LANDING,
    DEFAULT_REPORTS,
    DEFAULT_WAREHOUSE,
    LandingZoneResource,
    ReportsResource,
    WarehouseResource,
    env_or_default,
)


def build_resources(
    warehouse: str | None = None, landing: str | None = None, reports: str | None = None
) -> dict[str, object]:
    """Resources configured from environment variables with defaults; explicit paths win (tests, bench)."""
    return {
        "warehouse": WarehouseResource(path=warehouse or env_or_default("MLOPS_WAREHOUSE", DEFAULT_WAREHOUSE)),
        "landing": LandingZoneResource(path=landing or env_or_default("MLOPS_LANDING_DIR", DEFAULT_LANDING)),
        "reports": ReportsResource(path=reports or env_or_default("MLOPS_REPORTS_DIR", DEFAULT_REPORTS)),
    }


defs = dg.Definitions.merge(
    *all_group_defs(),
    dg.Definitions(resources=build_resources(), executor=dg.in_process_executor),
)
