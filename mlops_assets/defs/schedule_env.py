"""Schedules' cron and sensors' interval from the environment, read when the code location loads.

An operator changes them without editing code: set the variable, restart `make ui` (or reload the code
location), and the UI shows the new cron on the schedule and the interval on the sensor. A value Dagster
would refuse fails the load with a message naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from mlops_assets.lib.settings import env, env_number, is_set

SENSOR_INTERVAL_VARIABLE = "MLOPS_SENSOR_INTERVAL_S"
DEFAULT_SENSOR_INTERVAL_S = 30


def env_schedule(
    *, name: str, job, variable: str, default_cron: str, what: str, environ: Mapping[str, str] | None = None
) -> dg.ScheduleDefinition:
    """A running UTC schedule of `job` on the cron in `variable` (else `default_cron`); its description says both."""
    cron = env(variable, environ) if is_set(variable, environ) else default_cron
    origin = f"from {variable}" if cron != default_cron else f"default; set {variable} to change it"
    try:
        return dg.ScheduleDefinition(
            name=name,
            job=job,
            cron_schedule=cron,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"{what} on `{cron}` UTC ({origin}).",
        )
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(
            f"{variable}={cron!r} is not a cron expression Dagster accepts: five fields "
            "(minute hour day month weekday, e.g. '0 6 * * *') or @daily/@hourly; fix or unset it"
        ) from None


def sensor_interval_s(environ: Mapping[str, str] | None = None) -> int:
    """Seconds between two ticks of the monitoring sensors (MLOPS_SENSOR_INTERVAL_S, default 30)."""
    return env_number(SENSOR_INTERVAL_VARIABLE, DEFAULT_SENSOR_INTERVAL_S, int, environ)
