"""Landing-zone sensor: one ingestion run per change of the landing files, never a duplicate."""

import hashlib
import json

import dagster as dg

from mlops_assets.lib.ingestion import SOURCES, landing_fingerprint
from mlops_assets.resources import LandingZoneResource

from ..shared import WAREHOUSE_WRITE_TAGS, raw_key
from .jobs import ingest_job


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_files_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
    """Start an ingestion run for the sources whose landing files are new or changed."""
    current = landing_fingerprint(landing.root())
    if not current:
        return dg.SkipReason(f"landing directory {landing.root()} does not exist yet")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(s for s, fp in current.items() if fp and fp != previous.get(s))
    if not changed:
        return dg.SkipReason("no new or changed landing files")
    run_key = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps(current, sort_keys=True))
    selection = [raw_key(s, kind) for s in changed for kind in SOURCES[s][2]]
    return dg.RunRequest(
        run_key=f"landing-{run_key}",
        asset_selection=selection,
        tags={**WAREHOUSE_WRITE_TAGS, "mlops/trigger": "landing", "mlops/sources": ",".join(changed)},
    )
