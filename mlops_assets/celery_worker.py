"""Imported by every Celery worker of the cluster profile (deploy/cluster/celery.yaml: `imports`).

A prefork worker runs each step in a pool process that billiard marks daemonic, and Python refuses to
start processes from a daemonic one ("daemonic processes are not allowed to have children"). Steps that
fan out over processes (the ingestion's parallel parsing of big drops, `lib/ingestion.py`) would fail on
the cluster only. Each pool process is made a regular parent when it starts: its own children are
still stopped by it (ProcessPoolExecutor joins them), and a pool process the OS kills leaves them to
exit on their closed pipes.
"""

import multiprocessing.process

from celery.signals import worker_process_init


@worker_process_init.connect
def allow_step_subprocesses(**_: object) -> None:
    """Let the steps of this pool process start processes of their own (spawn)."""
    process = multiprocessing.process.current_process()
    process._config["daemon"] = False  # noqa: SLF001 (no public setter once a process runs)
    # billiard's authkey type refuses to be pickled by the standard library's spawn: use the stdlib one.
    process._config["authkey"] = multiprocessing.process.AuthenticationString(bytes(process.authkey))  # noqa: SLF001
