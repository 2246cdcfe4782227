"""The monitoring policy: retraining cool-down and budget, alert webhook (all from environment variables)."""

from __future__ import annotations

import os

import dagster as dg

from mlops_assets.resources import env_or_default

DEFAULT_COOLDOWN_S = 6 * 3600


class MonitoringResource(dg.ConfigurableResource):
    """Retrain cool-down (MLOPS_RETRAIN_COOLDOWN_S), retrain search budget (MLOPS_RETRAIN_TRIALS, 0 = the
    job's defaults) and alert webhook (MLOPS_ALERT_WEBHOOK; empty = log only)."""

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
        retrain_cooldown_s=float(os.environ.get("MLOPS_RETRAIN_COOLDOWN_S") or DEFAULT_COOLDOWN_S),
        retrain_trials=int(os.environ.get("MLOPS_RETRAIN_TRIALS") or 0),
        alert_webhook=env_or_default("MLOPS_ALERT_WEBHOOK", ""),
    )
