"""The monitoring policy: retraining cool-down and budget, alert webhook, drift window and thresholds (all from
environment variables, read when the code location loads).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from mlops_assets.lib.settings import VARIABLES, env, env_number
from mlops_assets.resources import env_or_default

DEFAULT_COOLDOWN_S = float(VARIABLES["MLOPS_RETRAIN_COOLDOWN_S"].default)  # 6 hours
# DataDriftConfig field -> (variable, default, type); the defaults the launchpad shows and scheduled runs use
DRIFT_VARIABLES: dict[str, tuple[str, float | int, type]] = {
    "window_days": ("MLOPS_DRIFT_WINDOW_DAYS", 30.0, float),
    "column_threshold": ("MLOPS_DRIFT_COLUMN_THRESHOLD", 0.15, float),
    "drift_share_threshold": ("MLOPS_DRIFT_SHARE_THRESHOLD", 0.1, float),
    "prediction_threshold": ("MLOPS_PREDICTION_DRIFT_THRESHOLD", 0.15, float),
    "min_current_rows": ("MLOPS_DRIFT_MIN_ROWS", 100, int),
}


def drift_defaults(environ: Mapping[str, str] | None = None) -> dict[str, float | int]:
    """The drift window and thresholds from the environment (DRIFT_VARIABLES), each checked with the variable named."""
    values = {
        field: env_number(variable, default, kind, environ)
        for field, (variable, default, kind) in DRIFT_VARIABLES.items()
    }
    if values["drift_share_threshold"] > 1:
        raise ValueError(
            f"MLOPS_DRIFT_SHARE_THRESHOLD={values['drift_share_threshold']!r} is a share of the monitored "
            "features: give a number in (0, 1], e.g. 0.1"
        )
    return values


class MonitoringResource(dg.ConfigurableResource):
    """Retrain cool-down (MLOPS_RETRAIN_COOLDOWN_S), retrain search budget (MLOPS_RETRAIN_TRIALS, 0 = the
    job's defaults) and alert webhook (MLOPS_ALERT_WEBHOOK; empty = log only).
    """

    retrain_cooldown_s: float = DEFAULT_COOLDOWN_S
    retrain_trials: int = 0
    alert_webhook: str = ""

    def retrain_run_config(self) -> dict:
        """Run config of a retraining run: a smaller Optuna search when retrain_trials is set."""
        if self.retrain_trials <= 0:
            return {}
        budget = {"n_trials": self.retrain_trials, "timeout_s": 60.0 * self.retrain_trials, "cv_folds": 2}
        from mlops_assets.lib.training import MODEL_SPECS

        return {"ops": {f"models__{name}_candidate": {"config": budget} for name in MODEL_SPECS}}


def monitoring_resource() -> MonitoringResource:
    """The resource as the code location builds it from the environment."""
    return MonitoringResource(
        # numbers: dg.EnvVar carries only text (and int), so these two are read here, from the one list
        retrain_cooldown_s=float(env("MLOPS_RETRAIN_COOLDOWN_S")),
        retrain_trials=int(env("MLOPS_RETRAIN_TRIALS")),
        alert_webhook=env_or_default("MLOPS_ALERT_WEBHOOK", ""),
    )
