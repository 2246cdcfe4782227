"""The live pulls say whether they are configured, name misspelled variables, and carry their scope.

Issue 18.4 (a JIRA_BASE_URL instead of JIRA_URL left landing/jira silently pulling nothing) and 22.3
(projects / JQL / repositories / a start date reach the API request). Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest

from mlops_assets.definitions import build_resources, defs
from mlops_assets.lib.pulls import PULL_VARIABLES, misspelled_variables
from mlops_assets.resources import GitHubResource, JiraResource
from mlops_assets_tests.fake_apis import FakeJiraSite, Reply, serve

TOKEN = "s3cret-token-value"
PULL_ENV = [
    *PULL_VARIABLES["jira"],
    *PULL_VARIABLES["github"],
    "JIRA_BASE_URL",
    "GITHUB_REPO",
    "GITHUB_ACTIONS",
]


def _issue(n: int, updated: str, project: str = "PAY") -> dict:
    return {
        "id": str(n),
        "key": f"{project}-{n}",
        "fields": {
            "summary": f"issue {n}",
            "created": "2025-03-01T09:00:00.000+0000",
            "updated": updated,
            "issuetype": {"name": "Task"},
            "priority": {"name": "High"},
            "project": {"key": project},
            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
        },
    }


@pytest.fixture
def clean_env(monkeypatch):
    for name in PULL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _run(tmp_path, landing_dir, resources=None, key="landing/jira", **kwargs):
    instance = dg.DagsterInstance.ephemeral()
    all_resources = build_resources(str(tmp_path / "wh.duckdb"), str(landing_dir))
    all_resources.update(resources or {})
    result = dg.materialize(
        list(defs.assets), selection=[key], resources=all_resources, instance=instance, **kwargs
    )
    logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    return result, logs


def _meta(result, key="landing/jira") -> dict:
    node = key.replace("/", "__")
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JIRA_BASE_URL": "https://acme.atlassian.net"}, ("JIRA_BASE_URL", "JIRA_URL")),
        ({"JIRA_URLL": "https://acme.atlassian.net"}, ("JIRA_URLL", "JIRA_URL")),  # a typo, found by spelling
        ({"JIRA_URL": "https://acme.atlassian.net", "JIRA_TOKEN": "t"}, ("JIRA_TOKEN", "JIRA_API_TOKEN")),
        (
            {"JIRA_HOST": "https://acme.atlassian.net", "JIRA_EMAIL": "me@acme.com"},
            ("JIRA_EMAIL", "JIRA_USER"),
        ),
    ],
)
def test_jira_lookalikes_are_named_with_the_variable_to_set(env, named):
    message = next(m for m in misspelled_variables("jira", env) if m.startswith(named[0]))
    assert all(name in message for name in named) and f"rename {named[0]} to {named[1]}" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_REPO": "acme/web"}, "GITHUB_REPOS"),
        ({"GH_TOKEN": "t", "GITHUB_REPOS": "acme/web"}, "GITHUB_TOKEN"),
        ({"GITHUB_REPOSITORY": "acme/web"}, "GITHUB_REPOS"),  # set by hand, outside GitHub Actions
        ({"GITHUB_REPOSITORY": "acme/web", "GITHUB_ACTIONS": "true"}, None),  # a runner's own variable
        (
            {"GITHUB_REPO": "acme/web", "GITHUB_REPOS": "acme/web"},
            None,
        ),  # the right one is set: nothing to say
        ({"GITHUB_WORKSPACE": "/w", "GITHUB_SHA": "abc", "JIRA_SOMETHING_ELSE": "x"}, None),  # no look-alike
        (
            {"GH_TOKEN": "t", "JIRA_TOKEN": "t"},
            None,
        ),  # the gh CLI's token, another tool's: no pull is meant to run
    ],
)
def test_github_lookalikes_but_not_ci_variables_or_unrelated_names(env, expected):
    found = misspelled_variables("github", env) + misspelled_variables("jira", env)
    assert (found == []) if expected is None else (len(found) == 1 and f"reads {expected} " in found[0])


def test_jira_base_url_instead_of_jira_url_is_said_in_metadata_and_log(tmp_path, landing_dir, clean_env):
    site = FakeJiraSite("Cloud", [_issue(1, "2025-03-02T10:00:00.000+0000")])
    with serve(site) as base_url:
        clean_env.setenv("JIRA_BASE_URL", base_url)
        clean_env.setenv("JIRA_USER", "me@example.com")
        clean_env.setenv("JIRA_API_TOKEN", TOKEN)
        result, logs = _run(
            tmp_path, landing_dir
        )  # resources from the environment, as `dagster dev` builds them
        assert result.success and site.requests == []  # the pull is off: nothing asked the site
        meta = _meta(result)
        assert meta["pull"].startswith("not configured: JIRA_URL is not set")
        assert (
            "JIRA_BASE_URL is set" in meta["environment_warnings"]
            and "rename JIRA_BASE_URL to JIRA_URL" in logs
        )
        assert "landing/jira: not configured" in logs and TOKEN not in logs

        clean_env.delenv("JIRA_BASE_URL")
        clean_env.setenv("JIRA_URL", base_url)
        result, logs = _run(tmp_path, landing_dir)
    meta = _meta(result)
    assert meta["pull"] == f"live pull from Jira at {base_url}" and meta["environment_warnings"] == "none"
    assert meta["pulled_issues"] == 1 and "landing/jira: live pull from Jira" in logs


def test_an_unconfigured_github_pull_says_which_variable_turns_it_on(tmp_path, landing_dir, clean_env):
    clean_env.setenv("GITHUB_TOKEN", TOKEN)
    result, logs = _run(tmp_path, landing_dir, key="landing/github")
    meta = _meta(result, "landing/github")
    assert (
        meta["pull"].startswith("not configured: GITHUB_REPOS is not set")
        and "GITHUB_START_DATE" in meta["pull"]
    )
    assert "landing/github: not configured" in logs


def test_jira_projects_jql_and_start_date_reach_the_search_and_a_new_scope_starts_over(tmp_path, landing_dir):
    site = FakeJiraSite(
        "Server", [_issue(1, "2025-03-05T10:00:00.000+0000"), _issue(2, "2025-03-06T10:00:00.000+0000")]
    )
    with serve(site) as base_url:
        scope = {
            "url": base_url,
            "user": "me@example.com",
            "api_token": TOKEN,
            "jql": "issuetype != Epic",
            "start_date": "2025-03-02",
        }
        jira = JiraResource(projects="pay, OPS", **scope)
        result, logs = _run(tmp_path, landing_dir, {"jira": jira})
        first = site.searches[0].param("jql")
        assert first == (
            'updated >= "2025/03/02 00:00" AND project in ("PAY", "OPS") AND (issuetype != Epic) '
            "ORDER BY updated ASC"
        )
        meta = _meta(result)
        assert meta["scope"] == (
            "projects PAY, OPS; JQL (issuetype != Epic); updated on or after 2025-03-02 00:00 UTC"
        )
        assert "scope: projects PAY, OPS" in logs
        # the next pull under the same scope goes on from the watermark
        _run(tmp_path, landing_dir, {"jira": jira})
        assert (
            site.searches[-1]
            .param("jql")
            .startswith('updated >= "2025/03/06 10:00" AND project in ("PAY", "OPS")')
        )
        # a project added later is pulled from the start date, not from the old watermark
        wider = JiraResource(projects="PAY,OPS,WEB", **scope)
        result, logs = _run(tmp_path, landing_dir, {"jira": wider})
    assert (
        site.searches[-1]
        .param("jql")
        .startswith('updated >= "2025/03/02 00:00" AND project in ("PAY", "OPS", "WEB")')
    )
    assert (
        _meta(result)["restarted"].startswith("the scope changed")
        and "pulled from the start date again" in logs
    )
    state = json.loads((landing_dir / "jira" / ".watermark.json").read_text())
    assert state["scope"].startswith("projects PAY, OPS, WEB") and state["updated_since"].startswith(
        "2025-03-06T10:00"
    )


def test_github_start_date_is_the_since_parameter_of_the_first_pull(tmp_path, landing_dir):
    seen = []

    def handler(req):
        seen.append(req)
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"message": "Bad credentials"})
        return Reply(
            200,
            [
                {
                    "number": 1,
                    "title": "t",
                    "state": "open",
                    "updated_at": "2025-03-05T10:00:00Z",
                    "created_at": "2025-03-01T10:00:00Z",
                    "html_url": "https://github.com/acme/web/issues/1",
                }
            ],
        )

    with serve(handler) as base_url:
        github = GitHubResource(
            token=TOKEN, repos="acme/web, acme/api", api_url=base_url, start_date="2025-03-02"
        )
        result, _ = _run(tmp_path, landing_dir, {"github": github}, key="landing/github")
    assert [(r.path, r.param("since")) for r in seen] == [
        ("/repos/acme/web/issues", "2025-03-02T00:00:00Z"),
        ("/repos/acme/api/issues", "2025-03-02T00:00:00Z"),
    ]
    assert _meta(result, "landing/github")["scope"] == (
        "repositories acme/web, acme/api; updated on or after 2025-03-02 00:00 UTC"
    )


@pytest.mark.parametrize(
    ("fields", "variable"),
    [
        ({"start_date": "03/02/2025"}, "JIRA_START_DATE"),
        ({"start_date": "2999-01-01"}, "JIRA_START_DATE"),
        ({"projects": "PAY, not a key"}, "JIRA_PROJECTS"),
        ({"jql": "project = PAY ORDER BY created"}, "JIRA_JQL"),
    ],
)
def test_a_bad_scope_fails_the_pull_naming_the_variable_before_any_request(
    tmp_path, landing_dir, fields, variable
):
    site = FakeJiraSite("Server", [])
    with serve(site) as base_url:
        jira = JiraResource(url=base_url, user="me@example.com", api_token=TOKEN, **fields)
        result, _ = _run(tmp_path, landing_dir, {"jira": jira}, raise_on_error=False)
    assert not result.success and site.requests == []
    assert variable in result.get_step_failure_events()[0].step_failure_data.error.message


def test_the_scope_is_resource_config_the_ui_shows_and_comes_from_the_environment(clean_env):
    clean_env.setenv("JIRA_PROJECTS", "PAY")
    clean_env.setenv("JIRA_START_DATE", "2025-01-01")
    clean_env.setenv("GITHUB_START_DATE", "2025-02-01")
    resources = build_resources()
    assert resources["jira"].projects == dg.EnvVar("JIRA_PROJECTS")  # the UI shows the variable's name
    assert resources["github"].start_date == dg.EnvVar("GITHUB_START_DATE")
    fields = JiraResource.to_config_schema().as_field().config_type.fields
    assert {"projects", "jql", "start_date"} <= set(fields) and "JIRA_PROJECTS" in fields[
        "projects"
    ].description
