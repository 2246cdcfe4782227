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

INTRO = """## Faults: kill -9, concurrent runs, a BI reader, a full disk, a read-only landing zone (issue 12)

**kill -9 of the whole graph.** The script generates a 1,500-task sample, runs the whole graph once
uninterrupted (`dagster asset materialize -m mlops_assets.definitions --select '*'` in its own Dagster
instance, warehouse, MLflow store and reports folder, 2-trial searches), then for each trial starts the
same command in a fresh sandbox on the same landing files, SIGKILLs its whole process group, and runs it
again to completion. The first trials aim at one step window each (start-up, ingestion, cleaning,
features, splits, each training, evaluation, each gate, monitoring, scores): the kill comes a seeded
offset after the window's first `STEP_START` in the run's event log, drawn uniformly over the window's
measured length (timing from the process start alone missed the short gate steps on a loaded machine);
the remaining trials kill at a moment uniform over the measured run. The step actually running is read
from the killed run's event log. After every re-run the script asserts
(`mlops_assets/reliability/faults.py`):

- `raw.*`, `clean.*`, `features.*`, `model_input.*` and each model's drift reference
  (`models.<m>_reference`) have the row count and content hash of the uninterrupted run (DuckDB `hash`
  of every row summed, without run metadata: `ingested_at`, `recorded_at`, run ids, the champion version);
  the evaluation tables and the scores have its row counts (models differ by run, so these are compared
  by structure);
- each champion's MLflow run is `FINISHED` with `mlops.run_complete` and its version carries
  `gate.applied`; no training run is registered twice. A champion trained by the killed run is allowed
  (its training finished and logged the model before the kill): the table says whether its gate had
  finished or the re-run resumed it;
- the drift reference describes the champion, the latest promoted row of `models.<m>_champion` names it,
  no two promotions were made against the same champion, and the scores name the champions;
- `mlflow.pyfunc.load_model("models:/late_risk@champion")` loads and predicts five `clean.tasks` rows.
"""

TESTS = """**Fixed faults in the test suite** (`mlops_assets_tests/reliability/test_faults.py`, 10 tests, about
40 s; the kills run in a child, `kill_worker.py`, that SIGKILLs itself just before the N-th statement of a
kind on any warehouse connection):

| fault | what the test asserts |
|---|---|
| ingestion killed before the 3rd batch's `COMMIT` (tiny `MLOPS_INGEST_BATCH_MB`) | the child died by SIGKILL; the committed batches stayed and the one being written left no manifest row; the re-run gives the raw layer of an uninterrupted ingestion (rows and content) |
| cleaning killed after `clean.tasks` was replaced inside the transaction, before the other two tables | all three clean tables are still the previous ones; the re-run gives the uninterrupted clean layer |
| a BI tool holds the warehouse read-only (another process) | a write waits, then raises `WarehouseLockedError` naming the file and "stop the other writer"; the table is unchanged; a reader that closes within the timeout only delays the write |
| two processes ingest the same landing zone into one warehouse at once | they take turns; the raw record tables equal one ingestion's |
| the same, the manifest | expected failure (`xfail`, not strict): a file both parsed before either committed gets two `ingested` rows in `raw.ingested_files`, the second with `n_new_records` 0 (see below) |
| two processes record the same 15 gate decisions at once (`gate.record_decision`) | one row per candidate run (failed twice in two runs before the fix below) |
| a process killed while it creates the MLflow store (before an `alembic_version` update) | the next process opens the store and finds the Default experiment (failed before the fix below: "table trace_metrics already exists") |
| the warehouse on a 20 MB tmpfs, 3 MB left | the write raises `WarehouseFullError` naming the file, "is full", "MLOPS_WAREHOUSE"; the previous table is intact and the other table of the transaction absent; after the filler is deleted the same write succeeds and a new process reads it |
| the landing zone behind a read-only bind mount (root ignores `chmod`) | ingestion gives the same raw layer as from the writable folder and writes nothing there |
| `landing/jira` pulling into a read-only landing folder | one attempt, no step retry, "jira pull cannot write into the landing folder: Read-only file system (...): make .../jira writable ... (MLOPS_LANDING_DIR=...)", under 20 s |

The mount tests skip with the reason when not root or when `mount` is refused (CI runs as root on Debian).

**What these faults found.**

- A live pull (`landing/jira`, `landing/github`) into a read-only (or full, or forbidden) landing folder
  raised a bare `OSError: [Errno 30] Read-only file system`, and the step's `PULL_RETRY_POLICY` retried
  it (18 s, then 74 s, ...; over 3 minutes) although waiting changes nothing. Fixed in
  `defs/ingestion/assets.py _pull`: a filesystem `OSError` (one with a file name; socket errors keep
  their handling) fails at once, without retries, naming the folder and `MLOPS_LANDING_DIR`.
- A kill in the first training step of a fresh folder (trial 13 of the 2026-12-04 series) left the SQLite MLflow store
  half-migrated: MLflow's migrations commit DDL as they go, so a process killed after a migration's
  tables and before its `alembic_version` update left tables the next migration creates again, and every
  later run failed with "table trace_metrics already exists" until `mlflow.db` was deleted. The init lock
  (issue 16) prevents two processes migrating at once but not a crash mid-way. Fixed in
  `lib/registry.py ensure_store`: a new SQLite store is migrated under a temporary name
  (`mlflow.db.init.tmp`, under the same lock) and renamed into place, so `mlflow.db` exists only
  complete; a killed creation leaves the temporary file, which the next process starts again.
  PostgreSQL stores keep MLflow's own migration (transactional DDL there).
- Two concurrent full runs wrote the decision for one candidate twice: `models.late_risk_champion` held
  two rows "v1 promoted against none" for the same MLflow run (the registry was right: one version, one
  alias move). Both gate steps gated the same candidate (each reads the latest `models.<m>_candidate`
  row, so the first run's own candidate is never gated: by design, a later candidate supersedes it),
  the second resumed the decision as designed, and `gate.record_decision` checked for the row and
  appended it in two separate connections. Fixed in `lib/gate.py`: the check and the insert run in
  one write transaction on one connection (DuckDB and DuckLake admit one writer at a time there).
- A full disk surfaced as DuckDB's `IO Error: Could not write file ...: No space left on device`,
  naming the file but not what to do. `Warehouse.connect` now raises `WarehouseFullError` (an `OSError`,
  errno 28): the file, the free space left, that the write was rolled back and the previous tables are
  unchanged, and "free space there, or point MLOPS_WAREHOUSE at a larger disk". DuckDB itself was sound:
  the failed transaction rolled back and the file worked once space was freed. The ingestion writer
  (`lib/ingestion.py _Writer`) leaves its connection outside that path, so a full disk during ingestion
  still shows DuckDB's own message (left to the owner of that module).
- Two ingestions of the same files at once (two runs outside the run queue; `dagster.yaml` queues runs
  tagged `mlops/warehouse=write` one at a time, `dagster asset materialize` does not go through the
  queue) store every record once, but a file both had parsed before either committed is recorded twice
  in `raw.ingested_files` (`ingested`, the second with `n_new_records` 0). Nothing downstream reads
  those counts (cleaning does not), so no table past raw changes; reproduction:
  `pytest mlops_assets_tests/reliability/test_faults.py -k record_each_file_once` (xfail). Not fixed
  here: `lib/ingestion.py` is being changed by its owner; the fix is to re-check the manifest for the
  batch's file hashes inside the write transaction (as `_new_records` does for records) and record
  `duplicate_file` for a file another writer committed meanwhile.

```console
.venv/bin/python -m pytest -q mlops_assets_tests/reliability/test_faults.py
```
"""


def render(
    trials: list, duration: float, args: argparse.Namespace, started: str, concurrency: list[str]
) -> str:
    """The whole section: what is asserted, the trials, the concurrency cases, the tests and the findings."""
    command = (
        f"python scripts/reliability_faults.py --trials {args.trials} --seed {args.seed}"
        + (" --concurrency" if args.concurrency else "")
        + (" --write" if args.write else "")
    )
    table = faults.trials_markdown(trials, duration, args.seed, command, started)
    if len(trials) < args.trials:
        table += f" (in progress: {len(trials)} of {args.trials} trials so far)"
    bad = sum(bool(t.problems) for t in trials)
    verdict = (
        f"In short: in these {len(trials)} kills none left a table different from the uninterrupted run, a champion "
        "from an incomplete run, a second registration of one training run, or a reference describing "
        "another model than the champion."
        if not bad
        else f"In short: {bad} of {len(trials)} kills left a problem: see the table above."
    )
    return "\n".join([INTRO, table, *concurrency, "", TESTS.rstrip("\n"), "", verdict, ""])


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(doc)


def concurrency_section(work: Path, landing: Path, expected: dict) -> list[str]:
    t0 = time.monotonic()
    both = faults.concurrent_runs(work, landing, expected)
    print("concurrent runs:", json.dumps(both, default=str), flush=True)
    bi = faults.run_while_reader_open(work, landing, expected)
    print("run with a read-only reader:", json.dumps(bi, default=str), flush=True)
    decisions = "; ".join(
        f"{m}: " + ", ".join(f"v{v} {'promoted' if p else 'kept'} against {b or 'none'}" for v, p, b in rows)
        for m, rows in both["decisions"].items()
    )
    return [
        "",
        "**Concurrency.** Two full runs on one warehouse and registry, the second started 2 s after the "
        "first (two people, or a sensor run and a UI run, outside the run queue), and a full run while "
        "another process holds the warehouse open read-only for 15 s from 8 s into the run (a BI tool). "
        "DuckDB admits one writing process per file: every step's connection waits for the other "
        "(`Warehouse.connect`, bounded by `lock_timeout_s`, 120 s, then `WarehouseLockedError` naming "
        "the file). After both, the same table and registry checks as above.",
        "",
        "| concurrency case | result | problems |",
        "|---|---|---|",
        f"| two full runs on one warehouse and registry, started 2 s apart | exit codes "
        f"{both['codes']}, {both['seconds'][0]:.0f} s and {both['seconds'][1]:.0f} s; decisions {decisions}; "
        f"champions {both['champions']} | {'; '.join(both['problems']) or 'none'} |",
        f"| a full run while a read-only DuckDB connection (a BI tool) is held {bi['held_s']:.0f} s, "
        f"opened {bi['reader_opened_at_s']} s into the run | exit code {bi['code']}, {bi['run_s']:.0f} s "
        f"| {'; '.join(bi['problems']) or 'none'} |",
        "",
        f"(concurrency cases: {time.monotonic() - t0:.0f} s)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--concurrency", action="store_true", help="also two concurrent runs and a BI reader")
    parser.add_argument(
        "--write",
        action="store_true",
        help="update docs/RELIABILITY.md between the markers (after every trial)",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="keep the sandboxes here (default: a temp dir)"
    )
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="mlops-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    landing = faults.generate_landing(work / "landing", args.tasks)
    ref, duration, windows, expected = faults.reference_run(work, landing)
    print(
        f"uninterrupted run: {duration:.1f} s; windows: "
        + ", ".join(f"{k} {a:.1f}-{b:.1f}" for k, (a, b) in windows.items()),
        flush=True,
    )
    reference_state = faults.check_registry(ref)
    if reference_state["problems"]:
        print("the uninterrupted run itself is inconsistent:", reference_state["problems"], file=sys.stderr)
        return 1

    # Concurrency first: it is short, and a long kill series stopped early still leaves it reported.
    concurrency = concurrency_section(work, landing, expected) if args.concurrency else []
    trials = []
    for n, (target, at) in enumerate(faults.kill_schedule(args.trials, args.seed, duration, windows), 1):
        t = faults.kill_trial(n, target, at, work, landing, expected)
        trials.append(t)
        print(
            f"trial {n}: aimed at {target} +{at:.2f} s, killed at {t.kill_at_s:.1f} s in {t.step}; re-run "
            f"{'ok' if t.rerun_ok else 'FAILED'} in {t.rerun_s:.0f} s; problems: {t.problems or 'none'}",
            flush=True,
        )
        if args.write:
            write_doc(render(trials, duration, args, started, concurrency))
    text = render(trials, duration, args, started, concurrency)
    print(text)
    if args.write:
        write_doc(text)
        print(f"wrote {DOC}")
    return 1 if any(t.problems for t in trials) else 0


if __name__ == "__main__":
    sys.exit(main())
