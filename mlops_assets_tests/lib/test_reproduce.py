"""The raw layer as of a training's cut-off, on both warehouse kinds (lib/reproduce.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mlops_assets.lib import reproduce, training
from mlops_assets.lib.warehouse import Warehouse

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(ids: list[str], at: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {"record_hash": ids, "title": [f"task {i}" for i in ids], "ingested_at": [at] * len(ids)},
        schema_overrides={"ingested_at": pl.Datetime("us", "UTC")},
    )


def _record(warehouse: Warehouse) -> dict:
    warehouse.append("raw.jira_tasks", _rows(["a", "b"], T0))
    record = reproduce.training_record(
        warehouse,
        clean_built_at=T0 + timedelta(hours=1),
        train_config=training.TrainConfig(n_trials=3),
        split_config=None,
    )
    warehouse.append("raw.jira_tasks", _rows(["c"], T0 + timedelta(days=1)))  # lands after the training
    return record


def test_rows_landed_after_the_cut_off_are_left_out(warehouse, tmp_path):
    record = _record(warehouse)
    assert record["raw"]["raw.jira_tasks"]["rows"] == 2
    assert (record["ducklake_snapshot"] is not None) == warehouse.is_lake
    scratch = Warehouse(tmp_path / "scratch.duckdb")
    assert reproduce.rebuild_raw(warehouse, record, scratch) == {"raw.jira_tasks": 2}
    assert sorted(scratch.read_table("raw.jira_tasks")["record_hash"]) == ["a", "b"]


def test_a_changed_raw_row_fails_on_a_file_and_is_read_as_it_was_from_a_ducklake_snapshot(
    warehouse, tmp_path
):
    record = _record(warehouse)
    with warehouse.connect() as con:
        con.execute("UPDATE raw.jira_tasks SET title = 'edited' WHERE record_hash = 'a'")
    scratch = Warehouse(tmp_path / "scratch.duckdb")
    if warehouse.is_lake:  # the catalog keeps the snapshot the training saw
        reproduce.rebuild_raw(warehouse, record, scratch)
        assert sorted(scratch.read_table("raw.jira_tasks")["title"]) == ["task a", "task b"]
        return
    with pytest.raises(
        reproduce.ReproductionError, match=r"raw\.jira_tasks: same 2 rows but their content changed"
    ):
        reproduce.rebuild_raw(warehouse, record, scratch)


def test_the_recorded_train_config_runs_exactly_the_trials_the_training_ran():
    record = {
        "train_config": {
            **training.TrainConfig(n_trials=30, timeout_s=5).__dict__,
            "learning_rate": [0.05, 0.1],
            "n_trials_run": 7,
        }
    }
    config = reproduce.train_config(record)
    assert config.n_trials == 7 and config.timeout_s == reproduce.UNBOUNDED_TIMEOUT_S
    assert config.learning_rate == (0.05, 0.1)
    assert config.sorted_metric_every == training.TrainConfig.sorted_metric_every


def test_a_train_config_recorded_before_a_setting_existed_runs_as_the_training_did_then():
    """Each setting added since the first release has the value the code had before it, not today's default."""
    recorded = {
        k: v
        for k, v in training.TrainConfig(n_trials=5).__dict__.items()
        if k not in ("tune_rows", "refit_grow_from", "refit_threads", "parallel_trials", "prune_every",
                     "sorted_metric_every")
    }  # fmt: skip
    config = reproduce.train_config({"train_config": recorded})
    assert (config.tune_rows, config.refit_grow_from, config.refit_threads) == (0, 0.0, 1)
    assert (config.parallel_trials, config.prune_every, config.sorted_metric_every) == (1, 0, 1)


def test_code_differences_name_the_commit_and_each_library():
    record = {"git_commit": "aaa", "git_dirty": False, "libraries": {"lightgbm": "4.5.0", "polars": "1.0"}}
    now = {"git_commit": "bbb", "git_dirty": False, "libraries": {"lightgbm": "4.6.0", "polars": "1.0"}}
    assert reproduce.code_differences(record, now) == [
        "code commit aaa recorded, bbb running",
        "lightgbm 4.5.0 recorded, 4.6.0 running",
    ]
    assert reproduce.code_differences(record, {**record}) == []


def test_a_model_trained_on_a_ducklake_is_reproduced_from_its_snapshot_after_new_and_changed_raw_rows(
    tmp_path, mlflow_uri
):
    """The cluster profile's warehouse, end to end: the pipeline's functions, MLflow, new data, an edited raw row."""
    pytest.importorskip("duckdb_extension_ducklake")
    from mlops_assets.lib import cleaning, ingestion, registry, synthetic

    lake = Warehouse(f"ducklake:{tmp_path / 'catalog.ducklake'}", data_path=tmp_path / "lake")
    landing = tmp_path / "landing"
    synthetic.generate(landing, n_tasks=1000, seed=5)
    for source in ingestion.SOURCES:
        ingestion.ingest_source(lake, landing, source)
    spec, config = (
        training.get_spec("late_risk"),
        training.TrainConfig(n_trials=2, cv_folds=0, num_boost_round=300),
    )
    record = reproduce.training_record(
        lake, clean_built_at=datetime.now(UTC), train_config=config, split_config=None
    )
    parts = reproduce.rebuild_splits(
        spec, lake, record
    )  # what the assets compute, here straight from the lake
    trained = training.train_model(spec, parts, config)
    tasks = cleaning.build_clean(lake, datetime.fromisoformat(record["clean_built_at"]))[0]["clean.tasks"]
    run_id = registry.log_training_run(spec, trained, parts, tasks=tasks, tracking_uri=mlflow_uri)
    reproduce.log_record(registry.get_client(mlflow_uri), run_id, record, n_trials_run=trained.n_trials)

    synthetic.generate(landing, n_tasks=300, seed=5, drift=True, main_tasks=1000)
    for source in ingestion.SOURCES:
        ingestion.ingest_source(lake, landing, source)
    with lake.connect() as con:  # an edit of a row the model saw: the snapshot still has the original
        con.execute(
            "UPDATE raw.github_tasks SET title = 'edited' WHERE record_hash = (SELECT min(record_hash) "
            "FROM raw.github_tasks WHERE ingested_at <= ?)",
            [record["raw"]["raw.github_tasks"]["max_ingested_at"]],
        )
    result = reproduce.reproduce(run_id, warehouse=lake, tracking_uri=mlflow_uri)
    assert result.ok and result.identical_predictions and result.identical_model, result.summary()
    assert result.raw_rows["raw.jira_tasks"] == record["raw"]["raw.jira_tasks"]["rows"]
