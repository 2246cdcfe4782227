"""The hostile-input corpus at a small scale through ingestion and cleaning, and malformed requests
to a real scoring service (issue 12, "The suite"; the figures: scripts/reliability_figures.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.lib import scoring, training
from mlops_assets.lib.ingestion import SOURCES
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.reliability import corpus, fuzz, outcomes
from mlops_assets.reliability.service import ServiceProcess
from mlops_assets.serving import sandbox


@pytest.fixture(scope="module")
def corpus_run(
    tmp_path_factory,
) -> tuple[list[corpus.Case], outcomes.PipelineRun, list[outcomes.CaseOutcome]]:
    """Every hostile file and the good files (3 records each) in one landing zone, ingested and cleaned."""
    root = tmp_path_factory.mktemp("corpus")
    landing = root / "landing"
    cases = corpus.write_corpus(landing, n_good=3, outside=root / "outside")
    run = outcomes.run_pipeline(landing, root / "warehouse.duckdb")
    return cases, run, outcomes.judge(cases, run, landing)


def test_the_corpus_covers_every_source_and_kind_of_hostile_file(corpus_run):
    cases, _, _ = corpus_run
    hostile = [c for c in cases if c.hostile]
    assert len(hostile) >= 60
    assert {c.source for c in hostile} == set(SOURCES)
    assert {"empty / truncated", "wrong top-level type", "missing keys", "wrong types", "dates",
            "NaN / Infinity / negative", "duplicate keys", "encodings", "binary", "ragged CSV", "unbalanced quotes",
            "formula injection", "1 MB field", "hostile YAML mapping", "odd file names", "deep nesting",
            "symlink out"} <= set(corpus.categories(cases))  # fmt: skip


def test_nothing_crashes_and_every_quarantine_row_has_a_reason(corpus_run):
    _, run, _ = corpus_run
    assert run.crashes == []
    assert run.quarantine.height > 0
    assert outcomes.reasonless_rows(run) == 0


def test_every_good_record_survives_beside_hostile_files(corpus_run):
    _, _, judged = corpus_run
    lost = {j.case.path: sorted(j.lost) for j in judged if j.lost and not j.case.known_limit}
    assert lost == {}
    # the good files' records all arrive, whatever sits beside them
    assert all(not j.lost for j in judged if not j.case.hostile)


def test_every_bad_record_is_quarantined_with_a_reason_and_never_reaches_clean_tasks(corpus_run):
    _, _, judged = corpus_run
    assert {j.case.path: sorted(j.leaked) for j in judged if j.leaked} == {}
    assert {j.case.path: (j.quarantined, j.case.min_quarantined) for j in judged if j.unexplained} == {}


def test_a_link_out_of_the_landing_zone_is_never_read_and_is_named(corpus_run):
    _, run, _ = corpus_run
    assert any(m.startswith("environ.json: not read") for m in run.messages)
    text = run.quarantine.write_csv() + run.tasks.write_csv() + "\n".join(run.messages)
    assert not any(secret in text for secret in corpus.FAKE_SECRETS.values())


@pytest.mark.parametrize(
    "name",
    [
        "labels is a number, fixVersions true",
        "card id is a list",
        "idLabels nested lists, idMembers nested",
        "actions is a number",
    ],
)
def test_a_wrong_typed_record_costs_only_itself(tmp_path, name):
    """These took the whole file down (issue 19 item 1): now the odd record or field alone is rejected."""
    staging = tmp_path / "staging"
    case = next(c for c in corpus.write_corpus(staging, n_good=1, outside=tmp_path / "out") if c.name == name)
    landing = tmp_path / "landing"
    (landing / case.source).mkdir(parents=True)
    (landing / case.path).write_bytes((staging / case.path).read_bytes())
    run = outcomes.run_pipeline(landing, tmp_path / "warehouse.duckdb")
    [judged] = outcomes.judge([case], run, landing)
    assert run.crashes == [] and judged.ok and case.good
    rejected = run.quarantine.filter(pl.col("locator") != "<file>")
    assert rejected.height >= 1 and run.quarantine.filter(pl.col("locator") == "<file>").height == 0
    assert all(
        reason.startswith(locator) for locator, reason in rejected.select("locator", "reason").iter_rows()
    )


# ---- the service


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[tuple[ServiceProcess, dict]]:
    """The service on a free loopback port with both champions (a one-trial, 60-tree training on 800 tasks:
    malformed requests are refused before the model, so a small one will do).
    """
    root = tmp_path_factory.mktemp("service")
    quick = training.TrainConfig(n_trials=1, cv_folds=0, num_boost_round=60, early_stopping_rounds=10)
    box = sandbox.build_sandbox(root / "box", n_tasks=800, config=quick)
    tasks = Warehouse(box.warehouse).read_table("clean.tasks")
    record = scoring.task_records(
        scoring.open_tasks(tasks).filter(pl.col("deadline_at").is_not_null()).head(1)
    )[0]
    with ServiceProcess(box, Path(root / "service.log")) as running:
        running.wait_ready()
        running.box = box
        yield running, {k: v for k, v in record.items() if k in fuzz.FIELDS}


def test_fifty_malformed_requests_get_no_5xx_and_the_service_stays_up(service):
    running, base = service
    every = fuzz.requests(base, n=500)
    sample = random.Random(7).sample(every, 50)
    result = fuzz.send(running.url, sample, workers=4)
    assert result.transport_errors == []
    assert result.server_errors == []
    assert sum(result.by_status.values()) == 50
    assert fuzz.send(running.url, [fuzz.FuzzRequest("good", "/predict", fuzz._json(base))]).by_status == {
        200: 1
    }


def test_the_service_listens_on_loopback_only(service):
    running, _ = service
    assert running.listening_hosts() == {"127.0.0.1"}


def test_writes_to_the_warehouse_while_the_service_reads_it_fail_no_request_and_no_write(service, tmp_path):
    """A run while the scoring service reads (issue 12, concurrency): the service's reads and a pipeline's
    writes take turns on the DuckDB file; every good request is answered 200 and every write commits.
    """
    import threading

    from mlops_assets.lib import ingestion, synthetic

    running, base = service
    good = fuzz.FuzzRequest("good", "/predict", fuzz._json(base))
    answers: list[dict] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            answers.append(fuzz.send(running.url, [good]).by_status)

    wh = Warehouse(running.box.warehouse)
    tasks = wh.read_table("clean.tasks")
    landing = tmp_path / "landing"
    synthetic.generate(landing, n_tasks=600, seed=11)
    thread = threading.Thread(target=client)
    thread.start()
    try:
        for _ in range(5):  # the table the service reads, replaced again and again, and raw tables appended
            wh.replace_tables({"clean.tasks": tasks})
        for source in SOURCES:
            ingestion.ingest_source(wh, landing, source)
    finally:
        stop.set()
        thread.join()
    assert len(answers) >= 3 and all(a == {200: 1} for a in answers), answers[:5]
    assert wh.query("SELECT count(*) AS n FROM raw.jira_tasks")["n"][0] > 0
    assert fuzz.send(running.url, [good]).by_status == {200: 1}
