"""The GitHub client against a local server speaking GitHub's real shapes (Link pagination, rate limits)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from mlops_assets.lib.sources import github
from mlops_assets.lib.sources.github_client import GitHubClient, GitHubClientError, GitHubRateLimitError
from mlops_assets_tests.fake_apis import FakeRequest, Reply, serve

TOKEN = "ghp_R3allySecretT0kenValue0123456789abcd"
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
RATE_HEADERS = {"x-ratelimit-limit": "5000", "x-ratelimit-used": "1", "x-ratelimit-resource": "core"}


def _issue(number: int, pull: bool = False) -> dict:
    updated = SINCE + timedelta(hours=number)
    item = {
        "url": f"https://api.github.com/repos/acme/web/issues/{number}",
        "repository_url": "https://api.github.com/repos/acme/web",
        "html_url": f"https://github.com/acme/web/{'pull' if pull else 'issues'}/{number}",
        "id": 1000 + number,
        "number": number,
        "title": f"Item {number}",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": [{"id": 1, "name": "bug", "color": "d73a4a", "default": True}],
        "state": "open",
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 0,
        "created_at": "2024-12-01T10:00:00Z",
        "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "closed_at": None,
        "author_association": "MEMBER",
        "body": "text",
        "state_reason": None,
    }
    if pull:
        item["pull_request"] = {
            "url": f"https://api.github.com/repos/acme/web/pulls/{number}",
            "merged_at": None,
        }
    return item


PAGES = {1: [_issue(1), _issue(2)], 2: [_issue(3), _issue(4, pull=True)], 3: [_issue(5)]}


class FakeGitHub:
    """Serves /repos/acme/web/issues over 3 pages; answers one 403 rate-limit on the first ask for page 2."""

    def __init__(self, rate_limit_once_on_page: int | None = 2, reset_in_s: int = 1, secondary: bool = False):
        self.requests: list[FakeRequest] = []
        self.rate_limit_once_on_page = rate_limit_once_on_page
        self.reset_in_s = reset_in_s
        self.secondary = secondary

    def __call__(self, req: FakeRequest) -> Reply:
        self.requests.append(req)
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Reply(
                401,
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
            )
        if req.path not in ("/repos/acme/web/issues", "/repositories/42/issues"):
            return Reply(
                404,
                {
                    "message": "Not Found",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "404",
                },
            )
        page = int(req.param("page", "1"))
        if page == self.rate_limit_once_on_page:
            self.rate_limit_once_on_page = None
            if self.secondary:
                return Reply(
                    403,
                    {
                        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                    },
                    {"Retry-After": "1"},
                )
            reset = int(time.time()) + self.reset_in_s
            return Reply(
                403,
                {
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest",
                },
                {**RATE_HEADERS, "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            )
        host = req.headers["Host"]
        query = f"state=all&sort=updated&direction=asc&per_page={req.param('per_page')}&since={req.param('since')}"
        links = []
        if page < 3:
            links.append(f'<http://{host}/repositories/42/issues?{query}&page={page + 1}>; rel="next"')
        links.append(f'<http://{host}/repositories/42/issues?{query}&page=3>; rel="last"')
        return Reply(
            200, PAGES[page], {**RATE_HEADERS, "x-ratelimit-remaining": "4999", "Link": ", ".join(links)}
        )


def test_pull_follows_links_waits_out_the_rate_limit_and_writes_every_page(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeGitHub()
    with serve(fake) as url:
        client = GitHubClient(TOKEN, ["acme/web"], api_url=url, per_page=2)
        result = client.pull(tmp_path / "github", since=SINCE)

    assert result.pages_written == 3
    assert result.issues == 4 and result.pull_requests == 1
    assert result.new_watermark == SINCE + timedelta(hours=5)
    first = fake.requests[0]
    assert first.path == "/repos/acme/web/issues"
    assert first.query == {
        "state": ["all"],
        "sort": ["updated"],
        "direction": ["asc"],
        "per_page": ["2"],
        "since": ["2025-01-01T00:00:00Z"],
    }
    assert first.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert first.headers["Accept"] == "application/vnd.github+json"
    # page 2 was asked twice: once rate-limited, once after the reset
    assert [int(r.param("page", "1")) for r in fake.requests] == [1, 2, 2, 3]

    files = sorted((tmp_path / "github").glob("*.json"))
    assert files == sorted(result.files) and len(files) == 3
    assert not list((tmp_path / "github").glob(".*"))  # no temporary file left behind
    parsed = [github.parse(path) for path in files]
    assert sorted(t["key"] for p in parsed for t in p.records["tasks"]) == ["#1", "#2", "#3", "#5"]
    assert sum(p.shape.endswith("1 pull requests skipped") for p in parsed) == 1

    assert "rate limit" in caplog.text  # the wait was logged...
    assert TOKEN not in caplog.text  # ...without the token
    assert TOKEN not in repr(client)


def test_wrong_token_is_a_clear_error_without_the_token(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(FakeGitHub()) as url:
        client = GitHubClient("ghp_wrongWrongWrong000", ["acme/web"], api_url=url)
        with pytest.raises(GitHubClientError, match="401") as err:
            client.pull(tmp_path)
    assert "GITHUB_TOKEN" in str(err.value)
    assert "ghp_wrongWrongWrong000" not in str(err.value) + caplog.text
    assert not list(tmp_path.iterdir())


def test_rate_limit_resetting_beyond_max_wait_says_when_to_run_again(tmp_path):
    with serve(FakeGitHub(rate_limit_once_on_page=1, reset_in_s=3600)) as url:
        client = GitHubClient(TOKEN, ["acme/web"], api_url=url, max_wait_s=5)
        with pytest.raises(GitHubRateLimitError, match="run the pull again after that") as err:
            client.pull(tmp_path)
    assert TOKEN not in str(err.value)


def test_secondary_rate_limit_honours_retry_after(tmp_path):
    fake = FakeGitHub(rate_limit_once_on_page=3, secondary=True)
    with serve(fake) as url:
        result = GitHubClient(TOKEN, ["acme/web"], api_url=url).pull(tmp_path)
    assert result.pages_written == 3 and result.issues == 4
    assert [int(r.param("page", "1")) for r in fake.requests] == [1, 2, 3, 3]
    assert "since" not in fake.requests[0].query  # a first pull takes everything


def test_unknown_repository_names_it(tmp_path):
    with serve(FakeGitHub(rate_limit_once_on_page=None)) as url:
        client = GitHubClient(TOKEN, ["acme/web", "acme/missing"], api_url=url)
        with pytest.raises(GitHubClientError, match="repository acme/missing was not found"):
            client.pull(tmp_path)


def test_nothing_new_writes_nothing_and_keeps_the_watermark(tmp_path):
    with serve(lambda req: Reply(200, [], RATE_HEADERS)) as url:
        result = GitHubClient(TOKEN, "acme/web", api_url=url).pull(tmp_path, since=SINCE)
    assert (result.pages_written, result.issues, result.new_watermark) == (0, 0, SINCE)
    assert not list(tmp_path.iterdir())


def test_next_link_to_another_host_is_not_followed(tmp_path):
    def handler(req: FakeRequest) -> Reply:
        return Reply(200, [_issue(1)], {"Link": '<https://evil.example/steal?page=2>; rel="next"'})

    with serve(handler) as url:
        with pytest.raises(GitHubClientError, match="refusing to follow"):
            GitHubClient(TOKEN, ["acme/web"], api_url=url).pull(tmp_path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GITHUB_TOKEN and GITHUB_REPOS are not set"),
        ({"GITHUB_TOKEN": TOKEN}, "GITHUB_REPOS is not set"),
        ({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOS": "acme"}, "'acme' is not owner/repo"),
    ],
)
def test_from_env_names_what_is_missing(monkeypatch, env, message):
    for name in ("GITHUB_TOKEN", "GITHUB_REPOS", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(GitHubClientError, match=message) as err:
        GitHubClient.from_env()
    assert TOKEN not in str(err.value)


def test_from_env_reads_repos_and_api_url(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_REPOS", "acme/web, acme/api")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3/")
    client = GitHubClient.from_env()
    assert client.repos == [("acme", "web"), ("acme", "api")]
    assert client.api_url == "https://ghe.example.com/api/v3"
