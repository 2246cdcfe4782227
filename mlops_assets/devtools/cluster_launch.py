"""Submit a run to the cluster's run queue the way the UI's launchpad does (the daemon then dequeues and
launches it, and retries it if it fails): `dagster asset materialize` executes in its own process instead,
outside the queue, so the daemon cannot re-execute its runs.

    python -m mlops_assets.devtools.cluster_launch --select models/late_risk_candidate [--config-json '{...}']
        [--tags '{...}'] [--stop-instigators]

Run with the cluster environment (DAGSTER_HOME holding deploy/cluster/dagster.yaml, MLOPS_PROFILE=cluster).
`--stop-instigators` first stops every sensor and schedule of the code location, so that a test's daemon
only dequeues and retries runs. Prints `run_id=<id>`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2] / "deploy" / "cluster" / "workspace.yaml"


def main() -> None:
    import dagster as dg
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    parser = argparse.ArgumentParser()
    parser.add_argument("--select", required=True, help="comma-separated asset keys (a/b)")
    parser.add_argument("--config-json", default="{}")
    parser.add_argument("--tags", default="{}")
    parser.add_argument("--stop-instigators", action="store_true")
    args = parser.parse_args()
    keys = [dg.AssetKey.from_user_string(k.strip()) for k in args.select.split(",") if k.strip()]
    run_config = json.loads(args.config_json)

    instance = dg.DagsterInstance.get()
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as context:
        workspace = context.create_request_context()
        (location_name,) = workspace.get_code_location_entries()
        location = workspace.get_code_location(location_name)
        (repo,) = location.get_repositories().values()
        if args.stop_instigators:
            for sensor in repo.get_sensors():
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
            for schedule in repo.get_schedules():
                instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
        selector = JobSubsetSelector(
            location_name=location_name,
            repository_name=repo.name,
            job_name="__ASSET_JOB",
            op_selection=None,
            asset_selection=keys,
        )
        job = location.get_job(selector)
        plan = location.get_execution_plan(
            job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
        )
        run = instance.create_run(
            job_name=job.name,
            run_id=None,
            run_config=run_config,
            resolved_op_selection=job.resolved_op_selection,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            op_selection=None,
            status=None,
            root_run_id=None,
            parent_run_id=None,
            tags={**job.tags, **json.loads(args.tags)},
            job_snapshot=job.job_snapshot,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            parent_job_snapshot=job.parent_job_snapshot,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
            asset_selection=frozenset(keys),
            asset_check_selection=None,
            asset_graph=repo.asset_graph,
        )
        instance.submit_run(run.run_id, workspace)
    print(f"run_id={run.run_id}")  # noqa: T201 (the output; the code server writes to the same stdout: a marked line)


if __name__ == "__main__":
    main()
