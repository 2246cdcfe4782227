"""The retrain job runs every model's candidate -> evaluation -> gate; the gate's margin is validated."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets.definitions import defs
from mlops_assets.defs.training.config import GateConfig
from mlops_assets.lib import gate, training
from mlops_assets_tests.conftest import project_resources


def test_one_retrain_job_runs_candidate_evaluation_and_gate_of_every_model_then_scores():
    job = defs.resolve_job_def("retrain_job")
    keys = job.asset_layer.executable_asset_keys
    graph = defs.resolve_asset_graph()
    for name in training.MODEL_SPECS:
        chain = [
            ["model_input", f"{name}_splits"],
            ["models", f"{name}_candidate"],
            ["reporting", f"{name}_evaluation"],
            ["models", f"{name}_champion"],
        ]
        for key in chain:
            assert dg.AssetKey(key) in keys, key
        for upstream, downstream in zip(chain, chain[1:], strict=False):  # the run orders them
            assert dg.AssetKey(upstream) in graph.get(dg.AssetKey(downstream)).parent_keys
    assert dg.AssetKey(["serving", "task_risk_scores"]) in keys
    assert "registered" in job.description
    assert "train_job" not in {j.name for j in defs.resolve_all_job_defs()}  # one retraining job, not two


def test_evaluation_assets_sit_in_the_evaluation_group():
    graph = defs.resolve_asset_graph()
    for name in training.MODEL_SPECS:
        assert graph.get(dg.AssetKey(["reporting", f"{name}_evaluation"])).group_name == "evaluation"
        assert graph.get(dg.AssetKey(["models", f"{name}_candidate"])).group_name == "training"


@pytest.mark.parametrize("margin", [-0.5, 1.5, float("nan")])
def test_gate_margin_out_of_range_is_refused_with_the_range(margin):
    with pytest.raises(ValueError, match="must be between 0 and 1"):
        GateConfig(margin=margin)
    with pytest.raises(ValueError, match="a negative margin would promote a worse model"):
        gate.check_margin(margin)


@pytest.mark.parametrize("margin", [None, 0.0, 0.01, 1.0])
def test_gate_margin_in_range_is_kept(margin):
    assert GateConfig(margin=margin).margin == margin


def test_a_run_with_a_negative_margin_fails_before_the_gate_with_the_message(tmp_path):
    champion = dg.AssetKey(["models", "late_risk_champion"])
    result = dg.materialize(
        [
            a for a in defs.assets if champion in getattr(a, "keys", ())
        ],  # the gate alone: no other asset's resources needed
        resources=project_resources(tmp_path / "wh.duckdb", tmp_path / "landing"),
        run_config={"ops": {"models__late_risk_champion": {"config": {"margin": -0.5}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.to_string()
    assert "gate margin -0.5 is out of range" in message and "between 0 and 1" in message
