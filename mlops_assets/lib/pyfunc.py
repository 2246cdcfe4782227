"""The served model: raw task records in, predictions out, through the same feature code as training.

:class:`TaskModel` is what MLflow stores for ``late_risk`` and ``cycle_time``. It holds only plain
values (the LightGBM model string, the feature list, the category levels, the pickled
:class:`~mlops_assets.lib.features.History` snapshot as bytes), so the pickle refers to code by
import path (``mlops_assets`` is installed wherever the model is loaded) and never embeds it.

Its input is what users have: rows of ``clean.tasks`` as a pandas or polars DataFrame (aware
timestamps, integer counts, any extra columns, which are ignored), or JSON-like records (a list of
dicts, or one dict) with timestamps as ISO 8601 strings with a UTC offset, as an online client sends
them (unknown fields are reported, as the scoring service does). The model validates every record
itself (``features.records_to_frame``) and reports a bad one in its ``error`` column instead of
failing the batch. That is why the signature declares no input schema: MLflow's column types would
refuse most of these before the model sees them (``datetime64[us, UTC]`` is no ``string``, int64 no
``double``; its ``datetime`` type drops time zones; polars frames are not accepted at all), and the
logged input example documents the fields. The output has one row per input row: task_id,
prediction (probability of being late, or days to resolve), error (why a row could not be scored)
and warning (categories the model never saw, treated as missing).

This module imports mlflow at import time (the class derives from ``PythonModel``); import it only
where a model is logged or loaded.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl

from mlops_assets.lib import features as features_lib
from mlops_assets.lib import training

OUTPUT_COLUMNS = ("task_id", "prediction", "error", "warning")


def signature():
    """The output schema of a :class:`TaskModel`; inputs are validated by the model (module docstring)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    output = Schema(
        [
            ColSpec("string", "task_id"),
            ColSpec("double", "prediction"),
            ColSpec("string", "error", required=False),
            ColSpec("string", "warning", required=False),
        ]
    )
    return ModelSignature(inputs=None, outputs=output)


def wire_records(tasks: pl.DataFrame) -> pd.DataFrame:
    """``clean.tasks``-shaped rows as an online client sends them (the model's input columns only), as a
    pandas frame: :func:`features.wire_frame` with every number a float (a count with gaps keeps one dtype).
    """
    frame = features_lib.wire_frame(tasks)
    return frame.select(
        pl.col(name).cast(pl.Float64) if frame.schema[name].is_numeric() else pl.col(name).cast(pl.String)
        for name in frame.columns
    ).to_pandas()


def input_records(model_input: Any) -> list[Any]:
    """Records from what a user passes: a pandas or polars frame (extra columns ignored), a list of
    dicts or one dict (every field checked). Anything else raises TypeError.
    """
    if isinstance(model_input, pl.DataFrame):
        return model_input.select(
            [c for c in model_input.columns if c in features_lib.INPUT_COLUMNS]
        ).to_dicts()
    if isinstance(model_input, pd.DataFrame):
        return _records(model_input)
    if isinstance(model_input, dict):
        return [model_input]
    if isinstance(model_input, list):
        return model_input
    raise TypeError(
        "a task model expects task records: a pandas or polars DataFrame (e.g. rows of clean.tasks), "
        f"a list of dicts or one dict, got {type(model_input).__name__}"
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain-Python dicts of the model's input fields; NaN/NaT/None all become None (unknown)."""
    keep = [c for c in frame.columns if c in features_lib.INPUT_COLUMNS]
    rows = frame[keep].astype(object).where(frame[keep].notna(), None).to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


class TaskModel(mlflow.pyfunc.PythonModel):
    """A task model as MLflow serves it: LightGBM booster + feature code + History snapshot."""

    def __init__(
        self,
        *,
        spec_name: str,
        kind: str,
        model_string: str,
        features: tuple[str, ...],
        category_levels: dict[str, list[str]],
        history_bytes: bytes,
        log_target: bool,
    ) -> None:
        self.spec_name = spec_name
        self.kind = kind
        self.model_string = model_string
        self.features = tuple(features)
        self.category_levels = {k: list(v) for k, v in category_levels.items()}
        self.history_bytes = history_bytes
        self.log_target = log_target
        self._booster = None
        self._history = None

    @classmethod
    def from_trained(cls, trained: training.TrainedModel, history: features_lib.History) -> TaskModel:
        return cls(
            spec_name=trained.spec_name,
            kind=trained.kind,
            model_string=trained.model_string,
            features=trained.features,
            category_levels=trained.category_levels,
            history_bytes=history.to_bytes(),
            log_target=trained.log_target,
        )

    def __getstate__(self) -> dict[str, Any]:
        # The booster and History are rebuilt from their serialized forms after loading.
        return {k: v for k, v in self.__dict__.items() if k not in ("_booster", "_history")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._booster = None
        self._history = None

    def load_context(self, context: Any) -> None:
        self._ensure_loaded()

    def _ensure_loaded(self) -> None:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model_string)
        if self._history is None:
            self._history = features_lib.History.from_bytes(self.history_bytes)

    @property
    def history(self) -> features_lib.History:
        self._ensure_loaded()
        return self._history

    def predict_features(self, frame: pl.DataFrame) -> np.ndarray:
        """Predictions (original scale) for an already-built feature frame, e.g. a test split."""
        self._ensure_loaded()
        return training.predict_frame(
            self._booster, frame, self.features, self.category_levels, log_target=self.log_target
        )

    def score_records(
        self, records: pd.DataFrame | pl.DataFrame | list[dict[str, Any]] | dict
    ) -> pd.DataFrame:
        """One output row per input record: task_id, prediction, error, warning."""
        self._ensure_loaded()
        rows = input_records(records)
        frame, errors = features_lib.records_to_frame(rows)
        prediction = np.full(len(rows), np.nan)
        warning: list[str | None] = [None] * len(rows)
        if frame.height:
            positions = frame.get_column("record_index").to_numpy()
            prediction[positions] = self.predict_features(features_lib.build_features(frame, self._history))
            for row, messages in features_lib.unknown_categories(frame, self.category_levels).items():
                warning[int(positions[row])] = "; ".join(messages)
        return pd.DataFrame(
            {
                "task_id": [
                    None if not isinstance(r, dict) or r.get("task_id") is None else str(r["task_id"])
                    for r in rows
                ],
                "prediction": prediction,
                "error": [errors.get(i) for i in range(len(rows))],
                "warning": warning,
            },
            columns=list(OUTPUT_COLUMNS),
        )

    # Annotated pandas.DataFrame: the one hint MLflow infers no schema from, so it neither validates the
    # input itself (its column types would refuse clean.tasks rows, see the module docstring) nor warns
    # that predict has no type hints. Polars frames and records are accepted all the same (score_records).
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """MLflow entry point: task records (pandas/polars frame, list of dicts, one dict) -> predictions."""
        return self.score_records(model_input)
