"""The product in a real browser: a materialized sandbox, the Dagster and MLflow UIs, headless chromium.

Shared by the browser tests (mlops_assets_tests/browser/) and `mlops-assets screenshots` (`make
screenshots`), so the README's pictures come from the same code paths the tests assert on. The
browser is Debian's /usr/bin/chromium driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.devtools.ports import RELAUNCHES, free_port, port_was_taken

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
DRIFT_ASSET = ("monitoring", "data_drift")
# A small training budget: the sandbox shows the product, it does not need good models.
FAST_TRAINING = {"n_trials": 3, "timeout_s": 60, "seed": 1, "cv_folds": 2}
# The variables the Definitions read; the sandbox sets its own, and live pulls stay off.
_PROJECT_ENV = (
    "DAGSTER_HOME",
    "MLOPS_WAREHOUSE",
    "MLOPS_LANDING_DIR",
    "MLOPS_REPORTS_DIR",
    "MLFLOW_TRACKING_URI",
    "MLOPS_MLFLOW_ARTIFACTS",
    "JIRA_URL",
    "JIRA_USER",
    "JIRA_API_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_REPOS",
)
INSTANCE_YAML = """\
# A throwaway instance for the browser: no telemetry script, no first-visit pop-up, and runs launched
# from the UI execute at once (no daemon needed).
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""


class BrowserSetupError(RuntimeError):
    """The sandbox, a server or the browser could not be started; the message says what to fix."""


@dataclass(frozen=True)
class Sandbox:
    """One temporary, fully materialized copy of the product: instance, warehouse, MLflow store, reports."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    def env(self) -> dict[str, str]:
        """The environment of every process run against the sandbox (CLI, webserver, MLflow server)."""
        env = {k: v for k, v in os.environ.items() if k not in _PROJECT_ENV}
        return env | {
            "DAGSTER_HOME": str(self.dagster_home),
            "MLOPS_HOME": str(self.root),  # any location not set here (exports, ...) stays in the sandbox
            "MLOPS_WAREHOUSE": str(self.warehouse),
            "MLOPS_LANDING_DIR": str(self.landing),
            "MLOPS_REPORTS_DIR": str(self.reports),
            "MLFLOW_TRACKING_URI": self.mlflow_uri,
            "MLOPS_MLFLOW_ARTIFACTS": str(self.artifacts),
        }

    def instance(self):
        """The sandbox's Dagster instance (its runs and materializations), opened in this process."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def latest_metadata(self, *key: str) -> dict:
        """The metadata of an asset's latest materialization, as plain values."""
        import dagster as dg

        with self.instance() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey(list(key)))
        if event is None or event.asset_materialization is None:
            raise BrowserSetupError(f"{'/'.join(key)} has no materialization in {self.dagster_home}")
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def _bin(name: str) -> str:
    """A console script of the running interpreter's environment (the venv), else from PATH."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def prepare_sandbox(
    root: str | Path,
    n_tasks: int = 1500,
    drift_tasks: int = 500,
    seed: int = 7,
    mlflow_template: Path | None = None,
) -> Sandbox:
    """Generate a sample into `root` and materialize every asset with the CLI, recorded in the sandbox's instance.

    When the Definitions monitor drift, a drifted batch of `drift_tasks` then lands and the data layers and
    the monitoring group are materialized again, so the drift report compares new work with the training
    data (as `make drift-demo` does). `mlflow_template` is an initialized empty MLflow SQLite store to copy
    (it saves MLflow's migrations).
    """
    from mlops_assets.lib import synthetic
    from mlops_assets.lib.training import MODEL_SPECS

    box = Sandbox(Path(root).resolve())
    for path in (box.dagster_home, box.reports, box.artifacts):
        path.mkdir(parents=True, exist_ok=True)
    (box.dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    if mlflow_template is not None:
        shutil.copy(mlflow_template, box.mlflow_db)
    synthetic.generate(box.landing, n_tasks=n_tasks, seed=seed, main_tasks=n_tasks)
    training = {"ops": {f"models__{m}_candidate": {"config": FAST_TRAINING} for m in MODEL_SPECS}}
    _materialize(box, "*", training)
    if drift_tasks and has_asset(*DRIFT_ASSET):
        synthetic.generate(box.landing, n_tasks=drift_tasks, seed=seed, drift=True, main_tasks=n_tasks)
        _materialize(box, "group:ingestion or group:cleaning or group:features or group:monitoring", {})
    return box


def has_asset(*key: str) -> bool:
    """Whether the project's Definitions hold this asset key."""
    import dagster as dg

    return dg.AssetKey(list(key)) in asset_groups()


def asset_groups() -> dict:
    """Every asset key of the project's Definitions with its group name."""
    from mlops_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}


def _materialize(box: Sandbox, selection: str, run_config: dict) -> None:
    """`dagster asset materialize` against the sandbox, as a user would run it; its log lands in the sandbox."""
    cmd = [
        _bin("dagster"),
        "asset",
        "materialize",
        "-m",
        "mlops_assets.definitions",
        "--select",
        selection,
        "--config-json",
        json.dumps(run_config),
    ]
    done = subprocess.run(cmd, env=box.env(), cwd=box.root, capture_output=True, text=True)
    log = box.root / "materialize.log"
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise BrowserSetupError(
            f"materializing {selection!r} failed (exit {done.returncode}); the log is "
            f"{log}:\n{_tail(done.stdout + done.stderr)}"
        )


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextmanager
def _server(
    name: str,
    cmd: Callable[[int], list[str]],
    env: dict[str, str],
    path: str,
    log: Path,
    timeout_s: float,
    port: int | None = None,
) -> Iterator[str]:
    """Run a server (``cmd(port)``) in its own process group until the block ends; yields its base URL once
    `path` answers 200. Without a given port it takes a free one, and another if that one is taken before
    the server binds it (mlops_assets/devtools/ports.py).
    """
    for attempt in range(1 if port else 1 + RELAUNCHES):
        chosen = port or free_port()
        base = f"http://127.0.0.1:{chosen}"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd(chosen), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None:
                try:
                    with urllib.request.urlopen(base + path, timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise BrowserSetupError(
                        f"{name} did not answer {base + path} within {timeout_s:.0f} s; its log: {log}"
                    )
                time.sleep(0.3)
            else:
                text = log.read_text(errors="replace")
                if not port and port_was_taken(text) and attempt < RELAUNCHES:
                    continue
                raise BrowserSetupError(
                    f"{name} exited with {proc.returncode} before answering; its log ({log}):\n{_tail(text)}"
                )
            yield base
            return
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (the webserver's code server and run workers too)."""
    for sig, wait in ((signal.SIGTERM, 8), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            # the leader is gone; children of the group may linger a moment
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


@contextmanager
def dagster_webserver(box: Sandbox, port: int | None = None, timeout_s: float = 120) -> Iterator[str]:
    """The Dagster UI on the sandbox's instance at http://127.0.0.1:<port>; yields its base URL."""

    def cmd(port: int) -> list[str]:
        return [
            _bin("dagster-webserver"),
            "-m",
            "mlops_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]

    with _server(
        "dagster-webserver",
        cmd,
        box.env(),
        "/server_info",
        box.root / "dagster-webserver.log",
        timeout_s,
        port,
    ) as base:
        yield base


@contextmanager
def mlflow_server(box: Sandbox, port: int | None = None, timeout_s: float = 120) -> Iterator[str]:
    """The MLflow UI on the sandbox's tracking store and registry; yields its base URL."""

    def cmd(port: int) -> list[str]:
        return [_bin("mlflow"), "server", "--backend-store-uri", box.mlflow_uri, "--default-artifact-root",
                box.artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip

    # no background job runner (huey workers): the UI needs none of it
    env = box.env() | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with _server(
        "mlflow server", cmd, env, "/health", box.root / "mlflow-server.log", timeout_s, port
    ) as base:
        yield base


@contextmanager
def browser_page(user_data_dir: str | Path | None = None) -> Iterator:
    """A Playwright page in headless /usr/bin/chromium with a fresh profile (its requests watched for `settle`)."""
    if not CHROMIUM.exists():
        raise BrowserSetupError(
            f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium`"
        )
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        profile = user_data_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="chromium-profile-")
        )
        playwright = stack.enter_context(sync_playwright())
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            # the webserver's Content-Security-Policy forbids eval, which Playwright's string predicates
            # (wait_for_function) need; the pages' own scripts are unaffected
            bypass_csp=True,
        )
        stack.callback(context.close)
        context.set_default_timeout(60_000)
        page = context.pages[0] if context.pages else context.new_page()
        _NETWORK[id(page)] = _Requests(page)
        stack.callback(_NETWORK.pop, id(page), None)
        yield page


# ---- a still page: what a picture may be taken of ----


class _Requests:
    """The page's requests in flight (fetch/XHR polling included), and when the last one started or ended."""

    # A request open longer than this is a stream or a worker's script that Playwright never sees end
    # (the MLflow UI's telemetry worker): waiting for it would never end, and the page does not wait either.
    LONG_LIVED_S = 10.0

    def __init__(self, page) -> None:
        self.in_flight: dict[int, tuple[str, float]] = {}
        self.changed = time.monotonic()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, request) -> None:
        self.in_flight[id(request)] = (request.url, time.monotonic())
        self.changed = time.monotonic()

    def _end(self, request) -> None:
        self.in_flight.pop(id(request), None)
        self.changed = time.monotonic()

    def pending(self) -> list[str]:
        """URLs of the requests in flight, long-lived ones left out."""
        now = time.monotonic()
        return [url for url, started in list(self.in_flight.values()) if now - started < self.LONG_LIVED_S]


_NETWORK: dict[int, _Requests] = {}
# Finite animations still running (CSS transitions such as a dialog's fade-in, CSS and Web animations);
# infinite ones (a spinner) never end and are left to the callers' waits for content.
_ANIMATING_JS = """() => document.getAnimations().filter(a => a.playState === 'running'
    && (a.effect?.getComputedTiming?.().iterations ?? 1) !== Infinity).length"""
# The opacity an element is painted with: its own times every ancestor's (a fading dialog's is below 1).
_OPACITY_JS = """el => { let o = 1; for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
    return o; }"""


def painted_opacity(locator) -> float:
    """The opacity `locator`'s element is painted with (1.0 once a dialog has faded in)."""
    return float(locator.evaluate(_OPACITY_JS))


def settle(page, quiet_ms: int = 500, timeout_s: float = 30) -> bytes:
    """Wait until the page is still and return its picture (PNG bytes).

    Still means: no request in flight (one open for over 10 s, a stream or a worker's script, aside)
    and none started or ended for `quiet_ms` (network idle, checked at every call: Playwright's
    `networkidle` is a one-time event after a navigation), no finite
    animation running, and two pictures `quiet_ms` apart identical (what animates outside CSS, such as
    canvas charts, has stopped too). Raises BrowserSetupError naming what still moves after `timeout_s`.
    """
    network = _NETWORK.get(id(page))
    deadline = time.monotonic() + timeout_s
    previous = None
    while True:
        busy = []
        pending = network.pending() if network is not None else []
        if network is not None and (pending or time.monotonic() - network.changed < quiet_ms / 1000):
            busy.append(
                f"network ({len(pending)} request(s) in flight: {', '.join(pending[:3]) or 'just finished'})"
            )
        elif page.evaluate(_ANIMATING_JS):
            busy.append("animations running")
        else:
            picture = page.screenshot()
            if picture == previous:
                return picture
            busy.append("the picture still changes")
            previous = picture
        if time.monotonic() > deadline:
            raise BrowserSetupError(f"{page.url} did not settle within {timeout_s:.0f} s: {'; '.join(busy)}")
        page.wait_for_timeout(100 if busy[-1].startswith(("network", "animations")) else quiet_ms)


# ---- the pages: each opens one view and waits until its content (not a loading placeholder) is painted ----


def show_asset_graph(page, base: str, n_assets: int) -> list[str]:
    """Dagster's global lineage with every group expanded (Alt+e); returns the asset nodes' labels."""
    page.goto(f"{base}/asset-groups")
    page.locator("[data-tooltip]").first.wait_for()
    page.keyboard.press("Alt+e")
    names = page.locator("[class*='AssetNode_assetName']")
    names.first.wait_for()
    page.get_by_placeholder("Jump to…").locator(
        "xpath=following::button[1]"
    ).click()  # fold the asset tree away
    # The graph draws only the nodes in view: zoom out until every asset is in the picture.
    zoom_out = page.locator("button:has([aria-label='zoom_out'])").first
    for _ in range(8):
        page.wait_for_timeout(700)  # the zoom animates
        if names.count() >= n_assets:
            break
        zoom_out.click()
    page.mouse.move(0, 0)  # no node's hover tooltip in the picture
    page.wait_for_function(
        f"document.querySelectorAll(\"[class*='AssetNode_assetName']\").length >= {n_assets}"
    )
    return names.all_inner_texts()


def label_matches(label: str, name: str) -> bool:
    """Whether a graph node's label is this asset name (long names are shortened to head…tail)."""
    if "…" not in label:
        return label == name
    head, tail = label.split("…", 1)
    return len(name) > len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


def show_asset(page, base: str, key: str, wait_for: str) -> None:
    """An asset's overview page (description, metadata, latest checks), once `wait_for` text is shown."""
    page.goto(f"{base}/assets/{key}")
    page.get_by_text(wait_for, exact=True).first.wait_for()
    page.get_by_text("Latest materialization", exact=True).wait_for()


def show_metadata_plots(page, base: str, key: str, metadata_key: str) -> None:
    """An asset's numeric metadata plotted over its materializations (the Plots view of its metadata)."""
    show_asset(page, base, key, metadata_key)
    page.get_by_text("Plots", exact=True).click()
    page.locator("canvas").first.wait_for()
    page.get_by_text(metadata_key, exact=True).first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the charts animate in


def open_markdown(page, metadata_key: str):
    """Open a markdown metadata entry (e.g. a plot) of the shown asset; returns the dialog once its image loaded."""
    row = page.get_by_role("row").filter(has=page.get_by_text(metadata_key, exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("img").first.wait_for()
    page.wait_for_function(
        "[...document.querySelectorAll('[role=dialog] img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    return dialog


def show_checks(page, base: str, key: str, check: str) -> None:
    """An asset's Checks tab with `check` selected and its latest evaluation shown."""
    page.goto(f"{base}/assets/{key}?view=checks")
    page.get_by_text(check, exact=True).first.wait_for()
    page.get_by_text("Evaluation result", exact=True).wait_for()


def launch_materialization(page, base: str, key: str, wait_for: str) -> str:
    """Click Materialize on an asset's page, follow the toast to the run page, wait for Success; returns the run id."""
    show_asset(page, base, key, wait_for)
    page.locator("button").filter(has=page.get_by_text("Materialize", exact=True)).first.click()
    view = page.get_by_role("link", name="View", exact=True)
    view.wait_for()
    href = view.get_attribute("href")
    run_id = href.rsplit("/", 1)[-1]
    page.goto(f"{base}{href}")  # the toast re-renders while the run starts: following its link is flaky
    page.get_by_text("Success", exact=True).first.wait_for(timeout=180_000)
    page.get_by_text("RUN_SUCCESS", exact=True).first.wait_for()
    return run_id


def run_status(base: str, run_id: str) -> str:
    """A run's status from the webserver's GraphQL API (SUCCESS, FAILURE, STARTED, ...)."""
    query = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": {"id": run_id}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        found = json.load(response)["data"]["runOrError"]
    return found.get("status") or found["__typename"]


def _dismiss_mlflow_panels(page) -> None:
    """Close the MLflow Assistant side panel and the registry promotion, which cover the content."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()
    for text in ("Got it", "Dismiss"):
        button = page.get_by_role("button", name=text, exact=True)
        if button.count() and button.first.is_visible():
            button.first.click()


def show_mlflow_runs(page, base: str, experiment_id: str, run_name: str, columns: list[str]) -> None:
    """The experiment's training runs as a table with the given metric/tag columns added."""
    page.goto(f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    page.get_by_text(run_name, exact=False).first.wait_for()
    _dismiss_mlflow_panels(page)
    page.get_by_test_id("column-selection-dropdown").first.click()
    for column in ("Dataset", "Source", "Models", *columns):  # attributes off (too wide), metrics on
        page.locator(f"[title='{column}']").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("columnheader", name=columns[0]).first.wait_for()
    page.wait_for_timeout(500)


def show_mlflow_models(page, base: str, names: list[str]) -> None:
    """The model registry: every registered model with its aliased versions."""
    page.goto(f"{base}/#/models?workflowType=machine_learning")
    for name in names:
        page.get_by_role("link", name=name, exact=True).first.wait_for()
    page.get_by_text("@ champion").first.wait_for()
    _dismiss_mlflow_panels(page)
    page.wait_for_timeout(500)


def show_mlflow_model(page, base: str, name: str) -> None:
    """One registered model: its versions with the gate's tags and the `champion` alias."""
    page.goto(f"{base}/#/models/{name}?workflowType=machine_learning")
    page.get_by_text("@ champion").first.wait_for()
    _dismiss_mlflow_panels(page)
    page.wait_for_timeout(500)


def show_html_report(page, path: str | Path, wait_for: str) -> None:
    """A report file (Evidently, evaluation) as a page, once `wait_for` text and its images or charts are painted."""
    page.goto(Path(path).resolve().as_uri())
    page.get_by_text(wait_for, exact=False).first.wait_for()
    page.wait_for_function(
        "[...document.images].every(i => i.complete && i.naturalWidth > 0) && "
        "(document.images.length > 0 || document.querySelectorAll('svg').length > 0)"
    )
    page.wait_for_timeout(500)


def show_pm_export(page, path: str | Path, wait_for: str) -> None:
    """A PM export page (a table, no images or charts), once `wait_for` text and its table rows are painted."""
    page.goto(Path(path).resolve().as_uri())
    page.get_by_text(wait_for, exact=False).first.wait_for()
    page.locator("tbody tr").first.wait_for()
    page.wait_for_timeout(300)


def fallback_drift_report(box: Sandbox) -> Path:
    """An Evidently report straight from lib.drift, for a project whose Definitions have no drift asset yet:
    the older half of features.task_features against its newest quarter.
    """
    from mlops_assets.lib import drift, features
    from mlops_assets.lib.warehouse import Warehouse

    frame = Warehouse(box.warehouse).read_table("features.task_features").sort("created_at")
    return drift.write_evidently_report(
        frame.head(frame.height // 2),
        frame.tail(frame.height // 4),
        features.NUMERIC_FEATURES,
        features.CATEGORICAL_FEATURES,
        box.reports / "drift" / "data_drift.html",
    )


def drift_report(box: Sandbox) -> Path:
    """The HTML of the latest monitoring/data_drift materialization (its `report` metadata)."""
    report = str(box.latest_metadata(*DRIFT_ASSET).get("report", "no report entry"))
    if not report.endswith(".html") or not Path(report).exists():
        raise BrowserSetupError(f"monitoring/data_drift wrote no Evidently report: {report}")
    return Path(report)


def experiment_id(box: Sandbox, name: str = "task_models") -> str:
    from mlflow import MlflowClient

    experiment = MlflowClient(box.mlflow_uri).get_experiment_by_name(name)
    if experiment is None:
        raise BrowserSetupError(f"no MLflow experiment {name!r} in {box.mlflow_uri}")
    return experiment.experiment_id


def pm_export_page(box: Sandbox) -> Path:
    """The page of the project with the most high-risk open tasks in the latest scores' PM export."""
    import polars as pl

    from mlops_assets.lib import exports

    index = Path(str(box.latest_metadata("serving", "task_risk_scores").get("pm_projects_path", "")))
    if not index.is_file():
        raise BrowserSetupError(f"serving/task_risk_scores exported no projects page: {index}")
    scores = pl.read_parquet(index.parent.parent / exports.PARQUET_NAME)
    ranked = (
        scores.group_by("project")
        .agg((pl.col("risk_band") == "high").sum().alias("high"), pl.len().alias("n"))
        .sort(["high", "n"], descending=True)
    )
    if ranked.is_empty():
        raise BrowserSetupError(f"the PM export in {index.parent} has no open task")
    page = index.parent / exports.project_file(ranked["project"][0])
    if not page.is_file():
        raise BrowserSetupError(f"the PM export has no page {page}")
    return page


def champion_run(box: Sandbox, name: str) -> tuple[str, str]:
    """The experiment id and run id of the training run behind a registered model's `champion` version."""
    from mlflow import MlflowClient

    client = MlflowClient(box.mlflow_uri)
    run_id = client.get_model_version_by_alias(name, "champion").run_id
    return client.get_run(run_id).info.experiment_id, run_id


def show_mlflow_reproduce(page, base: str, experiment: str, run_id: str) -> None:
    """A training run's Artifacts tab with its reproduce.json open (what a rebuild of the model reads)."""
    page.goto(
        f"{base}/#/experiments/{experiment}/runs/{run_id}/artifacts/reproduce.json?workflowType=machine_learning"
    )
    page.wait_for_function("document.body.innerText.includes('max_ingested_at')", timeout=90_000)
    _dismiss_mlflow_panels(page)
    page.wait_for_timeout(500)


# ---- `mlops-assets screenshots` ----

MODEL = "late_risk"


def take_screenshots(out_dir: str | Path, n_tasks: int = 1500, keep: str | Path | None = None) -> list[Path]:
    """Materialize a fresh sandbox, open every view in headless chromium, and write the README's PNGs."""
    from mlops_assets.lib.training import MODEL_SPECS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with ExitStack() as stack:
        root = (
            Path(keep)
            if keep
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-shots-")))
        )
        box = prepare_sandbox(root, n_tasks=n_tasks)
        dagster = stack.enter_context(dagster_webserver(box))
        mlflow = stack.enter_context(mlflow_server(box))
        page = stack.enter_context(browser_page(box.root / "chromium-profile"))

        def shot(name: str) -> None:
            path = out / f"{name}.png"
            path.write_bytes(settle(page))  # never mid-animation, never while data is still loading
            written.append(path)

        show_asset_graph(page, dagster, len(asset_groups()))
        shot("dagster-asset-graph")
        show_asset(page, dagster, f"reporting/{MODEL}_evaluation", "test_roc_auc")
        dialog = open_markdown(page, "plot_roc")
        settle(page)
        if (opacity := painted_opacity(dialog)) != 1:
            raise BrowserSetupError(f"the ROC dialog is painted at opacity {opacity} after settling")
        shot("dagster-evaluation-asset")
        if has_asset(*DRIFT_ASSET):
            show_asset(page, dagster, "/".join(DRIFT_ASSET), "drift_share")
            shot("dagster-drift-asset")
            show_metadata_plots(page, dagster, "monitoring/model_performance", f"{MODEL}_live_roc_auc")
            shot("dagster-performance-history")
            report = drift_report(box)
        else:
            report = fallback_drift_report(box)
        show_html_report(page, report, "Dataset Drift")
        shot("evidently-drift-report")
        evaluation = box.latest_metadata("reporting", f"{MODEL}_evaluation")["report"]
        show_html_report(page, evaluation, f"Evaluation: {MODEL}")
        page.evaluate(
            "[...document.querySelectorAll('h2')].find(h => h.textContent.trim() === 'Charts')"
            "?.scrollIntoView({block: 'start'})"
        )
        shot("evaluation-report")
        show_mlflow_runs(
            page,
            mlflow,
            experiment_id(box),
            f"{MODEL}-",
            ["test_roc_auc", "test_pr_auc", "test_brier", "test_mae", "test_baseline_mae", "gate.decision"],
        )
        shot("mlflow-runs")
        show_mlflow_models(page, mlflow, list(MODEL_SPECS))
        shot("mlflow-registry")
        show_mlflow_model(page, mlflow, MODEL)
        shot("mlflow-model-versions")
        launch_materialization(page, dagster, "features/task_features", "null_share")
        shot("dagster-run-launched-from-ui")
        show_pm_export(page, pm_export_page(box), "open tasks by risk")
        shot("pm-export-project")
        show_mlflow_reproduce(page, mlflow, *champion_run(box, MODEL))
        shot("mlflow-run-reproduce")
    return written
