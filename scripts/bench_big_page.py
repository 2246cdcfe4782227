"""One Jira search page of N real-shaped issues, ingested alone: time, process-tree peak, rows conserved.

The issues are the real Apache issue objects (fields, changelog and comments) of DIR/jira-apache-ase2015
replayed by lib/replay with new keys, ids, people and dates, all in ONE search page (lib/replay writes
pages of 100 by default). Issue 11 asks that one big file (a 1 GB search page) not grow memory.

    python scripts/bench_big_page.py --like ../shared/data --tasks 48000 --work /tmp/big-page   # ~1 GB
"""

import argparse
import shutil
import sys
from pathlib import Path

import duckdb

from mlops_assets.devtools import bench
from mlops_assets.lib import replay
from mlops_assets.lib.replay import jira as replay_jira


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--like", type=Path, required=True, help="folder of real exports, e.g. ../shared/data"
    )
    parser.add_argument("--tasks", type=int, default=48000, help="issues in the page (48,000 is about 1 GB)")
    parser.add_argument(
        "--work", type=Path, required=True, help="work dir (replaced, then removed unless --keep)"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "dagster_home").mkdir(parents=True)
    try:
        templates = replay.load_templates(args.like.resolve())
        replay_jira.PAGE_SIZE = args.tasks  # one page
        replay_jira.generate(templates["jira"], args.work / "landing", args.tasks, 7, "search")
        [page] = list((args.work / "landing").rglob("*.json"))
        print(f"one page: {page.stat().st_size / 1e6:,.0f} MB, {args.tasks:,} issues", flush=True)  # noqa: T201
        out = bench.run_stage(args.work, "raw/jira_tasks,raw/jira_events,raw/jira_comments")
        if not out.get("ok"):
            print("FAILED", out.get("error"))  # noqa: T201
            return 1
        con = duckdb.connect(str(args.work / "warehouse.duckdb"), read_only=True)
        rows = {
            t: con.sql(f"SELECT count(*) FROM raw.{t}").fetchall()[0][0]
            for t in ("jira_tasks", "jira_events", "jira_comments")
        }
        manifest = con.sql("SELECT sum(n_records) FROM raw.ingested_files").fetchall()[0][0]
        staging = con.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ingest_staging'"
        ).fetchall()[0][0]
        con.close()
        print(
            f"ingest jira {out['step_s']:.1f} s, process-tree peak {out['tree_mb']:,.0f} MB; rows {rows}; "  # noqa: T201
            f"manifest n_records {manifest:,} (sum of rows {sum(rows.values()):,}); staging tables left {staging}"
        )
        return (
            0 if rows["jira_tasks"] == args.tasks and manifest == sum(rows.values()) and staging == 0 else 1
        )
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
