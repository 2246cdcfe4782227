"""Time ingestion + cleaning of an existing landing zone with whichever mlops_assets this Python imports.

Used for paired runs of two versions of the code on the same data (docs/BENCHMARKS.md): on shared
cores the same code on the same data can run 1.8x slower in the evening than in the morning, so a
figure is only compared with one measured beside it.

    python scripts/pair_ingest.py LANDING_DIR WORK_DIR

WORK_DIR is replaced: it gets its own warehouse and Dagster home, and a symlink to LANDING_DIR (never
written). For an older commit: `git worktree add /tmp/wt REV`, then a venv whose only .pth lists
/tmp/wt and this venv's site-packages (an editable install's finder would import this checkout).
"""

import shutil
import sys
from pathlib import Path

import mlops_assets
from mlops_assets.devtools import bench


def main() -> int:
    landing, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    (work / "dagster_home").mkdir(parents=True)
    (work / "landing").symlink_to(landing)
    print("code", mlops_assets.__file__, flush=True)  # noqa: T201
    total, peak = 0.0, 0.0
    for label, selection, _table in bench.STAGES[:6]:  # the five ingestion steps and cleaning
        out = bench.run_stage(work, selection)
        if not out.get("ok"):
            print(label, "FAILED", out.get("error"), flush=True)  # noqa: T201
            return 1
        total, peak = total + out["step_s"], max(peak, out["tree_mb"])
        print(f"{label:15s} {out['step_s']:7.1f} s  tree {out['tree_mb']:7.0f} MB", flush=True)  # noqa: T201
    print(f"TOTAL {total:.1f} s  peak {peak:.0f} MB", flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
