"""Where one online request's in-process work goes (issue 14): decode, records_to_frame, features, scoring, encode.

usage: python scripts/bench_online_request.py --work DIR [--calls 3000] [--rounds 3]

DIR is a work dir of `mlops-assets bench` (its warehouse and champions, e.g. 1M-trained ones). Each call
is one task of the first 500 open tasks as POST /predict handles it, without HTTP: the JSON body decoded
with msgspec, `features.records_to_frame`, `history_index.feature_columns` as of now, `scoring.score_rows`
(reasons included when the task has a deadline), the answer encoded. Prints microseconds a call per part.
`scripts/bench_serving.py` measures the service over HTTP.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from mlops_assets.lib import features, history_index, registry, scoring
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.serving.app import Snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    warehouse = str(args.work / "warehouse.duckdb")
    tasks = Warehouse(warehouse).read_table("clean.tasks")
    bodies = [msgspec.json.encode(r) for r in scoring.task_records(scoring.open_tasks(tasks).head(500))]
    champions = scoring.load_champions(registry.get_client(f"sqlite:///{args.work}/mlflow.db"))
    snapshot = Snapshot(champions[scoring.LATE_RISK], champions[scoring.CYCLE_TIME],
                        scoring.warehouse_history(warehouse), (0,))  # fmt: skip
    encoder = msgspec.json.Encoder()

    def calls(n: int) -> dict[str, float]:
        spent = dict.fromkeys(("decode", "records_to_frame", "feature_columns", "score_rows", "encode"), 0.0)
        for k in range(n):
            t0 = time.perf_counter()
            record = msgspec.json.decode(bodies[k % len(bodies)])
            t1 = time.perf_counter()
            frame, _ = features.records_to_frame([record])
            frame.drop_in_place("record_index")
            t2 = time.perf_counter()
            now = datetime.now(UTC)
            columns = history_index.feature_columns(frame, snapshot.index, at=now)
            t3 = time.perf_counter()
            rows, _ = scoring.score_rows(columns, snapshot.late, snapshot.cycle, now)
            t4 = time.perf_counter()
            encoder.encode({"prediction": rows[0], "models": snapshot.versions})
            t5 = time.perf_counter()
            for part, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                spent[part] += seconds
        return {part: seconds / n * 1e6 for part, seconds in spent.items()}

    calls(300)  # warm-up
    for _ in range(args.rounds):
        spent = calls(args.calls)
        print(
            ", ".join(f"{part} {us:.1f} us" for part, us in spent.items())
            + f"; in all {sum(spent.values()):.1f} us"
        )


if __name__ == "__main__":
    main()
