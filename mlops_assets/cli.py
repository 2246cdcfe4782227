"""The `mlops-assets` command line."""

from __future__ import annotations

import argparse
import contextlib
import sys

from mlops_assets import __version__

PROJECT_COMMANDS = {"generate", "rollback", "reproduce", "reingest", "drift-demo"}


def main(argv: list[str] | None = None) -> int:
    argv_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the seeded synthetic sample into a landing zone")
    gen.add_argument("--tasks", type=int, default=6000)
    gen.add_argument(
        "--out", default=None, help="default: MLOPS_LANDING_DIR, else data/landing in the project folder"
    )
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--drift", action="store_true")
    gen.add_argument("--if-empty", action="store_true", help="do nothing when the landing zone has files")
    gen.add_argument(
        "--like",
        default=None,
        metavar="DIR",
        help="replay the real exports in DIR (e.g. ../shared/data) instead of the synthetic sample",
    )
    gen.add_argument(
        "--jira-layout",
        choices=("files", "pages"),
        default="files",
        help="with --like: Jira as KEY.json + KEY_CL.json + KEY_Comment.json, or as search pages",
    )
    bench = sub.add_parser(
        "bench",
        help="time the whole graph (one `dagster asset materialize --select '*'`) at the "
        "given sizes, or every asset in its own process (--by-step); writes docs/BENCHMARKS.md",
    )
    bench.add_argument("--tasks", default="100000,1000000", help="comma-separated sizes")
    bench.add_argument(
        "--by-step",
        action="store_true",
        help="each asset in its own process with a fixed 3-trial search: a per-step table",
    )
    bench.add_argument(
        "--reference",
        action="store_true",
        help="whole graph: then train both models again on the same splits with every trial on "
        "all train rows (tune_rows=0, same trials): the quality the issue-14 training is held to",
    )
    bench.add_argument(
        "--against",
        default=None,
        metavar="REV",
        help="whole graph: after each size, run the same bench with the code of git commit REV (a worktree, "
        "this interpreter) and report both and their ratio: the machine's speed moves, pairs do not",
    )
    bench.add_argument(
        "--no-write", action="store_true", help="print the table, leave docs/BENCHMARKS.md alone"
    )
    bench.add_argument("--data-only", action="store_true", help="only ingestion, cleaning and features")
    bench.add_argument(
        "--models-only",
        action="store_true",
        help="only splits, training, evaluation, gate and scores, over the --work dir of a --data-only run",
    )
    bench.add_argument("--work", default=None, help="work dir to use and keep (one size only)")
    bench.add_argument(
        "--like",
        default=None,
        metavar="DIR",
        help="replay the real exports in DIR (e.g. ../shared/data) instead of the synthetic sample, "
        "and time ingestion and cleaning",
    )
    sub.add_parser("graph", help="regenerate the Mermaid asset graph in docs/ARCHITECTURE.md")
    demo = sub.add_parser(
        "drift-demo", help="land a drifted batch and watch drift detection, retraining and the gate"
    )
    demo.add_argument("--tasks", type=int, default=1500, help="tasks in the drifted batch")
    demo.add_argument("--main-tasks", type=int, default=6000, help="size of the main batch `make run` landed")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the loop")
    shots = sub.add_parser(
        "screenshots",
        help="materialize a sample and photograph the UIs into docs/images/ (headless /usr/bin/chromium)",
    )
    shots.add_argument("--out", default="docs/images")
    shots.add_argument("--tasks", type=int, default=1500)
    shots.add_argument("--keep", default=None, help="build the sandbox in this folder and leave it there")
    rollback = sub.add_parser(
        "rollback",
        help="move the champion alias of MODEL back to the previous champion (or to --to VERSION)",
        description="Move the champion alias of MODEL back to the version it replaced, or to --to VERSION. "
        "Serving follows within MLOPS_SERVE_CHECK_S; the version rolled back from is tagged rolled_back_at.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rollback.add_argument("model", help="registered model name, e.g. late_risk or cycle_time")
    rollback.add_argument(
        "--to",
        metavar="VERSION",
        default=None,
        help="the version to make champion (e.g. 2 or v2); default: the previous champion",
    )
    rollback.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    if "rollback" in argv_list and {"-h", "--help"} & set(argv_list[argv_list.index("rollback") + 1 :]):
        rollback.epilog = _versions_epilog()  # only when asked: reading the registry costs a second or two
    again = sub.add_parser(
        "reingest",
        help="mark landing files to be read again by the next ingestion "
        "(records already stored are not stored twice)",
    )
    again.add_argument(
        "files", nargs="+", help="files under MLOPS_LANDING_DIR, e.g. data/landing/csv/linear.csv"
    )
    rep = sub.add_parser(
        "reproduce",
        help="rebuild a past model from the raw layer as it was when it was trained, "
        "retrain it, and verify split hashes and test predictions (exit 1 if they differ)",
    )
    rep.add_argument(
        "ref", help="MODEL@VERSION (late_risk@3), MODEL@ALIAS (late_risk@champion) or an MLflow run id"
    )
    rep.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest absolute test-prediction difference accepted (default 0: bit for bit)",
    )
    args = parser.parse_args(argv)
    # Commands on the project's data read its .env and find its folder from anywhere. Not bench,
    # screenshots or graph: they build sandboxes of their own. Tests pass argv and their own environment.
    if argv is None and args.command in PROJECT_COMMANDS:
        try:
            _project_environment()
        except RuntimeError as exc:  # settings.ProjectHomeError: names MLOPS_HOME
            print(f"mlops-assets: {exc}", file=sys.stderr)
            return 2
    if args.command == "reproduce":
        return _reproduce(args)
    if getattr(args, "out", "") is None:
        from mlops_assets.lib.settings import env, location

        args.out = location(env("MLOPS_LANDING_DIR"))
    if args.command == "reingest":
        return _reingest(args)
    if args.command == "rollback":
        return _rollback(args)
    if args.command == "graph":
        from mlops_assets.devtools import graph

        changed = graph.render_into()
        print("docs/ARCHITECTURE.md " + ("updated" if changed else "already up to date"))
        return 0
    if args.command == "bench":
        from pathlib import Path

        from mlops_assets.devtools import bench as bench_mod

        sizes = [int(x) for x in args.tasks.split(",") if x]
        if args.data_only and args.models_only:
            parser.error("--data-only and --models-only exclude each other")
        if args.work and len(sizes) != 1:
            parser.error("--work takes one size in --tasks")
        if args.models_only and not (args.work and (Path(args.work) / "warehouse.duckdb").exists()):
            parser.error("--models-only needs --work DIR holding the warehouse of a --data-only run")
        stages, section = None, "pipeline"
        whole = not (args.by_step or args.data_only or args.models_only or args.like)
        if args.against and not whole:
            parser.error(
                "--against pairs whole-graph runs: leave out --by-step, --data-only, --models-only, --like"
            )
        if whole:
            results, refs, paired = [], {}, {}
            with contextlib.ExitStack() as stack:
                try:
                    other = stack.enter_context(bench_mod.code_at(args.against)) if args.against else None
                except ValueError as exc:
                    parser.error(str(exc))
                for n in sizes:
                    with bench_mod.work_dir(Path(args.work) if args.work else None, n) as work:
                        results.append(bench_mod.whole_graph(n, work))
                        print(
                            f"{n:,} tasks: whole graph {results[-1]['wall_s']:.1f} s, {results[-1]['tree_mb']:,.0f} MB",
                            flush=True,
                        )
                        if args.reference:
                            refs[n] = bench_mod.reference_trainings(work)
                    if other is not None:
                        paired[n] = bench_mod.whole_graph_at(other, n)
                        print(
                            f"{n:,} tasks at {args.against}: whole graph {paired[n]['wall_s']:.1f} s",
                            flush=True,
                        )
            command = " ".join(
                [
                    "mlops-assets bench --tasks",
                    args.tasks,
                    *(["--reference"] if args.reference else []),
                    *([f"--against {args.against}"] if args.against else []),
                    *(["--work DIR"] if args.work else []),
                ]
            )
            md = bench_mod.whole_graph_markdown(
                results, command, refs, (args.against, paired) if paired else None
            )
            print(md)
            if not args.no_write:  # one section per set of sizes: a 1M run does not replace the 100k figures
                bench_mod.write_section(md, section="whole-graph-" + "-".join(str(n) for n in sizes))
            return 0
        if args.like and args.models_only:
            parser.error("--like times ingestion and cleaning; it excludes --models-only")
        if args.like:
            stages, section = bench_mod.STAGES[: bench_mod.LIKE_STAGES], "pipeline-like"
        elif args.data_only:
            stages, section = bench_mod.STAGES[: bench_mod.DATA_STAGES], "pipeline-data"
        elif args.models_only:
            stages, section = bench_mod.STAGES[bench_mod.DATA_STAGES :], "pipeline-models"
        rows = []
        for n in sizes:
            rows += bench_mod.bench(
                n,
                stages,
                keep=Path(args.work) if args.work else None,
                like=Path(args.like) if args.like else None,
            )
        command = " ".join(
            [
                "mlops-assets bench --tasks",
                args.tasks,
                *([f"--like {args.like}"] if args.like else []),
                *(["--data-only"] if args.data_only else []),
                *(["--models-only"] if args.models_only else []),
                *(["--work DIR"] if args.work else []),
            ]
        )
        md = bench_mod.to_markdown(rows, command)
        print(md)
        if not args.no_write:
            bench_mod.write_section(md, section=section)
        return 0
    if args.command == "screenshots":
        import signal

        from mlops_assets.devtools import screenshots

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers' teardown runs
        for path in screenshots.take_screenshots(args.out, n_tasks=args.tasks, keep=args.keep):
            print(path)
        return 0
    if args.command == "drift-demo":
        from mlops_assets.devtools import demo

        return demo.cli(args)
    if args.command == "generate" and args.like:
        return _generate_like(args)
    if args.command == "generate":
        return _generate(args)
    return 2


def _already_filled(out) -> bool:
    """``--if-empty``: True (and says so) when the landing zone ``out`` already holds files."""
    if out.exists() and any(p.is_file() for p in out.rglob("*")):
        sys.stdout.write(f"{out} already holds files: nothing generated (--if-empty)\n")
        return True
    return False


def _generate(args: argparse.Namespace) -> int:
    """``mlops-assets generate``: write the synthetic sample unless ``--if-empty`` finds files already there."""
    from pathlib import Path

    from mlops_assets.lib import synthetic

    out = Path(args.out)
    if args.if_empty and _already_filled(out):
        return 0
    summary = synthetic.generate(out, n_tasks=args.tasks, seed=args.seed, drift=args.drift)
    batch = "drift batch" if args.drift else "batch"
    sys.stdout.write(f"synthetic {batch}: {args.tasks} tasks, seed {args.seed} -> {out}\n")
    for source, entry in summary["sources"].items():
        extra = f", {entry['pull_requests']} pull requests" if entry["pull_requests"] else ""
        sys.stdout.write(
            f"  {source:<7} {len(entry['files']):>5} files {entry['tasks']:>8} tasks "
            f"({entry['defects']} broken on purpose, {entry['duplicates']} duplicated{extra})\n"
        )
    return 0


def _generate_like(args: argparse.Namespace) -> int:
    """``mlops-assets generate --like DIR``: replay the real files there into ``--out``."""
    from pathlib import Path

    from mlops_assets.lib import replay

    out = Path(args.out)
    if args.if_empty and _already_filled(out):
        return 0
    try:
        summary = replay.generate_like(args.like, args.out, args.tasks, args.seed, args.jira_layout)
    except replay.LikeDataError as exc:
        sys.stderr.write(f"mlops-assets generate: {exc}\n")
        return 1
    write = sys.stdout.write
    write(
        f"replayed {args.like}: {args.tasks} tasks, seed {args.seed}, Jira as {args.jira_layout} "
        f"-> {args.out} in {summary['seconds']} s\n"
    )
    total = 0
    for source, entry in summary["sources"].items():
        total += entry["bytes"]
        write(
            f"  {source:<8} {entry['files']:>7} files {entry['tasks']:>8} tasks {entry['bytes'] / 1e6:>10.1f} MB\n"
        )
    write(
        f"  {'total':<8} {sum(e['files'] for e in summary['sources'].values()):>7} files "
        f"{args.tasks:>8} tasks {total / 1e6:>10.1f} MB\n"
    )
    return 0


def _project_environment() -> None:
    """The project's .env and absolute data locations, so the command works the same from any folder."""
    from mlops_assets.lib import settings

    settings.load_project_env()
    settings.absolute_environment()


def _versions_epilog() -> str:
    from mlops_assets.lib import registry, training

    return registry.versions_overview(training.MODEL_SPECS)


def _rollback(args: argparse.Namespace) -> int:
    from mlops_assets.lib import registry

    uri = registry.get_tracking_uri()
    store = registry._sqlite_path(uri) if uri.startswith("sqlite") else None
    if store is not None and not store.exists():  # never a new, empty store that answers "no champion"
        print(
            f"mlops-assets rollback: no MLflow store at {store}: run `make run` first, or point "
            "MLFLOW_TRACKING_URI (or MLOPS_HOME, the project folder) at the project's store",
            file=sys.stderr,
        )
        return 1
    try:
        client = registry.get_client()
        before, after = registry.rollback(args.model, client, to=args.to, dry_run=args.dry_run)
    except registry.RegistryError as exc:
        print(f"mlops-assets rollback: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(
            f"{args.model}: would move the champion from version {before} to version {after} "
            f"(dry run: nothing changed; {registry.get_tracking_uri()})"
        )
        return 0
    print(
        f"{args.model}: champion moved from version {before} back to version {after} "
        f"({registry.get_tracking_uri()})"
    )
    return 0


def _reingest(args: argparse.Namespace) -> int:
    """Mark files to be read again; the next materialization of raw/* (or the landing sensor) reads them."""
    from pathlib import Path

    from mlops_assets.lib.ingestion import LandingZoneError, forget_files
    from mlops_assets.lib.settings import env
    from mlops_assets.lib.warehouse import Warehouse

    warehouse = Warehouse(env("MLOPS_WAREHOUSE"), data_path=env("MLOPS_WAREHOUSE_DATA_PATH") or None)
    landing = Path(env("MLOPS_LANDING_DIR"))
    try:
        names = forget_files(warehouse, landing, [Path(f) for f in args.files])
    except LandingZoneError as exc:
        print(f"mlops-assets reingest: {exc}", file=sys.stderr)
        return 2
    print(f"marked to be read again: {', '.join(names)}; materialize raw/* (e.g. make run) to read them")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from mlops_assets.lib import reproduce
    from mlops_assets.lib.settings import env
    from mlops_assets.lib.warehouse import Warehouse

    warehouse = Warehouse(env("MLOPS_WAREHOUSE"), data_path=env("MLOPS_WAREHOUSE_DATA_PATH") or None)
    try:
        result = reproduce.reproduce(
            args.ref,
            warehouse=warehouse,
            tolerance=args.tolerance,
            notify=lambda line: print(line, flush=True),
        )
    except (reproduce.ReproductionError, KeyError, FileNotFoundError) as exc:
        print(f"mlops-assets reproduce: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
