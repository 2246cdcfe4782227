"""Run configuration of the model assets (set in the launchpad or `dagster asset materialize --config`)."""

import dagster as dg
from pydantic import Field, field_validator

from mlops_assets.lib import gate, training

_DEFAULTS = training.TrainConfig()


class SplitConfig(dg.Config):
    """Time-ordered split fractions by created_at, and an optional gap between splits."""

    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    gap_days: float = 0.0


class TrainingConfig(dg.Config):
    """Hyperparameter search budget: stops at n_trials or timeout_s, whichever comes first; seeded.

    The defaults are lib's ``training.TrainConfig`` defaults: one set of defaults for both.
    """

    n_trials: int = Field(default=_DEFAULTS.n_trials, description="Optuna trials at most")
    timeout_s: float = Field(
        default=_DEFAULTS.timeout_s, description="the search stops after this many seconds"
    )
    seed: int = _DEFAULTS.seed
    cv_folds: int = Field(
        default=_DEFAULTS.cv_folds, description="time-series CV folds of the best trial (< 2: none)"
    )
    tune_rows: int = Field(
        default=_DEFAULTS.tune_rows,
        description="trials fit the most recent this-many train rows, then the best is refit on all of them "
        "(0: every trial fits all train rows)",
    )
    parallel_trials: int = Field(
        default=_DEFAULTS.parallel_trials,
        description="trials fit at a time, one thread each (the same search whatever the machine; 1 on one core)",
    )
    prune_every: int = Field(
        default=_DEFAULTS.prune_every,
        description="every this many rounds a trial behind the median of the finished trials stops (0: no pruning)",
    )
    sorted_metric_every: int = Field(
        default=_DEFAULTS.sorted_metric_every,
        ge=1,
        description="a metric LightGBM computes by sorting (late_risk's AUC) is judged every this many rounds in "
        "the trials and the refit, whose forests end on such a round (1: every round)",
    )


class GateConfig(dg.Config):
    """Champion/challenger gate: the margin a candidate must win by (None: the model spec's default)."""

    margin: float | None = Field(
        default=None,
        description="How much the candidate must beat the champion's gate metric by on the same test window, "
        f"between {gate.MARGIN_RANGE[0]:g} and {gate.MARGIN_RANGE[1]:g} (late_risk: ROC-AUC; cycle_time: MAE "
        "in days); unset: the model's default",
    )

    @field_validator("margin")
    @classmethod
    def _margin_in_range(cls, margin: float | None) -> float | None:
        return None if margin is None else gate.check_margin(margin)
