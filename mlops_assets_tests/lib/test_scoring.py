"""score_tasks: the numbers of the training code path, bands, reasons, completion dates and warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import asof, explain, features, history_index, scoring, splits, training
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.serving.sandbox import clean_tasks

CONFIG = training.TrainConfig(n_trials=1, cv_folds=0, num_boost_round=80, early_stopping_rounds=20)
NOW = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def tasks() -> pl.DataFrame:
    return clean_tasks(1200, seed=11)


@pytest.fixture(scope="module")
def models(tasks) -> dict[str, scoring.ServedModel]:
    history = features.History.from_tasks(tasks)
    feature_frame = features.build_features(tasks, history)
    out = {}
    for name in scoring.MODEL_NAMES:
        spec = training.get_spec(name)
        frame = training.model_input(spec, tasks, feature_frame, history.as_of)
        out[name] = scoring.ServedModel.from_trained(
            training.train_model(spec, splits.time_split(frame), CONFIG), "7"
        )
    return out


@pytest.fixture(scope="module")
def scored(tasks, models) -> pl.DataFrame:
    return scoring.score_open_tasks(tasks, models["late_risk"], models["cycle_time"], NOW)


def test_one_row_per_open_task_with_the_documented_columns(tasks, scored):
    open_ids = scoring.open_tasks(tasks)["task_id"].to_list()
    assert scored.columns == scoring.SCORE_COLUMNS and scored.schema == pl.Schema(scoring.SCORE_SCHEMA)
    assert scored["task_id"].to_list() == open_ids and 0 < len(open_ids) < tasks.height
    assert set(scored["late_risk_version"]) == {"7"} and set(scored["scored_at"]) == {NOW}


def test_predictions_equal_the_training_code_path(tasks, models, scored):
    # the batch scores each open task as of now (its age, status ... at NOW): the training code at NOW
    frame = features.build_features(scoring.open_tasks(tasks), features.History.from_tasks(tasks), at=NOW)
    for name, column in (("late_risk", "late_risk"), ("cycle_time", "predicted_cycle_days")):
        model = models[name]
        expected = training.predict_frame(model.booster, frame, model.features, model.category_levels,
                                          log_target=model.log_target)  # fmt: skip
        got = scored[column].to_numpy()
        if name == "late_risk":
            with_deadline = frame["has_deadline"].to_numpy() > 0
            assert np.array_equal(got[with_deadline], expected[with_deadline])
        else:
            assert np.array_equal(got, expected)


def test_no_deadline_means_no_late_risk_and_says_so(tasks, scored):
    no_deadline = (
        scoring.open_tasks(tasks)
        .select(pl.col("deadline_at").is_null() & pl.col("due_at").is_null())
        .to_series()
    )
    assert no_deadline.any() and (~no_deadline).any()
    rows = scored.filter(no_deadline)
    assert rows["late_risk"].null_count() == rows.height
    assert set(rows["risk_band"]) == {scoring.NO_DEADLINE_BAND}  # a band of its own, never a missing value
    assert rows["reason_1"].null_count() == rows.height
    assert all(scoring.NO_DEADLINE in w for w in rows["warnings"].to_list())
    assert scored.filter(~no_deadline)["late_risk"].null_count() == 0


@pytest.mark.parametrize(
    ("p", "band"),
    [(0.0, "low"), (0.2499, "low"), (0.25, "medium"), (0.4999, "medium"), (0.5, "high"), (1.0, "high")],
)
def test_risk_band_cut_offs(p, band):
    assert scoring.risk_band(p) == band


def _expected_reasons(tasks, model) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deadline rows' late_risk, their reasons by evaluation.top_reasons_table on the training matrix)."""
    frame = features.build_features(scoring.open_tasks(tasks), features.History.from_tasks(tasks), at=NOW)
    frame = frame.filter(pl.col("has_deadline") > 0)
    matrix = training.to_matrix(frame, model.features, model.category_levels)
    risk = training.predict_frame(
        model.booster, frame, model.features, model.category_levels, log_target=False
    )
    return risk, explain.top_reasons_table(explain.shap_contributions(model.booster, matrix), matrix)


def test_reasons_are_the_shap_reasons_of_evaluation(tasks, models):
    everything = scoring.score_tasks(scoring.open_tasks(tasks), models["late_risk"], models["cycle_time"],
                                     features.History.from_tasks(tasks), NOW, explain="all")  # fmt: skip
    _, expected = _expected_reasons(tasks, models["late_risk"])
    got = everything.filter(pl.col("late_risk").is_not_null()).select("reason_1", "reason_2", "reason_3")
    assert got.equals(expected)
    assert got["reason_1"].str.contains("the risk").all()


def test_the_batch_table_explains_every_task_with_a_deadline(tasks, models, scored):
    _, expected = _expected_reasons(tasks, models["late_risk"])
    got = scored.filter(pl.col("late_risk").is_not_null()).select("reason_1", "reason_2", "reason_3")
    assert got.equals(expected) and got["reason_1"].null_count() == 0
    assert not any(scoring.REASONS_CAPPED in w for ws in scored["warnings"].to_list() for w in ws)


def test_at_risk_explains_the_medium_and_high_risk_tasks_only(tasks, models, scored):
    risk, expected = _expected_reasons(tasks, models["late_risk"])
    at_risk = risk >= scoring.MEDIUM_FROM
    assert 0 < at_risk.sum() < len(risk)  # both kinds present in the sample
    some = scoring.score_open_tasks(tasks, models["late_risk"], models["cycle_time"], NOW, explain="at_risk")
    got = some.filter(pl.col("late_risk").is_not_null()).select("reason_1", "reason_2", "reason_3")
    assert got.filter(pl.Series(at_risk)).equals(expected.filter(pl.Series(at_risk)))
    assert got.filter(pl.Series(~at_risk)).null_count().row(0) == (int((~at_risk).sum()),) * 3
    assert some.drop("reason_1", "reason_2", "reason_3").equals(
        scored.drop("reason_1", "reason_2", "reason_3")
    )


def test_a_cap_explains_the_riskiest_tasks_and_says_which_were_skipped(tasks, models, scored):
    capped = scoring.score_open_tasks(tasks, models["late_risk"], models["cycle_time"], NOW, max_explained=3)
    explained = capped.filter(pl.col("reason_1").is_not_null())
    skipped = capped.filter(
        pl.col("warnings").list.eval(pl.element().str.contains("not computed")).list.any()
    )
    n_deadline = scored.filter(pl.col("late_risk").is_not_null()).height
    assert explained.height == 3 and skipped.height == n_deadline - 3
    assert explained["late_risk"].min() >= skipped["late_risk"].max()
    expected = scored.filter(pl.col("task_id").is_in(explained["task_id"].implode()))
    assert explained.select("reason_1", "reason_2", "reason_3").equals(
        expected.select("reason_1", "reason_2", "reason_3")
    )
    assert capped.drop("warnings", "reason_1", "reason_2", "reason_3").equals(
        scored.drop("warnings", "reason_1", "reason_2", "reason_3")
    )
    # the skipped rows keep their other warnings, the cap note last
    assert skipped["warnings"].list.last().str.starts_with(scoring.REASONS_CAPPED).all()


def test_large_runs_overlap_the_two_models_with_the_same_table(tasks, models, scored, monkeypatch):
    monkeypatch.setattr(scoring, "_OVERLAP_ROWS", 1)  # the path a run of many rows takes
    assert scoring.score_open_tasks(tasks, models["late_risk"], models["cycle_time"], NOW).equals(scored)


def test_compiled_champions_give_the_same_table(tasks, models, scored, tmp_path):
    compiled = {
        name: model.compiled(shap=name == "late_risk", cache_dir=tmp_path) for name, model in models.items()
    }
    assert compiled["late_risk"].shap is not None and compiled["cycle_time"].forest is not None
    again = scoring.score_open_tasks(tasks, compiled["late_risk"], compiled["cycle_time"], NOW)
    assert again.equals(scored)  # bit-identical probabilities and days, the same reasons
    reloaded = models["late_risk"].compiled(shap=True, cache_dir=tmp_path)  # from the cache this time
    assert reloaded.forest.cache_file == compiled["late_risk"].forest.cache_file


def test_a_big_new_forest_is_left_to_lightgbm_until_it_is_compiled_once(tasks, models, scored, tmp_path):
    """A one-off batch does not pay a long compile for a big new champion; same table either way."""
    from mlops_assets.lib import fast_trees

    model = models["cycle_time"]
    leaves = fast_trees.forest_leaves(model.booster)
    assert leaves > 10
    plain = model.compiled(cache_dir=tmp_path, max_compile_leaves=leaves - 1)
    assert plain.forest is None and not fast_trees.forest_is_cached(model.booster.model_to_string(), tmp_path)
    table = scoring.score_open_tasks(tasks, models["late_risk"], plain, NOW)
    assert table.equals(scored)  # bit-identical: LightGBM and the compiled forest give the same days
    assert (
        model.compiled(cache_dir=tmp_path, max_compile_leaves=leaves).forest is not None
    )  # at the limit: compiled
    # once in the cache (the online service compiled it), even a low limit loads it: milliseconds
    assert model.compiled(cache_dir=tmp_path, max_compile_leaves=1).forest is not None


def test_a_small_batch_scores_with_lightgbm_and_uses_what_the_cache_already_holds(
    tasks, models, scored, tmp_path
):
    """Compiling costs more than it saves below ~500k rows: a one-off batch that small does not compile,
    but loads what the online service (or a big batch) compiled before; the table is the same either way.
    """
    from mlops_assets.lib import fast_trees

    rows = scoring.open_tasks(tasks).height
    assert rows < fast_trees.BATCH_SHAP_COMPILE_MIN_ROWS <= fast_trees.BATCH_COMPILE_MIN_ROWS
    late, cycle = (
        models[n].compiled(shap=n == "late_risk", cache_dir=tmp_path, batch_rows=rows)
        for n in ("late_risk", "cycle_time")
    )
    assert late.forest is None and late.shap is None and cycle.forest is None
    assert not any(tmp_path.iterdir())  # nothing was compiled
    assert scoring.score_open_tasks(tasks, late, cycle, NOW).equals(scored)
    models["late_risk"].compiled(shap=True, cache_dir=tmp_path)  # e.g. the online service
    cached = models["late_risk"].compiled(shap=True, cache_dir=tmp_path, batch_rows=rows)
    assert cached.forest is not None and cached.shap is not None
    big = models["cycle_time"].compiled(cache_dir=tmp_path, batch_rows=fast_trees.BATCH_COMPILE_MIN_ROWS)
    assert big.forest is not None  # a batch that big repays the compiling


def test_score_rows_equals_the_frame_row_for_row(tasks, models):
    history = features.History.from_tasks(tasks)
    records, errors = features.records_to_frame(scoring.task_records(scoring.open_tasks(tasks)))
    assert errors == {}
    columns = history_index.feature_columns(records, history_index.HistoryIndex.from_history(history))
    rows, unknown = scoring.score_rows(columns, models["late_risk"], models["cycle_time"], NOW)
    frame, frame_unknown = scoring.score_features(features.build_features(records, history), models["late_risk"],
                                                  models["cycle_time"], NOW)  # fmt: skip
    assert unknown == frame_unknown
    assert rows == list(frame.iter_rows(named=True))
    assert pl.DataFrame(rows, schema=scoring.SCORE_SCHEMA).equals(frame)


def test_completion_date_is_created_plus_days_but_never_before_now(tasks, scored):
    created = scoring.open_tasks(tasks)["created_at"].to_list()
    for row, created_at in zip(scored.iter_rows(named=True), created, strict=True):
        due = created_at + timedelta(microseconds=round(row["predicted_cycle_days"] * 86_400e6))
        assert row["predicted_completion_at"] == max(due, NOW)
        assert row["completion_overdue"] == (due < NOW)
    assert scored["completion_overdue"].any()


def test_unknown_category_is_scored_as_missing_with_a_warning(tasks, models):
    one = scoring.open_tasks(tasks).filter(pl.col("deadline_at").is_not_null()).head(1)
    history = features.History.from_tasks(tasks)
    renamed = scoring.score_tasks(one.with_columns(pl.lit("Spike").alias("type")), models["late_risk"],
                                  models["cycle_time"], history, NOW)  # fmt: skip
    missing = scoring.score_tasks(one.with_columns(pl.lit(None, pl.String).alias("type")), models["late_risk"],
                                  models["cycle_time"], history, NOW)  # fmt: skip
    assert renamed["late_risk"][0] == missing["late_risk"][0]
    warnings = renamed["warnings"][0].to_list()
    assert any("type 'spike' was not seen in training of late_risk v7" in w for w in warnings)


def test_online_records_score_like_clean_rows(tasks, models, scored):
    frame, errors = features.records_to_frame(scoring.task_records(scoring.open_tasks(tasks)))
    assert errors == {}
    online = scoring.score_tasks(
        frame, models["late_risk"], models["cycle_time"], features.History.from_tasks(tasks), NOW
    )
    assert online.equals(scored)


def test_history_from_the_warehouse_does_not_keep_the_file_locked(tasks, tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_tables({"clean.tasks": tasks})
    history = scoring.warehouse_history(warehouse.path)
    assert history.n_tasks == tasks.height and history.as_of == features.History.from_tasks(tasks).as_of
    warehouse.append("clean.tasks", tasks.head(0))  # a writer can open the file right after


def test_missing_warehouse_or_table_says_what_to_run(tmp_path):
    with pytest.raises(scoring.NoHistoryError, match="does not exist yet"):
        scoring.warehouse_history(tmp_path / "absent.duckdb")
    Warehouse(tmp_path / "w.duckdb").replace_tables({"raw.x": pl.DataFrame({"a": [1]})})
    with pytest.raises(scoring.NoHistoryError, match="no clean.tasks table"):
        scoring.warehouse_history(tmp_path / "w.duckdb")


def _events_of(tasks: pl.DataFrame) -> pl.DataFrame:
    """Three events per task: a hand-over, a due date moved out by 9 days, a move into progress."""
    rows = []
    for task_id, created in zip(tasks["task_id"], tasks["created_at"], strict=True):
        rows += [
            {"task_id": task_id, "changed_at": created + timedelta(days=1), "field": "assignee", "from_value": "u_x", "to_value": "u_y"},
            {"task_id": task_id, "changed_at": created + timedelta(days=2), "field": "duedate", "from_value": "2026-01-01", "to_value": "2026-01-10"},
            {"task_id": task_id, "changed_at": created + timedelta(days=3), "field": "status", "from_value": "Open", "to_value": "In Progress"},
        ]  # fmt: skip
    return pl.DataFrame(rows, schema=asof.EVENT_COLUMNS)


def test_the_warehouse_snapshot_holds_the_events_of_open_tasks_and_scores_with_them(tasks, models, tmp_path):
    events = _events_of(tasks)
    warehouse = Warehouse(tmp_path / "w.duckdb")
    warehouse.replace_tables({"clean.tasks": tasks, "clean.task_events": events})
    history = scoring.warehouse_history(warehouse.path)
    open_ids = set(scoring.open_tasks(tasks)["task_id"])
    assert set(history.events.by_task) == open_ids and len(history.events.of(next(iter(open_ids)))) == 3
    looked_up = scoring.score_tasks(
        scoring.open_tasks(tasks), models["late_risk"], models["cycle_time"], history, NOW
    )
    passed = scoring.score_open_tasks(tasks, models["late_risk"], models["cycle_time"], NOW, events=events)
    assert looked_up.equals(passed) and not passed.equals(scoring.score_open_tasks(tasks, models["late_risk"],
                                                                                    models["cycle_time"], NOW))  # fmt: skip
    # the online path, with the same snapshot and time, gives the same rows
    records, errors = features.records_to_frame(scoring.task_records(scoring.open_tasks(tasks)))
    columns = history_index.feature_columns(records, history_index.HistoryIndex.from_history(history), at=NOW)
    rows, _ = scoring.score_rows(columns, models["late_risk"], models["cycle_time"], NOW)
    assert pl.DataFrame(rows, schema=scoring.SCORE_SCHEMA).equals(looked_up)


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [("n_reassignments", 2, "reassigned twice"), ("n_reassignments", 0, "never reassigned"),
     ("deadline_moved_days", 9.2, "deadline moved out by 9 days"), ("deadline_moved_days", -1, "deadline moved in by 1 day"),
     ("days_in_progress", 12.4, "in progress for 12 days"), ("status_stage", 2, "status in review"),
     ("n_reopenings", 1, "reopened once"), ("days_to_deadline", 3, "3 days left to the deadline")],
)  # fmt: skip
def test_reasons_speak_of_what_changed(feature, value, text):
    phrase = explain.FEATURE_PHRASES[feature]
    key = explain._bucket(np.array([value], dtype=float), phrase.kind)[0]  # noqa: SLF001
    assert explain._description(phrase, feature, key, None) == text  # noqa: SLF001
