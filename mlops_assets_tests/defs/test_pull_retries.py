"""The live pulls retry a transient outage later (asset RetryPolicy) and fail at once on a bad token or URL."""

import dagster as dg
import pytest

from mlops_assets.definitions import build_resources, defs
from mlops_assets.defs.ingestion.assets import _transient
from mlops_assets.lib.sources.github_client import GitHubClient
from mlops_assets.lib.sources.jira_client import JiraClient
from mlops_assets.resources import JiraResource
from mlops_assets_tests.cluster.services import free_port
from mlops_assets_tests.fake_apis import Reply, serve


@pytest.mark.parametrize("key", [["landing", "jira"], ["landing", "github"]])
def test_each_api_pull_retries_with_exponential_backoff_and_jitter(key):
    policy = defs.resolve_assets_def(dg.AssetKey(key)).op.retry_policy
    assert policy is not None and policy.max_retries >= 2
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    assert 10 <= policy.delay <= 120  # longer than the HTTP client's own backoff, shorter than a schedule tick


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
@pytest.mark.parametrize(("status", "transient"), [(503, True), (502, True), (429, True), (401, False),
                                                   (403, False), (404, False)])
def test_only_outages_and_rate_limits_are_retried(make_error, status, transient):
    # (A GitHub 403 carrying Retry-After is a secondary rate limit, hence transient: none is sent here.)
    headers = {"Retry-After": "0"} if status == 429 else {}
    with serve(lambda req: Reply(status, {"message": "x"}, headers=headers)) as base_url:
        assert _transient(make_error(base_url)) is transient


@pytest.mark.parametrize("make_error", [_jira_error, _github_error])
def test_an_unreachable_api_is_retried(make_error):
    assert _transient(make_error(f"http://127.0.0.1:{free_port()}"))


def test_a_bad_token_fails_the_pull_once_without_waiting_for_retries(tmp_path, landing_dir):
    with serve(lambda req: Reply(401, {"errorMessages": ["nope"]})) as base_url:
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        resources["jira"] = JiraResource(url=base_url, user="me@example.com", api_token="t0ken")
        result = dg.materialize(list(defs.assets), selection=["landing/jira"], resources=resources,
                                raise_on_error=False)
    assert not result.success
    events = [e.event_type for e in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in events
    assert events.count(dg.DagsterEventType.STEP_FAILURE) == 1
