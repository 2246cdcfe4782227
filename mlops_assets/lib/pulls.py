"""Live API pulls into the landing zone, with a watermark kept beside the pulled pages.

A pull writes the API's pages as files into ``<landing>/<source>/`` (the same parser then ingests
them like any export) and records the newest ``updated`` it saw in ``<landing>/<source>/.watermark.json``
(hidden files are never ingested). The next pull asks only for what changed since. The watermark is
written after the pages, so a pull that dies half-way repeats some pages next time (the raw layer
deduplicates them by content) and never skips any.

A pull has a scope (Jira projects and extra JQL, GitHub repositories, a start date): the watermark
records the scope it was reached under, and a pull under another scope starts again from the start
date (a project added later would otherwise be pulled only from the old watermark on).

:func:`misspelled_variables` names environment variables that look like a misspelling of one the
pulls read (``JIRA_BASE_URL`` for ``JIRA_URL``), since an unread variable leaves a pull silently off.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# PULL_VARIABLES: the variables each live pull reads and what each is for (messages and docs name them),
# listed with every other variable in settings.
from mlops_assets.lib.settings import PULL_VARIABLES, env

WATERMARK_FILE = ".watermark.json"

# What makes a pull live: without it the landing folder holds only the exports users drop.
PULL_SWITCH = {"jira": "JIRA_URL", "github": "GITHUB_REPOS"}
PREFIXES = {"jira": ("JIRA_",), "github": ("GITHUB_", "GH_")}
# Names other tools and tutorials use for the same settings.
ALIASES = {
    "JIRA_BASE_URL": "JIRA_URL",
    "JIRA_HOST": "JIRA_URL",
    "JIRA_SERVER": "JIRA_URL",
    "JIRA_SITE": "JIRA_URL",
    "JIRA_INSTANCE": "JIRA_URL",
    "JIRA_INSTANCE_URL": "JIRA_URL",
    "JIRA_ENDPOINT": "JIRA_URL",
    "JIRA_EMAIL": "JIRA_USER",
    "JIRA_USERNAME": "JIRA_USER",
    "JIRA_LOGIN": "JIRA_USER",
    "JIRA_USER_EMAIL": "JIRA_USER",
    "JIRA_TOKEN": "JIRA_API_TOKEN",
    "JIRA_APITOKEN": "JIRA_API_TOKEN",
    "JIRA_PASSWORD": "JIRA_API_TOKEN",
    "JIRA_PAT": "JIRA_API_TOKEN",
    "JIRA_ACCESS_TOKEN": "JIRA_API_TOKEN",
    "JIRA_PROJECT": "JIRA_PROJECTS",
    "JIRA_PROJECT_KEY": "JIRA_PROJECTS",
    "JIRA_PROJECT_KEYS": "JIRA_PROJECTS",
    "JIRA_QUERY": "JIRA_JQL",
    "JIRA_FILTER": "JIRA_JQL",
    "JIRA_SINCE": "JIRA_START_DATE",
    "JIRA_START": "JIRA_START_DATE",
    "GITHUB_REPO": "GITHUB_REPOS",
    "GITHUB_REPOSITORY": "GITHUB_REPOS",
    "GITHUB_REPOSITORIES": "GITHUB_REPOS",
    "GITHUB_PAT": "GITHUB_TOKEN",
    "GITHUB_ACCESS_TOKEN": "GITHUB_TOKEN",
    "GITHUB_API_TOKEN": "GITHUB_TOKEN",
    "GH_TOKEN": "GITHUB_TOKEN",
    "GITHUB_URL": "GITHUB_API_URL",
    "GITHUB_API": "GITHUB_API_URL",
    "GITHUB_SINCE": "GITHUB_START_DATE",
    "GITHUB_START": "GITHUB_START_DATE",
}
# Set by GitHub Actions on every runner (docs.github.com, "Variables"): never a misspelling there.
GITHUB_ACTIONS_VARIABLES = frozenset(
    {
        "GITHUB_ACTION",
        "GITHUB_ACTION_PATH",
        "GITHUB_ACTION_REPOSITORY",
        "GITHUB_ACTIONS",
        "GITHUB_ACTOR",
        "GITHUB_ACTOR_ID",
        "GITHUB_BASE_REF",
        "GITHUB_ENV",
        "GITHUB_EVENT_NAME",
        "GITHUB_EVENT_PATH",
        "GITHUB_GRAPHQL_URL",
        "GITHUB_HEAD_REF",
        "GITHUB_JOB",
        "GITHUB_OUTPUT",
        "GITHUB_PATH",
        "GITHUB_REF",
        "GITHUB_REF_NAME",
        "GITHUB_REF_PROTECTED",
        "GITHUB_REF_TYPE",
        "GITHUB_REPOSITORY",
        "GITHUB_REPOSITORY_ID",
        "GITHUB_REPOSITORY_OWNER",
        "GITHUB_REPOSITORY_OWNER_ID",
        "GITHUB_RETENTION_DAYS",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_NUMBER",
        "GITHUB_SERVER_URL",
        "GITHUB_SHA",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TRIGGERING_ACTOR",
        "GITHUB_WORKFLOW",
        "GITHUB_WORKFLOW_REF",
        "GITHUB_WORKFLOW_SHA",
        "GITHUB_WORKSPACE",
        "GITHUB_STATE",
    }
)


class PullClient(Protocol):
    def pull(self, landing_dir: Path, since: datetime | None = None) -> Any: ...


@dataclass
class PullOutcome:
    """What a pull did, for asset metadata."""

    pages_written: int
    issues: int
    since: datetime | None
    new_watermark: datetime | None
    restarted: str = (
        ""  # why the pull started over from the start date ("" when it went on from the watermark)
    )


def misspelled_variables(source: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per set variable that looks like a misspelling of one ``source``'s pull reads.

    Only look-alikes whose intended variable is unset are named (an extra variable next to the
    right one changes nothing), from the alias table or by spelling (difflib, ratio >= 0.8). A
    look-alike of a credential or scope variable (GH_TOKEN, JIRA_TOKEN) counts only when the pull
    is meant to run (its switch, or a look-alike of it, is set): other tools use such names too.
    """
    environ = os.environ if environ is None else environ
    known = PULL_VARIABLES[source]
    in_actions = environ.get("GITHUB_ACTIONS", "").lower() == "true"
    lookalikes = {}
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIXES[source]) or name in known or not environ[name].strip():
            continue
        if in_actions and upper in GITHUB_ACTIONS_VARIABLES:
            continue
        meant = ALIASES.get(upper) or next(
            iter(difflib.get_close_matches(upper, known, n=1, cutoff=0.8)), None
        )
        if meant is not None and not environ.get(meant, "").strip():
            lookalikes[name] = meant
    switch = PULL_SWITCH[source]
    meant_to_run = bool(environ.get(switch, "").strip()) or switch in lookalikes.values()
    return [
        f"{name} is set but the {source} pull reads {meant} ({known[meant]}), which is not set: "
        f"rename {name} to {meant}"
        for name, meant in lookalikes.items()
        if meant == switch or meant_to_run
    ]


def parse_start_date(text: str | None, variable: str) -> datetime | None:
    """``YYYY-MM-DD`` (or an ISO 8601 timestamp; naive means UTC) as a UTC datetime; None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{variable}={text!r} is not a date: give YYYY-MM-DD (e.g. 2025-01-01) or unset it "
            "to pull all history"
        ) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value > datetime.now(UTC):
        raise ValueError(f"{variable}={text!r} is in the future: nothing would be pulled; give a past date")
    return value


def read_watermark(folder: Path) -> datetime | None:
    return _read_state(folder)[0]


def _read_state(folder: Path) -> tuple[datetime | None, str]:
    path = folder / WATERMARK_FILE
    if not path.exists():
        return None, ""
    try:
        state = json.loads(path.read_text())
        return datetime.fromisoformat(state["updated_since"]), str(state.get("scope", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a watermark file ({exc}): delete it to pull everything again"
        ) from None


def write_watermark(folder: Path, when: datetime, scope: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WATERMARK_FILE + ".tmp")
    tmp.write_text(json.dumps({"updated_since": when.isoformat(), **({"scope": scope} if scope else {})}))
    os.replace(tmp, folder / WATERMARK_FILE)


def pull_into(
    client: PullClient, folder: Path, start: datetime | None = None, scope: str = ""
) -> PullOutcome:
    """Pull everything updated since the folder's watermark (not before ``start``), then advance the watermark.

    ``scope`` describes what the client pulls (its projects, query, repositories); with ``start`` it
    is recorded beside the watermark. A watermark reached under another scope is not used: the pull
    starts again from ``start`` (everything when None); the raw layer keeps re-pulled records once.
    """
    key = scope + (f"; from {start.isoformat()}" if start else "")
    since, previous = _read_state(folder)
    restarted = ""
    if since is not None and previous != key:
        restarted = f"the scope changed (was: {previous or 'everything'}; now: {key or 'everything'})"
        since = None
    if start is not None and (since is None or since < start):
        since = start
    result = client.pull(folder, since=since)
    new = result.new_watermark
    if new is not None and (restarted or since is None or new > since or previous != key):
        write_watermark(folder, new, key)
    return PullOutcome(result.pages_written, result.issues, since, new, restarted)


def pull_status(source: str, configured: bool, target: str, credentials: Mapping[str, str]) -> str:
    """One line saying whether ``source``'s live pull is on, and if not, which variable turns it on."""
    switch = PULL_SWITCH[source]
    if not configured:
        others = ", ".join(n for n in PULL_VARIABLES[source] if n != switch)
        return (
            f"not configured: {switch} is not set, so landing/{source} holds only the exports users drop "
            f"(set {switch}, with {others} as needed, e.g. in the project's .env)"
        )
    missing = [name for name, value in credentials.items() if not value]
    if missing:
        return f"configured but incomplete: {switch} is set, {', '.join(missing)} not (the pull fails until it is)"
    return f"live pull from {target}"


def scope_text(scope: str, start: datetime | None) -> str:
    """The scope in words for metadata: ``projects PAY; updated on or after 2025-01-01``."""
    parts = [scope or "everything the credentials can see"]
    parts.append(f"updated on or after {start:%Y-%m-%d %H:%M} UTC" if start else "all history")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------
# the clients: one validated constructor per source (the resources and JiraClient/GitHubClient.from_env)


def _missing(values: Mapping[str, str | None]) -> list[str]:
    return [name for name, value in values.items() if not (value or "").strip()]


def jira_client(
    url: str,
    user: str,
    api_token: str,
    *,
    api_version: str | int | None = None,
    projects: str = "",
    jql: str = "",
    **options: Any,
):
    """A JiraClient for the site, or a JiraClientError naming each missing setting and where to get it."""
    from mlops_assets.lib.sources.jira_client import JiraClient, JiraClientError, parse_api_version

    missing = _missing({"JIRA_URL": url, "JIRA_USER": user, "JIRA_API_TOKEN": api_token})
    if missing:
        raise JiraClientError(
            f"environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not set: set JIRA_URL (e.g. https://example.atlassian.net), "
            "JIRA_USER (your login e-mail) and JIRA_API_TOKEN (https://id.atlassian.com/manage-profile/security/api-tokens)"
        )
    return JiraClient(
        url,
        user,
        api_token,
        api_version=parse_api_version(api_version),
        projects=projects,
        jql_extra=jql,
        **options,
    )


def github_client(token: str, repos: str | list[str], *, api_url: str = "", **options: Any):
    """A GitHubClient for the repositories, or a GitHubClientError naming each missing setting."""
    from mlops_assets.lib.sources.github_client import GitHubClient, GitHubClientError

    text = repos if isinstance(repos, str) else ",".join(repos)
    missing = _missing({"GITHUB_TOKEN": token, "GITHUB_REPOS": text})
    if missing:
        raise GitHubClientError(
            f"environment variable{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not set: set GITHUB_TOKEN (a token that can read the "
            "repositories' issues; fine-grained: 'Issues: read') and GITHUB_REPOS (owner/repo[,owner/repo...])"
        )
    if api_url.strip():
        options["api_url"] = api_url.strip()
    return GitHubClient(token, text, **options)


def client_from_env(source: str, environ: Mapping[str, str] | None = None, **options: Any):
    """``source``'s client from its variables (PULL_VARIABLES), for scripts; ``options`` win over the environment."""
    if source == "jira":
        options.setdefault("api_version", env("JIRA_API_VERSION", environ))
        options.setdefault("projects", env("JIRA_PROJECTS", environ))
        if "jql_extra" in options:  # JiraClient's own name for it
            options["jql"] = options.pop("jql_extra")
        options.setdefault("jql", env("JIRA_JQL", environ))
        return jira_client(
            env("JIRA_URL", environ), env("JIRA_USER", environ), env("JIRA_API_TOKEN", environ), **options
        )
    if source == "github":
        options.setdefault("api_url", env("GITHUB_API_URL", environ))
        return github_client(env("GITHUB_TOKEN", environ), env("GITHUB_REPOS", environ), **options)
    raise ValueError(f"no live pull for {source!r}: {', '.join(PULL_VARIABLES)}")
