"""The raw layer as of a training's cut-off, on both warehouse kinds (lib/reproduce.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mlops_assets.lib import reproduce, training
from mlops_assets.lib.warehouse import Warehouse

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(ids: list[str], at: datetime) -> pl.DataFrame:
    return pl.DataFrame({"record_hash": ids, "title": [f"task {i}" for i in ids],
                         "ingested_at": [at] * len(ids)}, schema_overrides={"ingested_at": pl.Datetime("us", "UTC")})


def _record(warehouse: Warehouse) -> dict:
    warehouse.append("raw.jira_tasks", _rows(["a", "b"], T0))
    record = reproduce.training_record(warehouse, clean_built_at=T0 + timedelta(hours=1),
                                       train_config=training.TrainConfig(n_trials=3), split_config=None)
    warehouse.append("raw.jira_tasks", _rows(["c"], T0 + timedelta(days=1)))  # lands after the training
    return record


def test_rows_landed_after_the_cut_off_are_left_out(warehouse, tmp_path):
    record = _record(warehouse)
    assert record["raw"]["raw.jira_tasks"]["rows"] == 2
    assert (record["ducklake_snapshot"] is not None) == warehouse.is_lake
    scratch = Warehouse(tmp_path / "scratch.duckdb")
    assert reproduce.rebuild_raw(warehouse, record, scratch) == {"raw.jira_tasks": 2}
    assert sorted(scratch.read_table("raw.jira_tasks")["record_hash"]) == ["a", "b"]


def test_a_changed_raw_row_fails_on_a_file_and_is_read_as_it_was_from_a_ducklake_snapshot(warehouse, tmp_path):
    record = _record(warehouse)
    with warehouse.connect() as con:
        con.execute("UPDATE raw.jira_tasks SET title = 'edited' WHERE record_hash = 'a'")
    scratch = Warehouse(tmp_path / "scratch.duckdb")
    if warehouse.is_lake:  # the catalog keeps the snapshot the training saw
        reproduce.rebuild_raw(warehouse, record, scratch)
        assert sorted(scratch.read_table("raw.jira_tasks")["title"]) == ["task a", "task b"]
        return
    with pytest.raises(reproduce.ReproductionError, match=r"raw\.jira_tasks: same 2 rows but their content changed"):
        reproduce.rebuild_raw(warehouse, record, scratch)


def test_the_recorded_train_config_runs_exactly_the_trials_the_training_ran():
    record = {"train_config": {**training.TrainConfig(n_trials=30, timeout_s=5).__dict__, "learning_rate": [0.05, 0.1],
                               "n_trials_run": 7}}
    config = reproduce.train_config(record)
    assert config.n_trials == 7 and config.timeout_s == reproduce.UNBOUNDED_TIMEOUT_S
    assert config.learning_rate == (0.05, 0.1)


def test_code_differences_name_the_commit_and_each_library():
    record = {"git_commit": "aaa", "git_dirty": False, "libraries": {"lightgbm": "4.5.0", "polars": "1.0"}}
    now = {"git_commit": "bbb", "git_dirty": False, "libraries": {"lightgbm": "4.6.0", "polars": "1.0"}}
    assert reproduce.code_differences(record, now) == ["code commit aaa recorded, bbb running",
                                                       "lightgbm 4.5.0 recorded, 4.6.0 running"]
    assert reproduce.code_differences(record, {**record}) == []
