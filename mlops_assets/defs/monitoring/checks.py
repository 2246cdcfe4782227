"""Check specs of the monitoring assets (declared next to them, results returned with the materialization).

Severity carries the meaning: ERROR = drift or degradation beyond the threshold (the retrain sensor acts on
these); WARN = could not be judged (no champion, no reference, an empty or too small window: alerted with
the reason, never retrained on). A performance check omitted from the result shows as "skipped" (too few new
labels, the normal state for weeks after a training), with the reason in the asset's metadata.
"""

import dagster as dg

from mlops_assets.lib import monitoring
from mlops_assets.metadata import readable

from ..shared import DATA_DRIFT, MODEL_PERFORMANCE

DRIFT_CHECKS = [
    dg.AssetCheckSpec(
        monitoring.DRIFT_CHECK,
        asset=DATA_DRIFT,
        description="The share of drifted monitored features is below the threshold (ERROR at or above it, as on the Evidently page).",
    ),
    dg.AssetCheckSpec(
        "prediction_drift_small",
        asset=DATA_DRIFT,
        description="Neither champion's score distribution drifted from its training reference (warning).",
    ),
]
PERFORMANCE_CHECKS = [
    dg.AssetCheckSpec(
        name,
        asset=MODEL_PERFORMANCE,
        description=f"The {name.removesuffix('_performance_holds')} champion on new labels stays within "
        "tolerance of its own test metrics (ERROR when it degrades; skipped with too few new labels).",
    )
    for name in monitoring.PERFORMANCE_CHECKS
]


def performance_check(
    verdict: monitoring.PerformanceVerdict, version: str | None, data_version: str
) -> dg.AssetCheckResult:
    """The check result of one verdict: ERROR when degraded, WARN when it could not be judged."""
    judged = verdict.status in ("ok", "degraded")
    metadata = {
        "reason": verdict.reason,
        "status": verdict.status,
        "new_labels": verdict.n_labels,
        "data_version": data_version,
        "champion_version": version or "none",
        **readable({k: v for k, v in {**verdict.live, **verdict.reference}.items() if v == v}),
    }
    return dg.AssetCheckResult(
        check_name=f"{verdict.model}_performance_holds",
        passed=verdict.status == "ok",
        severity=dg.AssetCheckSeverity.ERROR if judged else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
