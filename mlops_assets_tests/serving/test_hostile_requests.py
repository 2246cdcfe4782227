"""Hostile requests and settings the service meets without a model: fast, in-process (issue 20 items 3 and 6)."""

from __future__ import annotations

import socket
import time

import pytest

from mlops_assets.lib import features, registry
from mlops_assets.serving.app import ModelState, Settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_mlflow_outage_is_not_no_champion_and_its_credentials_stay_out_of_ready_and_the_log(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://mlflow-user:pa55w0rd-xyz@127.0.0.1:{_closed_port()}"
    state = ModelState(Settings(warehouse=str(tmp_path / "wh.duckdb"), tracking_uri=uri))
    with pytest.raises(registry.RegistryUnavailableError) as raised:
        state.refresh()
    # GET /ready answers state.reason; the refresh loop and /reload log and answer the exception
    for text in (state.reason, str(raised.value)):
        assert "pa55w0rd-xyz" not in text and "mlflow-user" not in text
        assert "no champion" not in text
        assert (
            "cannot read the 'champion' alias" in text
            and "127.0.0.1" in text
            and "MLFLOW_TRACKING_URI" in text
        )


def test_the_alert_and_tracking_urls_are_masked_for_the_log():
    from mlops_assets.lib.redact import redact_url

    assert (
        redact_url("http://u:p4ss@mlflow.example:5000/x?token=t0k")
        == "http://***@mlflow.example:5000/x?token=***"
    )
    assert (
        redact_url("https://hooks.slack.com/services/T0/B0/s3cr3t", keep_path=False)
        == "https://hooks.slack.com/***"
    )
    assert redact_url("sqlite:////data/mlflow/mlflow.db") == "sqlite:////data/mlflow/mlflow.db"


def test_fifty_thousand_unknown_keys_are_named_briefly_and_fast():
    record = {
        "task_id": "t1",
        "source": "jira",
        "created_at": "2025-01-02T10:00:00Z",
        **{f"field_{i:05d}": 1 for i in range(50_000)},
        "titel": "x",
        "z" * 5000: 1,
    }
    started = time.perf_counter()
    frame, errors = features.records_to_frame([record])
    elapsed = time.perf_counter() - started
    assert frame.height == 0
    message = errors[0]
    assert message.startswith("unknown field(s) 'field_00000'") and "and 49,992 more" in message
    assert len(message) < 2_000
    assert elapsed < 0.5, f"{elapsed:.2f} s on the event loop (was 2.3 s)"


def test_a_misspelt_field_still_gets_its_suggestion():
    frame, errors = features.records_to_frame(
        [{"task_id": "t1", "source": "jira", "created_at": "2025-01-02T10:00:00Z", "titel": "x"}]
    )
    assert "'titel' (did you mean 'title'?)" in errors[0]


def test_the_service_freezes_what_it_serves_out_of_full_collections_unless_told_not_to():
    assert Settings.from_env({}).freeze_gc is True
    assert Settings.from_env({"MLOPS_SERVE_FREEZE_GC": "0"}).freeze_gc is False
    assert Settings().freeze_gc is False  # a process that builds its own Settings (a test) keeps its GC


def test_a_load_that_changes_what_is_served_settles_the_collector_and_one_that_does_not_leaves_it(
    monkeypatch, tmp_path
):
    from mlops_assets.lib import long_lived

    settled = []
    monkeypatch.setattr(long_lived, "settle", lambda: settled.append(True))
    answers = iter([{"changed": True}, {"changed": False}, {"changed": True}])
    for freeze in (True, False):
        state = ModelState(Settings(warehouse=str(tmp_path / "wh.duckdb"), freeze_gc=freeze))
        monkeypatch.setattr(state, "_load", lambda: next(answers))
        state.refresh()
        if freeze:
            state.refresh()
    assert settled == [True]  # only the load that changed it, and only with freeze_gc
