"""Model assets, one set per entry of training.MODEL_SPECS (an asset factory):

model_input/<m>_splits -> models/<m>_candidate -> reporting/<m>_evaluation -> models/<m>_champion
"""

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mlops_assets.lib import features, gate, registry, reporting, reproduce, training
from mlops_assets.lib import splits as splits_lib
from mlops_assets.lib.gate import beats_baseline, data_as_of
from mlops_assets.lib.readable import markdown_image, slices_markdown
from mlops_assets.metadata import readable
from mlops_assets.resources import ExportsResource, MLflowResource, ReportsResource, WarehouseResource

from .. import shared
from ..shared import SNAPSHOTS, TASKS, WAREHOUSE_WRITE_TAGS
from .config import GateConfig, SplitConfig, TrainingConfig


def latest_row(warehouse: WarehouseResource, table: str) -> dict:
    wh = warehouse.get()
    if not wh.table_exists(table):
        raise dg.Failure(description=f"{table} is empty: materialize its upstream asset first")
    return wh.query(f"SELECT * FROM {table} ORDER BY recorded_at DESC LIMIT 1").row(0, named=True)


def build_model_assets(spec: training.ModelSpec) -> list[dg.AssetsDefinition]:
    """The four assets of one model spec."""
    name = spec.name
    splits_key, candidate_key = shared.splits_key(name), shared.candidate_key(name)
    evaluation_key, champion_key = shared.evaluation_key(name), shared.champion_key(name)
    common = {"group_name": "training", "op_tags": WAREHOUSE_WRITE_TAGS}

    @dg.asset(
        key=splits_key,
        deps=[SNAPSHOTS, TASKS],
        kinds={"duckdb", "polars"},
        tags={"layer": "model_input"},
        description=f"model_input.{name}_splits: {spec.description} Labelled snapshot rows (each task at "
        "creation and later points while open) in train/validation/test splits by task creation and "
        "prediction time (no task on two sides), each with a content hash.",
        **common,
    )
    def _splits(
        context: dg.AssetExecutionContext, config: SplitConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        tasks, feats = wh.read_table("clean.tasks"), wh.read_table("features.task_snapshots")
        frame = training.model_input(spec, tasks, feats, data_as_of(tasks))
        try:
            parts = splits_lib.time_split(
                frame,
                fractions=(config.train_fraction, config.validation_fraction, config.test_fraction),
                gap_days=config.gap_days,
            )
        except ValueError as exc:
            raise dg.Failure(description=f"{name}: {exc}") from None
        wh.replace_tables(
            {
                f"model_input.{name}_splits": pl.concat(
                    [p.with_columns(pl.lit(s).alias("split")) for s, p in parts.items()],
                    how="vertical_relaxed",
                )
            }
        )
        meta = {f"{s}_rows": p.height for s, p in parts.items()}
        meta |= {f"{s}_hash": splits_lib.frame_hash(p) for s, p in parts.items()}
        meta |= {
            f"{s}_created": f"{p['created_at'].min()} .. {p['created_at'].max()}"
            for s, p in parts.items()
            if p.height
        }
        meta["target_mean"] = float(frame["target"].mean() or 0.0)
        meta["split_config"] = dg.MetadataValue.json(
            config.model_dump()
        )  # read by the candidate's reproduce record
        return dg.MaterializeResult(metadata=readable({"dagster/row_count": frame.height, **meta}))

    @dg.asset(
        key=candidate_key,
        deps=[splits_key],
        kinds={"lightgbm", "mlflow", "optuna"},
        tags={"layer": "models"},
        description=f"models.{name}_candidate: a LightGBM {spec.kind} model tuned by a seeded Optuna search, "
        "tracked as an MLflow run (params, CV/validation/test metrics, split hashes, pyfunc model).",
        check_specs=[
            dg.AssetCheckSpec(
                "beats_naive_baseline",
                asset=candidate_key,
                blocking=True,
                description="The candidate beats a naive baseline on the test window.",
            )
        ],
        **common,
    )
    def _candidate(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        warehouse: WarehouseResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        tasks = wh.read_table("clean.tasks")
        cfg = training.TrainConfig(
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            seed=config.seed,
            cv_folds=config.cv_folds,
            tune_rows=config.tune_rows,
            parallel_trials=config.parallel_trials,
            prune_every=config.prune_every,
            sorted_metric_every=config.sorted_metric_every,
        )
        record = reproduce.training_record(
            wh,
            clean_built_at=_materialized_at(context, TASKS),
            train_config=cfg,
            split_config=_json_metadata(context, splits_key, "split_config"),
            snapshot_config=_op_config(context, SNAPSHOTS),
        )
        try:
            trained = training.train_model(spec, parts, cfg, progress=context.log.info)
        except training.TrainingDataError as exc:
            raise dg.Failure(description=f"{name}: {exc}") from None
        run_id = registry.log_training_run(
            spec,
            trained,
            parts,
            tasks=tasks,
            history=features.History.from_tasks(tasks, as_of=data_as_of(tasks)),
            tracking_uri=mlflow.uri(),
            experiment=mlflow.experiment,
            dagster_run_id=context.run.run_id,
            git_commit=registry.git_commit(),
            artifacts_dir=mlflow.artifacts_dir or None,
        )
        reproduce.log_record(mlflow.client(), run_id, record, n_trials_run=trained.n_trials)
        metrics = {k: float(v) for k, v in trained.metrics.items() if v is not None}
        wh.append(
            f"models.{name}_candidate",
            pl.DataFrame(
                [
                    {
                        "recorded_at": datetime.now(UTC),
                        "run_id": run_id,
                        "dagster_run_id": context.run.run_id,
                        "metrics": json.dumps(metrics),
                        "params": json.dumps(trained.params, default=str),
                        "n_trials": trained.n_trials,
                        "search_seconds": trained.search_seconds,
                        "train_seconds": trained.train_seconds,
                        "lightgbm_seconds": trained.lightgbm_seconds,
                    }
                ]
            ),
        )
        passed, detail = beats_baseline(spec, parts, metrics)
        # the run's selection (context.selected_asset_keys is only this step's own asset); None: the whole job
        in_run = context.run.asset_selection or context.job_def.asset_layer.executable_asset_keys
        if champion_key not in in_run:
            context.log.warning(
                f"{name}: this candidate is logged in MLflow (run {run_id}) but not evaluated, gated "
                "or registered: this run does not include the gate; launch retrain_job for all of it"
            )
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "mlflow_run_id": run_id,
                    "n_trials": trained.n_trials,
                    "search_seconds": round(trained.search_seconds, 1),
                    "lightgbm_seconds": round(trained.lightgbm_seconds, 1),
                    **{k: dg.MetadataValue.float(v) for k, v in sorted(metrics.items())},
                }
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name="beats_naive_baseline", passed=passed, metadata=readable(detail)
                )
            ],
        )

    # Evaluation is its own group (reporting layer), not "training": it judges a model, it does not fit one.
    @dg.asset(
        key=evaluation_key,
        deps=[candidate_key],
        kinds={"matplotlib", "duckdb"},
        tags={"layer": "reporting"},
        description=f"reporting.{name}_evaluation: test metrics, per-slice metrics (source, project, type, "
        "priority), calibration, SHAP feature importance and plots; HTML report under data/reports/.",
        check_specs=[
            dg.AssetCheckSpec(
                "no_dominant_feature",
                asset=evaluation_key,
                description="No single feature carries over half of the SHAP importance "
                "(a leakage smell; warning).",
            )
        ],
        **{**common, "group_name": "evaluation"},
    )
    def _evaluation(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        mlflow: MLflowResource,
        reports: ReportsResource,
        exports: ExportsResource,
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        run_id = latest_row(warehouse, f"models.{name}_candidate")["run_id"]
        model = registry.load_run_model(run_id, mlflow.uri())
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        result = reporting.evaluate(
            spec,
            model,
            parts,
            # the slice columns are all the evaluation reads of the tasks
            wh.query(f"SELECT task_id, {', '.join(reporting.SLICE_COLUMNS)} FROM clean.tasks"),
            reports.dir(name, run_id),
            logged=registry.logged_predictions(run_id, mlflow.uri()),
        )
        tag = {"run_id": run_id}
        wh.replace_tables(
            {
                f"reporting.{name}_evaluation": pl.DataFrame(
                    {"metric": list(result.metrics), "value": list(result.metrics.values())}
                ).with_columns(**{k: pl.lit(v) for k, v in tag.items()}),
                f"reporting.{name}_slices": result.slices.with_columns(pl.lit(run_id).alias("run_id")),
                f"reporting.{name}_feature_importance": result.importance.with_columns(
                    pl.lit(run_id).alias("run_id")
                ),
                **(
                    {
                        f"reporting.{name}_calibration": result.calibration.with_columns(
                            pl.lit(run_id).alias("run_id")
                        )
                    }
                    if result.calibration is not None
                    else {}
                ),
            }
        )
        client = mlflow.client()
        logged = client.get_run(run_id).data.metrics
        for (
            key,
            value,
        ) in result.metrics.items():  # threshold-dependent metrics (f1, precision, ...) are new here
            if key not in logged:
                client.log_metric(run_id, key, value)
        for path in [*result.plots.values(), result.report]:
            client.log_artifact(run_id, str(path), artifact_path="evaluation")
        share = result.top_feature_share
        top = result.importance.row(0, named=True)["feature"] if result.importance.height else "none"
        return dg.MaterializeResult(
            metadata={
                "mlflow_run_id": run_id,
                "report": dg.MetadataValue.path(str(result.report.resolve())),
                # the same page over HTTP (`make serve` serves data/reports/): a browser opens it from the UI
                **(
                    {"report_url": dg.MetadataValue.url(url)}
                    if (url := exports.url("reports", result.report.relative_to(reports.dir())))
                    else {}
                ),
                **readable({k: dg.MetadataValue.float(v) for k, v in sorted(result.metrics.items())}),
                **{f"plot_{k}": dg.MetadataValue.md(markdown_image(p)) for k, p in result.plots.items()},
                "slices": dg.MetadataValue.md(slices_markdown(result.slices)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="no_dominant_feature",
                    passed=share <= 0.5,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata=readable({"top_feature": top, "top_share": share}),
                )
            ],
        )

    @dg.asset(
        key=champion_key,
        deps=[evaluation_key],
        kinds={"mlflow"},
        tags={"layer": "models"},
        description=f"models.{name}_champion: the champion/challenger gate. Registers the candidate as a "
        f"version of `{name}` and gives it the alias `champion` only if it beats the current champion on the "
        "same test window by the margin and passes the floors (a compare-and-set); else `challenger`. "
        "History of decisions; keeps models.<m>_reference on the champion, even after a crash.",
        check_specs=[
            dg.AssetCheckSpec(
                "reference_matches_champion",
                asset=champion_key,
                blocking=True,
                description="models.<m>_reference describes the version the champion "
                "alias points at (monitoring judges the model that serves).",
            )
        ],
        **common,
    )
    def _champion(
        context: dg.AssetExecutionContext,
        config: GateConfig,
        warehouse: WarehouseResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        wh = warehouse.get()
        candidate = latest_row(warehouse, f"models.{name}_candidate")
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        out = gate.run_gate(spec, wh, mlflow.client(), candidate, parts, margin=config.margin)
        d = out.decision
        context.log.info(
            f"{name} v{d.version}: {'promoted' if d.promoted else 'challenger'} ({d.reason}); "
            f"{out.reference_note}"
        )
        return dg.MaterializeResult(
            metadata={
                "decision": "promoted to champion" if d.promoted else "kept as challenger",
                "reason": d.reason,
                "candidate_version": d.version,
                "champion_version": out.champion or "none",
                "mlflow_run_id": candidate["run_id"],
                "reference": out.reference_note,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="reference_matches_champion",
                    passed=out.consistent,
                    metadata={
                        "champion_version": out.champion or "none",
                        "reference_version": out.reference or "none",
                        "note": out.reference_note,
                    },
                )
            ],
        )

    return [_splits, _candidate, _evaluation, _champion]


def _materialized_at(context: dg.AssetExecutionContext, key: dg.AssetKey) -> datetime | None:
    """When ``key`` was last materialized on this instance (None: never here)."""
    event = context.instance.get_latest_materialization_event(key)
    return datetime.fromtimestamp(event.timestamp, UTC) if event else None


def _op_config(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dict:
    """The config ``key``'s op was given in the run of its last materialization here ({}: its defaults)."""
    event = context.instance.get_latest_materialization_event(key)
    run = context.instance.get_run_by_id(event.run_id) if event else None
    ops = ((run.run_config or {}).get("ops") or {}) if run else {}
    return dict((ops.get("__".join(key.path)) or {}).get("config") or {})


def _json_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str):
    """A JSON metadata value of ``key``'s last materialization on this instance (None: absent)."""
    event = context.instance.get_latest_materialization_event(key)
    value = event.asset_materialization.metadata.get(name) if event and event.asset_materialization else None
    return getattr(value, "value", None)


model_assets = [a for spec in training.MODEL_SPECS.values() for a in build_model_assets(spec)]
