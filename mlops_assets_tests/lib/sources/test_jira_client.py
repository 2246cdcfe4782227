"""The Jira client against a local server that speaks Jira's real response shapes (v2 and v3 search)."""

from __future__ import annotations

import base64
import logging
import traceback
from datetime import UTC, datetime, timedelta

import pytest

from mlops_assets.lib.sources import jira
from mlops_assets.lib.sources.http import RetryingHttp, retry_after_seconds, safe_url
from mlops_assets.lib.sources.jira_client import JiraClient, JiraClientError
from mlops_assets_tests.fake_apis import FakeJiraSite, FakeRequest, Reply, serve

USER = "ada@example.com"
TOKEN = "ATATT3xFfGF0-very-secret-token-4711"
SINCE = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _issue(n: int) -> dict:
    updated = SINCE + timedelta(hours=n)
    return {
        "expand": "operations,changelog",
        "id": str(10000 + n),
        "self": f"https://example.atlassian.net/rest/api/2/issue/{10000 + n}",
        "key": f"ENG-{n}",
        "fields": {
            "summary": f"Issue {n}",
            "issuetype": {"name": "Bug"},
            "priority": {"name": "High"},
            "status": {"name": "Done", "statusCategory": {"key": "done"}},
            "project": {"key": "ENG"},
            "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada"},
            "created": "2024-12-01T10:00:00.000+0000",
            "updated": updated.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "resolutiondate": updated.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            "duedate": "2025-01-02",
        },
        "changelog": {
            "startAt": 0,
            "maxResults": 1,
            "total": 1,
            "histories": [
                {
                    "id": str(500 + n),
                    "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5"},
                    "created": updated.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                    "items": [
                        {
                            "field": "status",
                            "fieldtype": "jira",
                            "fieldId": "status",
                            "from": "1",
                            "fromString": "To Do",
                            "to": "10001",
                            "toString": "Done",
                        }
                    ],
                }
            ],
        },
    }


class FakeJira:
    """Checks Basic auth, pages 5 issues 2 at a time, and throttles the 2nd page once (429, Retry-After: 0)."""

    def __init__(self, version: int, issues: int = 5, page_cap: int = 2, fail_with: int | None = None):
        self.version = version
        self.issues = [_issue(n) for n in range(1, issues + 1)]
        self.page_cap = page_cap  # Jira may return fewer issues than maxResults asks for
        self.fail_with = fail_with
        self.requests: list[FakeRequest] = []
        self.throttled = 0

    def __call__(self, req: FakeRequest) -> Reply:
        self.requests.append(req)
        expected = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        if req.headers.get("Authorization") != expected:
            return Reply(
                401, "<html>Unauthorized (401)</html>", {"WWW-Authenticate": 'Basic realm="protected-area"'}
            )
        prefix = f"/rest/api/{self.version}"
        if req.path == f"{prefix}/myself":
            return Reply(200, {"accountId": "5b10ac8d82e05b22cc7d4ef5", "timeZone": "Europe/Berlin"})
        if self.fail_with:
            return Reply(self.fail_with, {"errorMessages": ["Service unavailable"]})
        size = min(int(req.param("maxResults", "50")), self.page_cap)
        if self.version == 2 and req.path == f"{prefix}/search":
            start = int(req.param("startAt", "0"))
        elif self.version == 3 and req.path == f"{prefix}/search/jql":
            start = int((req.param("nextPageToken") or "tok-0").removeprefix("tok-"))
        else:
            return Reply(404, {"errorMessages": ["Not found"]})
        if start == 2 and not self.throttled:
            self.throttled += 1
            return Reply(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "0"})
        chunk = self.issues[start : start + size]
        names = {"summary": "Summary", "customfield_10016": "Story point estimate"}
        if self.version == 2:
            return Reply(
                200,
                {
                    "expand": "names,schema",
                    "startAt": start,
                    "maxResults": size,
                    "total": len(self.issues),
                    "issues": chunk,
                    "names": names,
                },
            )
        body = {"issues": chunk, "names": names, "isLast": start + size >= len(self.issues)}
        if not body["isLast"]:  # Jira Cloud leaves the key out on the last page
            body["nextPageToken"] = f"tok-{start + size}"
        return Reply(200, body)


@pytest.mark.parametrize("version", [2, 3])
def test_pull_pages_through_a_throttle_and_lands_parseable_pages(tmp_path, caplog, version):
    caplog.set_level(logging.DEBUG)
    fake = FakeJira(version)
    landing = tmp_path / "landing" / "jira"
    with serve(fake) as url:
        client = JiraClient(url, USER, TOKEN, api_version=version, page_size=50)
        result = client.pull(landing, since=SINCE)

    assert (result.pages_written, result.issues) == (3, 5)
    assert fake.throttled == 1
    assert result.new_watermark == SINCE + timedelta(hours=5)
    assert sorted(p.name for p in landing.iterdir()) == sorted(
        p.name for p in result.files
    )  # no temp files left
    assert [p.name[-10:] for p in sorted(result.files)] == ["p0001.json", "p0002.json", "p0003.json"]

    tasks, events = [], []
    for path in result.files:
        parsed = jira.parse(path)
        assert parsed.shape == "jira-search-page" and parsed.rejects == []
        tasks += parsed.records["tasks"]
        events += parsed.records["events"]
    assert sorted(t["key"] for t in tasks) == [f"ENG-{n}" for n in range(1, 6)]
    assert len(events) == 5

    searches = [r for r in fake.requests if "search" in r.path]
    # Europe/Berlin is UTC+1 in January: JQL reads dates in the user's zone.
    assert searches[0].param("jql") == 'updated >= "2025/01/01 13:00" ORDER BY updated ASC'
    assert searches[0].param("expand") == "changelog,names" and searches[0].param("fields") == "*all"
    if version == 2:
        assert [r.param("startAt") for r in searches] == ["0", "2", "2", "4"]
    else:
        assert [r.param("nextPageToken") for r in searches] == [None, "tok-2", "tok-2", "tok-4"]
    assert any("HTTP 429" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_a_summary_cut_inside_an_emoji_is_pulled_and_ingested_with_the_replacement_character(tmp_path):
    """Jira answers a lone surrogate escape (a summary cut at a UTF-16 length limit): writing the page as UTF-8
    failed the pull (UnicodeEncodeError) and left a temporary file behind.
    """
    fake = FakeJira(2, issues=2, page_cap=50)
    fake.issues[1]["fields"]["summary"] = "Launch party \ud83d"  # sent as the JSON escape
    landing = tmp_path / "landing" / "jira"
    with serve(fake) as url:
        result = JiraClient(url, USER, TOKEN, api_version=2, page_size=50).pull(landing, since=SINCE)

    assert result.issues == 2 and sorted(landing.iterdir()) == sorted(result.files)
    assert b"\\ud83d" in result.files[0].read_bytes()  # the page holds what Jira sent
    tasks = jira.parse(result.files[0]).records["tasks"]
    assert [t["title"] for t in tasks] == ["Issue 1", "Launch party \ufffd"]


def test_wrong_token_gives_a_clear_error_without_the_token(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeJira(2)
    wrong = "ATATT3-wrong-token-0815"
    with serve(fake) as url:
        client = JiraClient(url, USER, wrong, api_version=2)
        with pytest.raises(JiraClientError) as info:
            client.pull(tmp_path, since=None)
    message = str(info.value)
    assert (
        message
        == f"Jira rejected the credentials for user {USER} (HTTP 401): check JIRA_USER and JIRA_API_TOKEN"
    )
    assert wrong not in "".join(traceback.format_exception(info.value))  # not even in a chained exception
    assert wrong not in caplog.text and TOKEN not in caplog.text
    assert list(tmp_path.iterdir()) == []
    # without `since`, the JQL is still bounded (v3 refuses unbounded queries)
    assert fake.requests[0].param("jql") == "created >= 1970-01-01 ORDER BY updated ASC"


def test_a_server_that_stays_down_fails_after_the_retries(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = FakeJira(3, fail_with=503)
    with serve(fake) as url:
        client = JiraClient(url, USER, TOKEN, api_version=3, max_retries=2, backoff_s=0.0)
        with pytest.raises(
            JiraClientError, match=r"returned HTTP 503 .* after 3 attempts: .*Service unavailable"
        ):
            client.pull(tmp_path, since=None, jql_extra="project = ENG")
    searches = [r for r in fake.requests if "search" in r.path]
    assert len(searches) == 3
    assert searches[0].param("jql") == "(project = ENG) ORDER BY updated ASC"
    assert TOKEN not in caplog.text


def test_from_env_names_the_missing_variable(monkeypatch):
    monkeypatch.setenv("JIRA_URL", "https://example.atlassian.net")
    monkeypatch.setenv("JIRA_USER", USER)
    monkeypatch.delenv("JIRA_API_TOKEN", raising=False)
    with pytest.raises(JiraClientError, match=r"^environment variable JIRA_API_TOKEN is not set"):
        JiraClient.from_env()
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    monkeypatch.setenv("JIRA_API_VERSION", "3")
    client = JiraClient.from_env()
    assert (client.base_url, client.user, client.api_version) == ("https://example.atlassian.net", USER, 3)


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_urls_and_messages_shown_to_users_carry_no_credentials():
    shown = safe_url("https://bob:hunter2@example.com:8443/api?access_token=abc123&page=2")
    assert shown == "https://example.com:8443/api?access_token=***&page=2"
    assert RetryingHttp(secrets=["abc123"]).redact("token abc123 leaked") == "token *** leaked"


@pytest.mark.parametrize(
    ("deployment", "search_path"),
    [
        ("Cloud", "/rest/api/3/search/jql"),
        ("Server", "/rest/api/2/search"),
        ("DataCenter", "/rest/api/2/search"),
    ],
)
def test_the_search_api_is_detected_from_server_info(tmp_path, deployment, search_path):
    site = FakeJiraSite(deployment, [_issue(n) for n in range(1, 6)], page_cap=2)
    with serve(site) as url:
        site.base_url = url
        client = JiraClient(url, USER, TOKEN)  # no JIRA_API_VERSION
        result = client.pull(tmp_path / "jira", since=SINCE)
    assert (result.pages_written, result.issues) == (3, 5)
    assert client.deployment == deployment
    assert [r.path for r in site.requests].count("/rest/api/2/serverInfo") == 1
    assert site.requests[0].path == "/rest/api/2/serverInfo"  # asked first: it also checks the URL
    assert {r.path for r in site.searches} == {search_path} and len(site.searches) == 3
    for path in result.files:
        assert jira.parse(path).rejects == []


def test_an_atlassian_net_host_is_cloud_without_a_request():
    client = JiraClient("https://example.atlassian.net", USER, TOKEN)
    assert client.api_version == 3 and client.deployment == "Cloud"
    assert client.http.requests_sent == 0


def test_jira_api_version_still_overrides_and_a_410_says_what_to_set(tmp_path):
    site = FakeJiraSite("Cloud", [_issue(1)])
    with serve(site) as url:
        with pytest.raises(JiraClientError) as info:
            JiraClient(url, USER, TOKEN, api_version=2).pull(tmp_path / "jira")
    assert "HTTP 410" in str(info.value) and "set JIRA_API_VERSION=3" in str(info.value)
    assert [r.path for r in site.requests] == ["/rest/api/2/search"]  # no detection, no retry of a 410


def test_a_url_that_is_no_jira_site_names_jira_url(tmp_path):
    site = FakeJiraSite("Server", [])
    with serve(site) as url:
        with pytest.raises(JiraClientError, match=r"HTTP 404.*check JIRA_URL") as info:
            JiraClient(f"{url}/wiki", USER, TOKEN).pull(tmp_path / "jira")
    assert len(site.requests) == 1 and TOKEN not in str(info.value)


def test_jira_api_version_from_the_environment(monkeypatch):
    monkeypatch.setenv("JIRA_URL", "https://jira.example.com")
    monkeypatch.setenv("JIRA_USER", USER)
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    monkeypatch.delenv("JIRA_API_VERSION", raising=False)
    assert JiraClient.from_env().requested_api_version is None  # detected at the first pull
    monkeypatch.setenv("JIRA_API_VERSION", "cloud")
    with pytest.raises(
        JiraClientError, match=r"^JIRA_API_VERSION must be 2 \(Server/Data Center\), 3 \(Cloud\)"
    ):
        JiraClient.from_env()
