"""Correctness at size (issue 11): after `mlops-assets bench --like ... --work DIR`, check DIR's warehouse.

For every source: each landing file has exactly one manifest row in raw.ingested_files, the records
credited to the files sum to the raw tables' rows (every record stored once), every raw task
is a clean task, a superseded version or in quarantine, and a second ingestion adds nothing.

    python scripts/check_ingestion_at_size.py /tmp/b100k     # exit 1 if any check fails
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mlops_assets.lib import ingestion
from mlops_assets.lib.warehouse import Warehouse


def main(work: Path) -> int:
    wh, landing = Warehouse(work / "warehouse.duckdb"), work / "landing"
    failures = []
    print(
        "| source | landing files | manifest rows | records credited | raw rows | raw tasks | clean tasks | quarantined | re-run: new records (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for source, (_, _, kinds) in ingestion.SOURCES.items():
        files = len(ingestion.list_landing_files(landing, source))
        manifest, credited = wh.query(
            "SELECT count(DISTINCT source_file), coalesce(sum(n_new_records), 0) FROM raw.ingested_files WHERE source = ?",
            [source],
        ).row(0)
        raw = sum(wh.query(f"SELECT count(*) FROM raw.{source}_{k}").row(0)[0] for k in kinds)
        raw_tasks = wh.query(f"SELECT count(DISTINCT task_id) FROM raw.{source}_tasks").row(0)[0]
        clean = wh.query("SELECT count(*) FROM clean.tasks WHERE source = ?", [source]).row(0)[0]
        quarantined = wh.query("SELECT count(*) FROM clean.quarantine WHERE source = ?", [source]).row(0)[0]
        t0 = time.perf_counter()
        again = ingestion.ingest_source(wh, landing, source)
        rerun_new, rerun_s = sum(again.records_new.values()), time.perf_counter() - t0
        print(
            f"| {source} | {files:,} | {manifest:,} | {credited:,} | {raw:,} | {raw_tasks:,} | {clean:,} | "
            f"{quarantined:,} | {rerun_new} ({rerun_s:.1f}) |"
        )
        if manifest != files:
            failures.append(f"{source}: {files} landing files but {manifest} manifest rows")
        if credited != raw:
            failures.append(f"{source}: {credited} records credited to files but {raw} raw rows")
        if rerun_new:
            failures.append(f"{source}: a second ingestion added {rerun_new} records")
        lost = wh.query(f"""SELECT count(DISTINCT r.task_id) FROM raw.{source}_tasks r
                            WHERE r.task_id NOT IN (SELECT task_id FROM clean.tasks)
                              AND r.task_id NOT IN (SELECT task_id FROM clean.quarantine WHERE task_id IS NOT NULL)""").row(
            0
        )[0]
        if lost:
            failures.append(f"{source}: {lost} raw tasks are neither in clean.tasks nor in clean.quarantine")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
