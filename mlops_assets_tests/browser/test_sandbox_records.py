"""What the browser tests' materialized sandbox records, read back from its instance, MLflow store and warehouse:

- every number an asset or check shows in the UI is readable (floats at 4 significant digits, bare or
  inside JSON), while MLflow keeps full precision;
- the package version is on every MLflow run and every row of the scores table.
"""

from __future__ import annotations

import math

import dagster as dg
import pytest

import mlops_assets
from mlops_assets.devtools import screenshots
from mlops_assets.lib.readable import readable_values

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not screenshots.CHROMIUM.exists(),
        reason=f"{screenshots.CHROMIUM} is absent: `apt-get install -y chromium` (CI installs it)",
    ),
]


def shown_metadata(instance) -> list[tuple[str, str, object]]:
    """(where, key, value) of every materialization's and check evaluation's metadata on the instance."""
    found = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                where, metadata = (
                    event.asset_key.to_user_string(),
                    event.event_specific_data.materialization.metadata,
                )
            elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                data = event.event_specific_data
                where, metadata = f"{data.asset_key.to_user_string()}:{data.check_name}", data.metadata
            else:
                continue
            found += [(where, key, getattr(value, "value", value)) for key, value in metadata.items()]
    return found


def too_precise(value) -> bool:
    """Whether a metadata value holds a float with more than 4 significant digits (nan and inf do not)."""
    if isinstance(value, float):
        return math.isfinite(value) and readable_values(value) != value
    if isinstance(value, dict):
        return any(too_precise(v) for v in value.values())
    if isinstance(value, list):
        return any(too_precise(v) for v in value)
    return False


def test_every_metadata_float_has_at_most_four_significant_digits(sandbox):
    with sandbox.instance() as instance:
        shown = shown_metadata(instance)
    floats = {(w, k) for w, k, v in shown if isinstance(v, float)}
    # metrics, drift shares, check values: from training, evaluation, monitoring and serving
    assert {w.split(":")[0] for w, _ in floats} >= {
        "models/late_risk_candidate",
        "reporting/late_risk_evaluation",
        "monitoring/data_drift",
        "serving/task_risk_scores",
    }
    too_long = [(w, k, v) for w, k, v in shown if too_precise(v)]
    assert not too_long, f"metadata shown with more than 4 significant digits: {too_long[:10]}"


def test_mlflow_keeps_full_precision_and_every_run_records_the_package_version(sandbox):
    from mlflow import MlflowClient

    runs = MlflowClient(sandbox.mlflow_uri).search_runs([screenshots.experiment_id(sandbox)])
    assert runs
    assert {r.data.tags.get("mlops_assets_version") for r in runs} == {mlops_assets.__version__}
    values = [v for r in runs for v in r.data.metrics.values()]
    assert any(too_precise(v) for v in values), "MLflow metrics should keep their full precision"


def test_every_score_row_records_the_package_version(sandbox):
    from mlops_assets.lib.warehouse import Warehouse

    scores = Warehouse(sandbox.warehouse).read_table("serving.task_risk_scores")
    assert scores.height > 0
    assert set(scores["package_version"]) == {mlops_assets.__version__}
    # the table keeps full precision: only what the UI shows is rounded
    assert any(too_precise(v) for v in scores["late_risk"].drop_nulls().to_list())
