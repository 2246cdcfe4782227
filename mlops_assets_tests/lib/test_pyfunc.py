"""The registered model takes what users have: clean.tasks rows (pandas, polars) and JSON-like records.

Loaded by alias from a real SQLite MLflow store in a fresh process, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlops_assets.lib import features, registry, splits, synthetic, training

FAST = training.TrainConfig(n_trials=1, seed=5, cv_folds=2)
SPEC = training.MODEL_SPECS["late_risk"]

# The README's curl example, as JSON-like records: ISO strings, a date-only deadline, an int count.
README_RECORD = {
    "task_id": "jira:PAY-7001",
    "project": "PAY",
    "source": "jira",
    "type": "story",
    "priority": "medium",
    "created_at": "2026-11-26T09:00:00Z",
    "deadline_at": "2026-11-28",
    "story_points": 13,
    "title": "Refund flow for partial captures",
}

SCRIPT = """
import json, sys, mlflow.pyfunc, pandas as pd, polars as pl
model = mlflow.pyfunc.load_model("models:/late_risk@champion")
rows = pl.read_parquet(sys.argv[1])
with open(sys.argv[2]) as fh:
    records = json.load(fh)
outputs = {
    "polars": model.predict(rows),
    "pandas": model.predict(rows.to_pandas()),
    "records": model.predict(records),
    "records_frame": model.predict(pd.DataFrame(records)),
    "one_record": model.predict(records[-1]),
}
pd.to_pickle(outputs, sys.argv[3])
"""


@pytest.fixture(scope="module")
def trained():
    tasks = synthetic.synthetic_tasks(800, seed=11)
    history = features.History.from_tasks(tasks)
    frame = training.model_input(SPEC, tasks, features.build_features(tasks, history), history.as_of)
    model_splits = splits.time_split(frame)
    return tasks, history, model_splits, training.train_model(SPEC, model_splits, FAST)


def _json_record(row: dict) -> dict:
    """A clean.tasks row as a client sends it over HTTP: ISO strings with 'Z', numbers as numbers."""
    out = {}
    for name in features.INPUT_COLUMNS:
        value = row.get(name)
        if hasattr(value, "isoformat"):
            value = value.isoformat().replace("+00:00", "Z")
        out[name] = value
    return out


def test_the_champion_loaded_by_alias_scores_clean_tasks_rows_and_json_records(trained, mlflow_uri, tmp_path):
    import mlflow

    tasks, history, model_splits, model = trained
    run_id = registry.log_training_run(
        SPEC, model, model_splits, tasks=tasks, history=history, tracking_uri=mlflow_uri
    )
    client = registry.get_client(mlflow_uri)
    model_uri = client.get_run(run_id).data.tags["model_uri"]
    mlflow.set_tracking_uri(mlflow_uri)
    version = mlflow.register_model(model_uri, SPEC.name)
    client.set_registered_model_alias(SPEC.name, "champion", version.version)

    # clean.tasks rows as the warehouse gives them: every column, timestamps in Etc/UTC, int64 counts.
    rows = tasks.join(model_splits["test"].select("task_id"), on="task_id", how="semi").with_columns(
        pl.col(pl.Datetime("us", "UTC")).dt.convert_time_zone("Etc/UTC")
    )
    assert rows.schema["description_length"] == pl.Int64 and rows.height > 20
    rows.write_parquet(tmp_path / "rows.parquet")
    records = [_json_record(r) for r in rows.to_dicts()] + [README_RECORD]
    (tmp_path / "records.json").write_text(json.dumps(records))

    subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tmp_path / "rows.parquet"),
            str(tmp_path / "records.json"),
            str(tmp_path / "out.pkl"),
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri},
        check=True,
        capture_output=True,
        timeout=300,
    )
    outputs = pd.read_pickle(tmp_path / "out.pkl")

    expected = dict(zip(model_splits["test"]["task_id"], model.predict(model_splits["test"]), strict=True))
    for kind in ("polars", "pandas", "records", "records_frame"):
        out = outputs[kind]
        assert out["error"].isna().all(), (kind, out["error"].dropna().head(3).tolist())
        assert len(out) == rows.height + (kind.startswith("records"))
        scored = out.iloc[: rows.height]
        assert scored["task_id"].tolist() == rows["task_id"].to_list()
        assert np.allclose(
            scored["prediction"], [expected[t] for t in scored["task_id"]], rtol=0, atol=1e-9
        ), kind
    readme = outputs["one_record"]
    assert readme["task_id"].tolist() == ["jira:PAY-7001"] and readme["error"].isna().all()
    assert 0.0 <= readme["prediction"][0] <= 1.0
    assert readme["prediction"][0] == outputs["records"]["prediction"].iloc[-1]
