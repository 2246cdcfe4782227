"""The model graph materialized in-process on a generated sample with a temporary MLflow store."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from mlops_assets import __version__
from mlops_assets.lib import registry, synthetic
from mlops_assets.lib.warehouse import Warehouse

MODELS = ("late_risk", "cycle_time")
FAST = {"n_trials": 3, "timeout_s": 60, "seed": 1, "cv_folds": 2}


def _run_config(**gate) -> dg.RunConfig:
    ops = {}
    for m in MODELS:
        ops[f"models__{m}_candidate"] = {"config": FAST}
        if gate:
            ops[f"models__{m}_champion"] = {"config": gate}
    return dg.RunConfig(ops=ops)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, empty_mlflow_store):
    """One full materialization of every asset on 2,000 generated tasks (shared by the tests below)."""
    import shutil

    root = tmp_path_factory.mktemp("lifecycle")
    (root / "mlflow").mkdir()
    shutil.copy(empty_mlflow_store, root / "mlflow" / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLOPS_MLFLOW_ARTIFACTS", str(root / "mlflow" / "artifacts"))
    synthetic.generate(root / "landing", n_tasks=2000, seed=5)
    selection = dg.AssetSelection.groups(
        "ingestion", "cleaning", "features", "training", "evaluation", "serving"
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        list(__import__("mlops_assets.definitions", fromlist=["defs"]).defs.assets),
        selection=selection,
        instance=instance,
        resources=__import__("mlops_assets.definitions", fromlist=["build_resources"]).build_resources(
            str(root / "wh.duckdb"), str(root / "landing"), str(root / "reports")
        ),
        run_config=_run_config(),
    )
    yield {
        "root": root,
        "uri": uri,
        "result": result,
        "wh": Warehouse(root / "wh.duckdb"),
        "instance": instance,
    }
    mp.undo()


def test_every_model_is_trained_tracked_evaluated_and_gated(lifecycle):
    assert lifecycle["result"].success
    # the run includes the gate: no step warns that its candidate will not be gated
    messages = [entry.user_message for entry in lifecycle["instance"].all_logs(lifecycle["result"].run_id)]
    assert any("trial 3/3" in message for message in messages)
    assert not [message for message in messages if "not evaluated, gated" in message]
    client = registry.get_client(lifecycle["uri"])
    for m in MODELS:
        champion = client.get_model_version_by_alias(m, "champion")
        run = client.get_run(champion.run_id)
        for key in (
            ("test_roc_auc", "test_pr_auc", "test_brier", "val_roc_auc", "cv_roc_auc_mean")
            if m == "late_risk"
            else ("test_mae", "test_baseline_mae")
        ):
            assert key in run.data.metrics, (m, key)
        assert run.data.tags["dagster_run_id"] == lifecycle["result"].run_id
        assert champion.tags["gate.decision"] == "promoted"
        # The three splits are the run's dataset inputs, each with its content hash and row count.
        inputs = {i.dataset.name: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {f"{m}_train", f"{m}_validation", f"{m}_test"}, m
        for split in ("train", "validation", "test"):
            assert inputs[f"{m}_{split}"].digest == run.data.params[f"{split}_hash"]
            assert run.data.tags[f"split_hash.{split}"].startswith(run.data.params[f"{split}_hash"])
            assert '"num_rows"' in inputs[f"{m}_{split}"].profile
    wh = lifecycle["wh"]
    metrics = dict(wh.read_table("reporting.late_risk_evaluation").select("metric", "value").iter_rows())
    assert metrics["test_roc_auc"] > 0.6
    assert wh.read_table("reporting.late_risk_calibration").height > 0
    slices = wh.read_table("reporting.cycle_time_slices")
    assert set(slices["slice_column"].unique()) >= {"source", "project"}
    reports = list((lifecycle["root"] / "reports").rglob("evaluation.html"))
    assert len(reports) == 2
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in lifecycle["result"].get_asset_check_evaluations()
    }
    assert checks[("models/late_risk_candidate", "beats_naive_baseline")]
    assert checks[("models/cycle_time_candidate", "beats_naive_baseline")]
    for m in MODELS:  # the gate leaves the drift reference on the champion (issue 23)
        assert checks[(f"models/{m}_champion", "reference_matches_champion")], m
        reference = wh.read_table(f"models.{m}_reference")
        assert set(reference["champion_version"]) == {
            str(client.get_model_version_by_alias(m, "champion").version)
        }


def test_splits_are_time_ordered_without_overlap(lifecycle):
    frame = lifecycle["wh"].read_table("model_input.late_risk_splits")
    bounds = {
        s: (g["created_at"].min(), g["created_at"].max())
        for s, g in frame.group_by("split", maintain_order=True)
        for s in [s[0]]
    }
    assert bounds["train"][1] < bounds["validation"][0] <= bounds["validation"][1] < bounds["test"][0]
    # snapshot rows: a task at several points, all on one side; none predicted after the next split starts
    assert frame.group_by("task_id").agg(pl.col("split").n_unique())["split"].max() == 1
    assert frame["task_id"].is_duplicated().any() and set(frame["point"]) >= {"creation", "midway"}
    train = frame.filter(pl.col("split") == "train")
    assert train["predicted_at"].max() < bounds["validation"][0]


def test_regating_the_same_candidate_registers_nothing_new(lifecycle, tmp_path):
    from mlops_assets.definitions import build_resources, defs

    root = lifecycle["root"]
    before = len(registry.get_client(lifecycle["uri"]).search_model_versions("name='late_risk'"))
    result = dg.materialize(
        list(defs.assets),
        selection=["models/late_risk_champion"],
        resources=build_resources(str(root / "wh.duckdb"), str(root / "landing"), str(root / "reports")),
    )
    assert result.success
    assert len(registry.get_client(lifecycle["uri"]).search_model_versions("name='late_risk'")) == before


def test_batch_scores_cover_every_open_task_with_versions_and_match_the_served_path(lifecycle):
    from mlops_assets.lib import features, scoring

    wh = lifecycle["wh"]
    scores = wh.read_table("serving.task_risk_scores")
    tasks = wh.read_table("clean.tasks")
    open_ids = set(tasks.filter(pl.col("resolved_at").is_null())["task_id"])
    assert set(scores["task_id"]) == open_ids
    client = registry.get_client(lifecycle["uri"])
    assert set(scores["late_risk_version"]) == {
        str(client.get_model_version_by_alias("late_risk", "champion").version)
    }
    assert set(scores["package_version"]) == {__version__}  # the code that scored each row (issue 17)
    with_deadline = scores.filter(pl.col("late_risk").is_not_null())
    assert with_deadline.height > 0
    assert with_deadline["risk_band"].is_in(["low", "medium", "high"]).all()
    # Every task with a deadline gets its reasons (exact SHAP, compiled: issue 5), at risk or not.
    assert with_deadline["reason_1"].null_count() == 0
    assert (
        scores.filter(pl.col("late_risk").is_null())["reason_1"].null_count()
        == scores.height - with_deadline.height
    )
    # The online path (raw records + the same champions) gives the same numbers.
    champions = scoring.load_champions(client)
    sample = tasks.filter(pl.col("task_id").is_in(with_deadline["task_id"].head(25).to_list()))
    online = scoring.score_tasks(sample, champions["late_risk"], champions["cycle_time"],
                                 features.History.from_tasks(tasks), scores["scored_at"][0],
                                 events=wh.read_table("clean.task_events"))  # fmt: skip
    merged = online.join(scores, on="task_id", suffix="_batch")
    assert merged.height == 25
    assert (merged["late_risk"] - merged["late_risk_batch"]).abs().max() < 1e-9


def test_scores_are_as_of_the_data_end_and_exported_for_project_managers(lifecycle):
    """Issue 18 items 5-6: the sample is scored as of its own end; CSV, Parquet and a page per project, linked."""
    from mlops_assets.lib import exports
    from mlops_assets.lib.gate import data_as_of

    wh, root = lifecycle["wh"], lifecycle["root"]
    scores, tasks = wh.read_table("serving.task_risk_scores"), wh.read_table("clean.tasks")
    as_of = data_as_of(tasks)
    assert set(scores["scored_at"]) == {as_of}  # the data's end, not the wall clock
    # as of the wall clock (a month or more after the sample's end) every open task would read overdue
    recent = scores.filter(~pl.col("completion_overdue"))
    assert recent.height > 0 and (recent["predicted_completion_at"] > as_of).all()
    assert (scores.filter(pl.col("completion_overdue"))["predicted_completion_at"] == as_of).all()
    assert scores["risk_band"].null_count() == 0 and "no deadline" in set(scores["risk_band"])
    [event] = [
        e
        for e in lifecycle["result"].get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["serving", "task_risk_scores"])
    ]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["as_of"] == as_of.isoformat(timespec="seconds")
    assert meta["pm_csv"] == "http://127.0.0.1:8000/exports/task_risk_scores.csv"  # served by `make serve`
    assert meta["pm_projects"] == "http://127.0.0.1:8000/exports/projects/index.html"
    out = root / "exports"  # beside the run's reports folder
    assert meta["pm_csv_path"] == str((out / exports.CSV_NAME).resolve())
    csv = pl.read_csv(out / exports.CSV_NAME, infer_schema_length=0)
    assert csv.columns == list(exports.PM_COLUMNS) and csv.height == scores.height
    assert csv["title"].null_count() < csv.height and set(csv["project"]) == set(
        tasks.filter(pl.col("task_id").is_in(scores["task_id"].to_list()))["project"]
    )
    parquet = pl.read_parquet(out / exports.PARQUET_NAME)
    assert parquet.height == scores.height and parquet["late_risk"].dtype == pl.Float64
    pages = {p.name for p in (out / exports.PROJECTS_DIR).glob("*.html")}
    assert pages == {exports.INDEX_NAME} | {exports.project_file(p) for p in set(parquet["project"])}


def test_evaluation_reports_are_linked_where_a_browser_opens_them(lifecycle):
    """Issue 18 item 5: the UI links the evaluation page as the URL `make serve` serves, not only a file path."""
    for event in lifecycle["result"].get_asset_materialization_events():
        if event.asset_key.path[0] != "reporting":
            continue
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        model = event.asset_key.path[1].removesuffix("_evaluation")
        assert meta["report_url"] == (
            f"http://127.0.0.1:8000/reports/{model}/{meta['mlflow_run_id']}/evaluation.html"
        )
        assert meta["report"].endswith(f"{model}/{meta['mlflow_run_id']}/evaluation.html")
