"""The live pulls retry a transient outage later (asset RetryPolicy) and fail at once on a bad token or URL.

Time to failure is asserted as requests made (connections accepted, requests seen), never wall time.
"""

import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_resources, defs
from mlops_assets.defs.ingestion.assets import _transient
from mlops_assets.devtools.ports import free_port
from mlops_assets.lib.sources.github_client import GitHubClient
from mlops_assets.lib.sources.http import HttpError, RetryingHttp
from mlops_assets.lib.sources.jira_client import JiraClient
from mlops_assets.resources import GitHubResource, JiraResource
from mlops_assets_tests.fake_apis import Reply, serve


@pytest.mark.parametrize("key", [["landing", "jira"], ["landing", "github"]])
def test_each_api_pull_retries_with_exponential_backoff_and_jitter(key):
    policy = defs.resolve_assets_def(dg.AssetKey(key)).op.retry_policy
    assert policy is not None and policy.max_retries >= 2
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    assert (
        10 <= policy.delay <= 120
    )  # longer than the HTTP client's own backoff, shorter than a schedule tick


def _jira_error(base_url: str) -> BaseException:
    client = JiraClient(base_url, "me@example.com", "token", max_retries=0)
    with pytest.raises(RuntimeError) as info:
        client.user_timezone()
    return info.value


def _github_error(base_url: str) -> BaseException:
    client = GitHubClient("token", "octo/repo", api_url=base_url, max_retries=0)
    with pytest.raises(RuntimeError) as info:
        client.pull(__import__("pathlib").Path("/nonexistent-landing"))
    return info.value


@pytest.mark.parametrize("make_error", [_jira_error, _github_error])
@pytest.mark.parametrize(
    ("status", "transient"), [(503, True), (502, True), (429, True), (401, False), (403, False), (404, False)]
)
def test_only_outages_and_rate_limits_are_retried(make_error, status, transient):
    # (A GitHub 403 carrying Retry-After is a secondary rate limit, hence transient: none is sent here.)
    headers = {"Retry-After": "0"} if status == 429 else {}
    with serve(lambda req: Reply(status, {"message": "x"}, headers=headers)) as base_url:
        assert _transient(make_error(base_url)) is transient


@contextmanager
def _hang_up_server():
    """A port that accepts connections and closes them unanswered; yields (base URL, list of accepts)."""
    accepted: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize(
    ("make_error", "variable"), [(_jira_error, "JIRA_URL"), (_github_error, "GITHUB_API_URL")]
)
def test_an_unreachable_api_fails_at_once_naming_the_url_variable(make_error, variable):
    # Closed port: connection refused on the very first request is a configuration error, not an outage.
    error = make_error(f"http://127.0.0.1:{free_port()}")
    assert not _transient(error)
    assert variable in str(error) and "connection refused" in str(error)


@pytest.mark.parametrize(
    ("make_client", "variable"),
    [
        (lambda url: JiraClient(url, "me@example.com", "token"), "JIRA_URL"),
        (lambda url: GitHubClient("token", "octo/repo", api_url=url), "GITHUB_API_URL"),
    ],
)
def test_a_server_that_hangs_up_on_the_first_request_is_asked_once(tmp_path, make_client, variable):
    with _hang_up_server() as (url, accepted):
        client = make_client(url)  # default retries: 5 per request
        with pytest.raises(RuntimeError, match=variable) as info:
            client.pull(tmp_path / "landing")
    assert len(accepted) == 1 and client.http.requests_sent == 1
    assert not _transient(info.value)


@pytest.mark.parametrize(
    ("source", "status", "variables"),
    [
        ("jira", 401, ("JIRA_USER", "JIRA_API_TOKEN")),
        ("jira", 403, ("JIRA_API_TOKEN",)),
        ("jira", 404, ("JIRA_URL",)),
        ("github", 401, ("GITHUB_TOKEN",)),
        ("github", 403, ("GITHUB_TOKEN",)),
        ("github", 404, ("GITHUB_REPOS",)),
    ],
)
def test_a_refusal_on_the_first_request_names_the_variable_and_is_asked_once(
    tmp_path, source, status, variables
):
    seen: list[str] = []
    with serve(lambda req: (seen.append(req.path), Reply(status, {"message": "no"}))[1]) as url:
        client = (
            JiraClient(url, "me@example.com", "token")
            if source == "jira"
            else GitHubClient("token", "octo/repo", api_url=url)
        )
        with pytest.raises(RuntimeError) as info:
            client.pull(tmp_path / "landing")
    assert len(seen) == 1
    assert all(v in str(info.value) for v in variables), str(info.value)
    assert not _transient(info.value)


def test_once_the_server_has_answered_a_dropped_connection_is_an_outage_and_retried():
    http = RetryingHttp(max_retries=2, backoff_s=0.0)
    with serve(lambda req: Reply(200, {"ok": True})) as url:
        http.get(url)
    with pytest.raises(HttpError) as info:
        http.get(f"http://127.0.0.1:{free_port()}")  # the next page's host went down mid-pull
    assert info.value.transient and http.requests_sent == 1 + 3
    assert "after 3 attempts" in str(info.value)


def test_retries_are_bounded_per_pull_across_requests():
    seen: list[str] = []
    http = RetryingHttp(max_retries=5, retry_budget=7, backoff_s=0.0)
    with serve(lambda req: (seen.append(req.path), Reply(503, {"message": "down"}))[1]) as url:
        for page in (1, 2):
            with pytest.raises(HttpError) as info:
                http.get(f"{url}/page/{page}")
            assert info.value.transient
    # 1 + 5 attempts for the first page, then the 2 retries left of the budget for the second.
    assert len(seen) == 6 + 3 and http.retries_used == 7
    assert "retry budget of 7 is spent" in str(info.value)


def test_the_retry_bound_across_both_layers_is_the_documented_one():
    policy = defs.resolve_assets_def(dg.AssetKey(["landing", "jira"])).op.retry_policy
    budget = RetryingHttp().retry_budget
    assert (1 + policy.max_retries) * budget == 80  # docs/RELIABILITY.md, "Live pulls"
    doc = " ".join((Path(__file__).parents[2] / "docs" / "RELIABILITY.md").read_text().split())
    assert "at most 4 x 20 = 80 retried requests per materialization" in doc


@pytest.mark.parametrize(("source", "variable"), [("jira", "JIRA_URL"), ("github", "GITHUB_API_URL")])
def test_a_wrong_url_fails_the_asset_once_naming_the_variable(tmp_path, landing_dir, source, variable):
    with _hang_up_server() as (url, accepted):
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        if source == "jira":
            resources["jira"] = JiraResource(url=url, user="me@example.com", api_token="t0ken")
        else:
            resources["github"] = GitHubResource(token="t0ken", repos="octo/repo", api_url=url)
        result = dg.materialize(
            list(defs.assets), selection=[f"landing/{source}"], resources=resources, raise_on_error=False
        )
    assert not result.success
    events = [e.event_type for e in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    assert events.count(dg.DagsterEventType.STEP_FAILURE) == 1
    assert len(accepted) == 1  # one connection in all: no client retry, no step retry
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert variable in message and "t0ken" not in message


def test_a_bad_token_fails_the_pull_once_without_waiting_for_retries(tmp_path, landing_dir):
    with serve(lambda req: Reply(401, {"errorMessages": ["nope"]})) as base_url:
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        resources["jira"] = JiraResource(url=base_url, user="me@example.com", api_token="t0ken")
        result = dg.materialize(
            list(defs.assets), selection=["landing/jira"], resources=resources, raise_on_error=False
        )
    assert not result.success
    events = [e.event_type for e in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    assert events.count(dg.DagsterEventType.STEP_FAILURE) == 1
