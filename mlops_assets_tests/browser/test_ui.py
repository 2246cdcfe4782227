"""The product in headless chromium: Dagster's graph, asset pages and a UI-launched run; MLflow's runs and
registry; the evaluation and drift reports. One sandbox (1,500 tasks) is materialized for all of them.
"""

from __future__ import annotations

import pytest

from mlops_assets.devtools import screenshots
from mlops_assets.lib.readable import significant

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not screenshots.CHROMIUM.exists(),
        reason=f"{screenshots.CHROMIUM} is absent: `apt-get install -y chromium` (CI installs it)",
    ),
]
MODELS = ("late_risk", "cycle_time")


def test_asset_graph_shows_every_group_and_asset(page, dagster_ui):
    groups = screenshots.asset_groups()
    labels = screenshots.show_asset_graph(page, dagster_ui, len(groups))
    for group in set(groups.values()):
        assert page.locator(f"[data-tooltip='{group}']").count() >= 1, group
    assert len(labels) == len(groups)
    missing = [
        k.to_user_string()
        for k in groups
        if not any(screenshots.label_matches(label, k.path[-1]) for label in labels)
    ]
    assert not missing, f"not drawn in the graph: {missing} (labels: {labels})"


def test_clean_tasks_page_shows_the_row_count_and_its_checks(page, dagster_ui, sandbox):
    from mlops_assets.lib.warehouse import Warehouse

    rows = Warehouse(sandbox.warehouse).query("SELECT count(*) AS n FROM clean.tasks")["n"][0]
    screenshots.show_asset(page, dagster_ui, "clean/tasks", "input_records")
    assert page.get_by_text("Row count", exact=True).is_visible()
    assert page.get_by_text(f"{rows:,}", exact=True).first.is_visible()
    screenshots.show_checks(page, dagster_ui, "clean/tasks", "records_conserved")
    for check in ("tasks_schema_valid", "task_id_unique", "created_before_resolved", "records_conserved"):
        assert page.get_by_text(check, exact=True).first.is_visible()
    assert page.get_by_text("Passed", exact=True).first.is_visible()


def test_evaluation_asset_page_shows_description_metrics_plots_and_check(page, dagster_ui, sandbox):
    meta = sandbox.latest_metadata("reporting", "late_risk_evaluation")
    screenshots.show_asset(page, dagster_ui, "reporting/late_risk_evaluation", "test_roc_auc")
    assert page.get_by_text("reporting.late_risk_evaluation: test metrics", exact=False).is_visible()
    row = page.get_by_role("row").filter(has=page.get_by_text("test_roc_auc", exact=True))
    assert str(meta["test_roc_auc"]) in row.inner_text()
    assert meta["test_roc_auc"] == significant(meta["test_roc_auc"])  # 0.8599, not 0.8599015524422566
    for plot in ("plot_roc", "plot_precision_recall", "plot_calibration", "plot_feature_importance"):
        dialog = screenshots.open_markdown(page, plot)
        sizes = dialog.locator("img").evaluate_all("els => els.map(e => e.naturalWidth)")
        assert sizes and min(sizes) > 100, (plot, sizes)
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")
    screenshots.show_checks(page, dagster_ui, "reporting/late_risk_evaluation", "no_dominant_feature")
    assert page.get_by_text("top_feature", exact=True).is_visible()


# Clicks "[Show Markdown]" of plot_roc in the page itself and returns the dialog's painted opacity on the
# frames right after it (Playwright's own round trips are too slow to see the fade-in reliably).
_CLICK_AND_WATCH_JS = """async () => {
  const row = [...document.querySelectorAll('tr')].find(r => r.textContent.includes('plot_roc'));
  [...row.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent.trim() === '[Show Markdown]').click();
  const seen = [];
  for (let frame = 0; frame < 120 && seen.length < 3; frame++) {
    await new Promise(done => requestAnimationFrame(done));
    const dialog = document.querySelector('[role=dialog]');
    if (!dialog) continue;
    let opacity = 1;
    for (let e = dialog; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
    seen.push(opacity);
  }
  return seen;
}"""


def test_a_dialog_is_pictured_only_once_it_has_faded_in(page, dagster_ui):
    """The README's evaluation picture once showed the ROC dialog half-faded: `settle` waits out the fade."""
    screenshots.show_asset(page, dagster_ui, "reporting/late_risk_evaluation", "test_roc_auc")
    first_frames = page.evaluate(_CLICK_AND_WATCH_JS)
    assert first_frames and min(first_frames) < 1, f"the dialog should fade in (opacities {first_frames})"
    dialog = page.get_by_role("dialog")
    screenshots.settle(page)  # what `make screenshots` does before every picture
    assert screenshots.painted_opacity(dialog) == 1
    assert dialog.locator("img").evaluate_all("els => els.every(e => e.complete && e.naturalWidth > 0)")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")


def test_evaluation_report_opens_with_its_charts(page, sandbox):
    report = sandbox.latest_metadata("reporting", "late_risk_evaluation")["report"]
    screenshots.show_html_report(page, report, "Evaluation: late_risk")
    widths = page.locator("figure img").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert len(widths) == 4 and min(widths) > 100  # ROC, precision-recall, calibration, feature importance


def test_drift_report_opens_with_its_charts(page, dagster_ui, sandbox):
    if not screenshots.has_asset(*screenshots.DRIFT_ASSET):
        pytest.skip("monitoring/data_drift is not in the Definitions yet: no drift report to open")
    meta = sandbox.latest_metadata(*screenshots.DRIFT_ASSET)
    screenshots.show_asset(page, dagster_ui, "monitoring/data_drift", "drift_share")
    screenshots.show_html_report(page, screenshots.drift_report(sandbox), "Dataset Drift")
    assert page.get_by_text("Drifted Columns", exact=True).is_visible()
    assert page.locator("svg").count() > 10  # a reference and a current histogram per column
    drifted = [c.strip() for c in str(meta["drifted_columns"]).split(",") if c.strip() not in ("", "none")]
    assert drifted, "the drifted batch should move some monitored column"
    page.get_by_placeholder("Search").fill(drifted[0])  # Evidently pages its column table
    assert page.get_by_text(drifted[0], exact=True).first.is_visible()


@pytest.mark.parametrize(
    ("key", "series"),
    [
        ("monitoring/data_drift", ["drift_share", "prediction_drift_late_risk_score"]),
        (
            "monitoring/model_performance",
            ["late_risk_live_roc_auc", "cycle_time_live_mae", "late_risk_new_labels"],
        ),
    ],
)
def test_drift_and_performance_history_are_plotted_over_runs(page, dagster_ui, sandbox, key, series):
    if not screenshots.has_asset(*key.split("/")):
        pytest.skip(f"{key} is not in the Definitions")
    screenshots.show_metadata_plots(page, dagster_ui, key, series[0])
    for name in series:  # one chart per numeric metadata key, over every materialization of the asset
        assert page.get_by_text(name, exact=True).first.is_visible(), name
    assert page.locator("canvas").count() >= len(series)


def test_mlflow_lists_the_training_runs_with_metrics(page, mlflow_ui, sandbox):
    from mlflow import MlflowClient

    client = MlflowClient(sandbox.mlflow_uri)
    runs = client.search_runs([screenshots.experiment_id(sandbox)])
    assert {r.data.tags["model_name"] for r in runs} == set(MODELS)
    screenshots.show_mlflow_runs(
        page, mlflow_ui, screenshots.experiment_id(sandbox), "late_risk-", ["test_roc_auc", "test_mae"]
    )
    for run in runs:
        assert page.get_by_role("link", name=run.info.run_name, exact=True).is_visible()
    assert page.get_by_role("columnheader", name="test_roc_auc").first.is_visible()
    late = next(r for r in runs if r.data.tags["model_name"] == "late_risk")
    value = f"{late.data.metrics['test_roc_auc']:.6f}"[:5]  # the grid shortens long numbers with an ellipsis
    assert page.get_by_role("gridcell").filter(has_text=value).count() >= 1, value


def test_mlflow_registry_shows_the_champion_alias(page, mlflow_ui, sandbox):
    from mlflow import MlflowClient

    client = MlflowClient(sandbox.mlflow_uri)
    screenshots.show_mlflow_models(page, mlflow_ui, list(MODELS))
    assert page.get_by_text("@ champion").count() == len(MODELS)
    screenshots.show_mlflow_model(page, mlflow_ui, "late_risk")
    champion = client.get_model_version_by_alias("late_risk", "champion")
    row = page.get_by_role("row").filter(has_text="@ champion")
    assert f"Version {champion.version}" in row.inner_text()
    assert "promoted" in row.inner_text()


def test_a_materialization_launched_from_the_ui_succeeds(page, dagster_ui, sandbox):
    # last in the module: it rewrites features.task_features (the other tests only read)
    run_id = screenshots.launch_materialization(page, dagster_ui, "features/task_features", "null_share")
    assert screenshots.run_status(dagster_ui, run_id) == "SUCCESS"
    with sandbox.instance() as instance:
        import dagster as dg

        event = instance.get_latest_materialization_event(dg.AssetKey(["features", "task_features"]))
    assert event.run_id == run_id
