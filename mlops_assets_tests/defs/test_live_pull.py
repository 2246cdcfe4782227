"""landing/jira pulls from a live (local) Jira through the assets, then the data reaches clean.tasks."""

from __future__ import annotations

import base64
import json

import dagster as dg
import polars as pl

from mlops_assets.definitions import build_resources, defs
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.resources import JiraResource
from mlops_assets_tests.fake_apis import FakeJiraSite, Reply, jira_server_info, serve

TOKEN = "s3cret-token-value"


def _issue(n: int, updated: str) -> dict:
    return {
        "id": str(n),
        "key": f"LIVE-{n}",
        "fields": {
            "summary": f"issue {n}",
            "created": "2025-03-01T09:00:00.000+0000",
            "updated": updated,
            "issuetype": {"name": "Task"},
            "priority": {"name": "High"},
            "project": {"key": "LIVE"},
            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
            "duedate": "2025-04-01",
        },
    }


def test_live_jira_pull_lands_pages_ingests_them_and_advances_the_watermark(tmp_path, landing_dir):
    issues = [_issue(n, f"2025-03-0{n}T10:00:00.000+0000") for n in range(1, 6)]
    seen_jql: list[str] = []
    expected = "Basic " + base64.b64encode(f"me@example.com:{TOKEN}".encode()).decode()

    def handler(req):
        if req.headers.get("Authorization") != expected:
            return Reply(401, {"errorMessages": ["unauthorized"]})
        if req.path == "/rest/api/2/serverInfo":  # JIRA_API_VERSION unset: the pull asks what this Jira is
            return Reply(200, jira_server_info("Server", "http://jira.local"))
        if req.path.endswith("/myself"):
            return Reply(200, {"timeZone": "UTC"})
        seen_jql.append(req.param("jql"))
        start = int(req.param("startAt", "0"))
        page = [] if "updated >=" in (req.param("jql") or "") else issues[start : start + 2]
        return Reply(
            200,
            {
                "startAt": start,
                "maxResults": 2,
                "total": 0 if "updated >=" in req.param("jql") else 5,
                "issues": page,
            },
        )

    with serve(handler) as base_url:
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        resources["jira"] = JiraResource(url=base_url, user="me@example.com", api_token=TOKEN)
        selection = [
            "landing/jira",
            "raw/jira_tasks",
            "raw/jira_events",
            "raw/jira_comments",
            "clean/tasks",
            "clean/task_events",
            "clean/quarantine",
        ]
        result = dg.materialize(list(defs.assets), selection=selection, resources=resources)
        assert result.success
        meta = result.asset_materializations_for_node("landing__jira")[0].metadata
        assert meta["pulled_issues"].value == 5
        tasks = Warehouse(tmp_path / "wh.duckdb").read_table("clean.tasks")
        assert sorted(tasks["key"]) == [f"LIVE-{n}" for n in range(1, 6)]
        assert tasks.filter(pl.col("key") == "LIVE-1")["priority"][0] == "high"
        watermark = json.loads((landing_dir / "jira" / ".watermark.json").read_text())
        assert watermark["updated_since"].startswith("2025-03-05T10:00")
        # The second pull asks only for what changed since the watermark, and finds nothing new.
        again = dg.materialize(list(defs.assets), selection=["landing/jira"], resources=resources)
        assert again.success
        assert 'updated >= "2025/03/05 10:00"' in seen_jql[-1]
        assert again.asset_materializations_for_node("landing__jira")[0].metadata["pulled_issues"].value == 0


def test_bad_token_fails_the_pull_with_one_line_and_no_secret(tmp_path, landing_dir):
    with serve(lambda req: Reply(401, {"errorMessages": ["nope"]})) as base_url:
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        resources["jira"] = JiraResource(url=base_url, user="me@example.com", api_token=TOKEN)
        result = dg.materialize(
            list(defs.assets), selection=["landing/jira"], resources=resources, raise_on_error=False
        )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "JIRA_API_TOKEN" in message and TOKEN not in message


def test_a_jira_cloud_site_is_pulled_without_jira_api_version(tmp_path, landing_dir):
    issues = [_issue(n, f"2025-03-0{n}T10:00:00.000+0000") for n in range(1, 6)]
    site = FakeJiraSite("Cloud", issues)
    with serve(site) as base_url:
        resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
        resources["jira"] = JiraResource(url=base_url, user="me@example.com", api_token=TOKEN)
        result = dg.materialize(list(defs.assets), selection=["landing/jira"], resources=resources)
    assert result.success
    assert result.asset_materializations_for_node("landing__jira")[0].metadata["pulled_issues"].value == 5
    assert {r.path for r in site.searches} == {
        "/rest/api/3/search/jql"
    }  # never the v2 search Cloud answers 410
