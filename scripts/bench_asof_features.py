"""What the event history costs an online request: history_index.feature_columns for one task, as of now,
without events, with its events looked up in the snapshot, and with many events.

The online budget is p99 <= 20 ms per request on 2 cores (docs/BENCHMARKS.md); this measures the
feature step alone, in process, so the history lookup's share can be read against it.

    .venv/bin/python scripts/bench_asof_features.py
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CALLS = 3000


def main() -> int:
    from mlops_assets.lib import asof, features, history_index, scoring
    from mlops_assets.serving.sandbox import clean_tasks

    tasks = clean_tasks(6000, seed=7)
    history = features.History.from_tasks(tasks)
    open_tasks = scoring.open_tasks(tasks).head(200)
    frame, errors = features.records_to_frame(scoring.task_records(open_tasks))
    assert not errors
    now = history.as_of
    rng = np.random.default_rng(0)
    fields = ["status", "assignee", "priority", "duedate", "comment"]
    out = []
    for n_events in (0, 8, 60):
        rows = []
        for task_id, created in zip(open_tasks["task_id"], open_tasks["created_at"], strict=True):
            for _ in range(n_events):
                rows.append({"task_id": task_id, "changed_at": created + timedelta(hours=float(rng.uniform(1, 500))),
                             "field": str(rng.choice(fields)), "from_value": "Open", "to_value": "In Progress"})  # fmt: skip
        events = asof.TaskEvents.from_frame(pl.DataFrame(rows, schema=asof.EVENT_COLUMNS) if rows else None)
        index = history_index.HistoryIndex.from_history(dataclasses.replace(history, events=events))
        one = [frame.slice(i, 1).drop("record_index") for i in range(frame.height)]
        times = []
        for k in range(CALLS):
            started = time.perf_counter()
            history_index.feature_columns(one[k % len(one)], index, at=now)
            times.append(time.perf_counter() - started)
        ms = np.array(times) * 1000
        out.append(f"| {n_events} | {np.percentile(ms, 50):.3f} | {np.percentile(ms, 99):.3f} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"feature_columns for one task as of now, {CALLS} calls each, {stamp}\n")
    print("| events of the task (looked up in the snapshot) | p50 (ms) | p99 (ms) |\n|---:|---:|---:|")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
