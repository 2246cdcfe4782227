"""kill -9 and concurrency figures for docs/RELIABILITY.md (issue 12, "The suite").

    .venv/bin/python scripts/reliability_faults.py --trials 20 --seed 12 [--concurrency] [--write]

Generates a 1,500-task sample, measures one uninterrupted run of the whole graph, then for each trial
starts the same run in a fresh sandbox, SIGKILLs its process group at a seeded moment (first one moment
inside each step window, counted from that window's first step start in the event log and drawn uniformly
over the window's measured length; then moments uniform over the whole measured run), runs it again
to completion and checks the tables against the uninterrupted run and the champions against the registry
(mlops_assets/reliability/faults.py). `--concurrency` adds two staggered concurrent runs on one
warehouse and registry, and a run while a read-only DuckDB connection is held open.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mlops_assets.reliability import faults

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- reliability:faults:start -->", "<!-- reliability:faults:end -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--concurrency", action="store_true", help="also two concurrent runs and a BI reader")
    parser.add_argument("--write", action="store_true", help="update docs/RELIABILITY.md between the markers")
    parser.add_argument("--work", type=Path, default=None, help="keep the sandboxes here (default: a temp dir)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="mlops-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    landing = faults.generate_landing(work / "landing", args.tasks)
    ref, duration, windows, expected = faults.reference_run(work, landing)
    print(f"uninterrupted run: {duration:.1f} s; windows: "
          + ", ".join(f"{k} {a:.1f}-{b:.1f}" for k, (a, b) in windows.items()), flush=True)
    reference_state = faults.check_registry(ref)
    if reference_state["problems"]:
        print("the uninterrupted run itself is inconsistent:", reference_state["problems"], file=sys.stderr)
        return 1

    trials = []
    for n, (target, at) in enumerate(faults.kill_schedule(args.trials, args.seed, duration, windows), 1):
        t = faults.kill_trial(n, target, at, work, landing, expected)
        trials.append(t)
        print(f"trial {n}: aimed at {target} +{at:.2f} s, killed at {t.kill_at_s:.1f} s in {t.step}; re-run "
              f"{'ok' if t.rerun_ok else 'FAILED'} in {t.rerun_s:.0f} s; problems: {t.problems or 'none'}", flush=True)

    command = (f"python scripts/reliability_faults.py --trials {args.trials} --seed {args.seed}"
               + (" --concurrency" if args.concurrency else "") + (" --write" if args.write else ""))
    section = [faults.trials_markdown(trials, duration, args.seed, command, started)]

    if args.concurrency:
        t0 = time.monotonic()
        both = faults.concurrent_runs(work, landing, expected)
        print("concurrent runs:", json.dumps(both, default=str), flush=True)
        bi = faults.run_while_reader_open(work, landing, expected)
        print("run with a read-only reader:", json.dumps(bi, default=str), flush=True)
        decisions = "; ".join(
            f"{m}: " + ", ".join(f"v{v} {'promoted' if p else 'kept'} against {b or 'none'}" for v, p, b in rows)
            for m, rows in both["decisions"].items())
        section += ["", "| concurrency case | result | problems |", "|---|---|---|",
                    f"| two full runs on one warehouse and registry, started 2 s apart | exit codes "
                    f"{both['codes']}, {both['seconds'][0]:.0f} s and {both['seconds'][1]:.0f} s; decisions {decisions}; "
                    f"champions {both['champions']} | {'; '.join(both['problems']) or 'none'} |",
                    f"| a full run while a read-only DuckDB connection (a BI tool) is held {bi['held_s']:.0f} s, "
                    f"opened {bi['reader_opened_at_s']} s into the run | exit code {bi['code']}, {bi['run_s']:.0f} s "
                    f"| {'; '.join(bi['problems']) or 'none'} |",
                    "", f"(concurrency cases: {time.monotonic() - t0:.0f} s)"]

    text = "\n".join(section)
    print(text)
    if args.write:
        doc = DOC.read_text()
        block = f"{START}\n{text}\n{END}"
        if START in doc and END in doc:
            doc = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
        else:
            doc = doc.rstrip("\n") + "\n\n" + block + "\n"
        DOC.write_text(doc)
        print(f"wrote {DOC}")
    bad = sum(bool(t.problems) for t in trials)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
