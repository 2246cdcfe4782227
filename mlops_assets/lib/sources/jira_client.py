"""Pull Jira issues updated since a watermark into the landing zone, one JSON file per search page.

The files are the API's own search pages, so the ordinary parser (:mod:`jira`) ingests them like
any other drop. API v2 (Jira Server/Data Center, and Cloud where still served) pages through
``/rest/api/2/search`` with ``startAt``; API v3 (Jira Cloud) through ``/rest/api/3/search/jql``
with ``nextPageToken`` (that endpoint has no ``startAt`` and no ``total``).

Which one is picked by itself unless JIRA_API_VERSION says: Jira Cloud answers ``/rest/api/2/search``
with 410 Gone since 2025 (Atlassian CHANGE-2046), Server/Data Center has no v3. A ``*.atlassian.net``
(or legacy ``*.jira.com``) host is Cloud; any other host is asked once,
``GET /rest/api/2/serverInfo`` (served anonymously by every deployment), whose ``deploymentType``
is ``Cloud``, ``Server`` or ``DataCenter``. That first request doubles as the configuration check:
a wrong host, a closed port, bad credentials or a path that is no Jira fail at once, naming the
variable to fix.

The pull's scope: ``projects`` (JIRA_PROJECTS) becomes ``project in ("PAY", "OPS")`` and ``jql_extra``
(JIRA_JQL) is ANDed in parentheses, so a company-wide Jira Cloud is not pulled in full.

JQL compares dates in the time zone of the user's Jira profile, so the watermark is converted to
that zone (asked once from ``/myself``) before it goes into ``updated >= "yyyy/MM/dd HH:mm"``.
JQL has minute resolution and ``>=``: the issues updated in the watermark's minute come again; the
raw layer keeps identical records once.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mlops_assets.lib.sources.http import HttpError, RetryingHttp, safe_url

log = logging.getLogger(__name__)

# JQL reads a naive date in the profile's zone; if that zone is unknown, start early enough that
# no offset (UTC-12..UTC+14) can skip an update.
_UNKNOWN_ZONE_MARGIN = timedelta(hours=14)


class JiraClientError(RuntimeError):
    """The Jira pull cannot go on; the message says what to fix (it never contains the token)."""


CLOUD_HOST_SUFFIXES = (".atlassian.net", ".jira.com")
_PROJECT_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def parse_projects(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """JIRA_PROJECTS (``PAY, OPS``) as keys; a key that is not a Jira project key raises, naming the variable."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    keys = tuple(dict.fromkeys(str(item).strip().upper() for item in items if str(item).strip()))
    bad = [key for key in keys if not _PROJECT_KEY.fullmatch(key)]
    if bad:
        raise JiraClientError(
            f"JIRA_PROJECTS has {', '.join(repr(b) for b in bad)}, not a project key: give keys "
            "like PAY,OPS (letters, digits, underscores; the prefix of an issue key)"
        )
    return keys


def parse_api_version(value: str | int | None) -> int | None:
    """JIRA_API_VERSION as the client takes it: 2, 3, or None (empty: detect from the site)."""
    text = "" if value is None else str(value).strip()
    if text in ("", "0", "auto"):
        return None
    if text not in ("2", "3"):
        raise JiraClientError(
            f"JIRA_API_VERSION must be 2 (Server/Data Center), 3 (Cloud) or unset (detect), not {text!r}"
        )
    return int(text)


@dataclass
class PullResult:
    """What one pull wrote: page files, issues in them, and the watermark for the next pull."""

    pages_written: int
    issues: int
    new_watermark: datetime | None
    files: list[Path] = field(default_factory=list)


def _updated_at(issue: Any) -> datetime | None:
    try:
        dt = datetime.fromisoformat(issue["fields"]["updated"])
    except (KeyError, TypeError, ValueError):
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class JiraClient:
    """Jira REST client (Basic auth: user e-mail + API token in Cloud, user + password/PAT elsewhere)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        api_token: str,
        api_version: int | None = None,
        page_size: int = 100,
        session: requests.Session | None = None,
        projects: str | list[str] | tuple[str, ...] | None = None,
        jql_extra: str = "",
        **http_options: Any,
    ):
        if api_version not in (None, 2, 3):
            raise ValueError(f"api_version must be 2, 3 or None (detect), not {api_version!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"JIRA_URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.requested_api_version = api_version
        self._api_version = api_version
        self.deployment: str | None = None  # "Cloud", "Server", "DataCenter" once detected
        self.page_size = page_size
        self.projects = parse_projects(projects)
        self.jql_extra = (jql_extra or "").strip()
        if re.search(r"\border\s+by\b", self.jql_extra, re.IGNORECASE):
            raise JiraClientError(
                f"JIRA_JQL={self.jql_extra!r} has an ORDER BY: leave it out (the pull orders by "
                "updated, which its watermark needs)"
            )
        self.http = RetryingHttp(
            session,
            auth=(user, api_token),
            headers={"Accept": "application/json"},
            secrets=[api_token],
            **http_options,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> JiraClient:
        """A client from JIRA_URL, JIRA_USER, JIRA_API_TOKEN (optional: JIRA_API_VERSION, JIRA_PROJECTS, JIRA_JQL)."""
        from mlops_assets.lib.pulls import client_from_env  # one validated constructor, as JiraResource

        return client_from_env("jira", **kwargs)

    @property
    def scope(self) -> str:
        """What this client pulls, in words: ``projects PAY, OPS; JQL (issuetype != Epic)``; "" for everything."""
        parts = [f"projects {', '.join(self.projects)}"] if self.projects else []
        return "; ".join(parts + ([f"JQL ({self.jql_extra})"] if self.jql_extra else []))

    # -----------------------------------------------------------------------------------------

    @property
    def api_version(self) -> int:
        """The REST API version the pull uses: JIRA_API_VERSION if set, else detected (one request at most)."""
        if self._api_version is None:
            self._api_version = self._detect_api_version()
        return self._api_version

    def _detect_api_version(self) -> int:
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host.endswith(CLOUD_HOST_SUFFIXES):
            self.deployment = "Cloud"
            log.info("Jira at %s is Cloud (by its host): searching with /rest/api/3/search/jql", host)
            return 3
        info = self._get("serverInfo", version=2)
        kind = info.get("deploymentType") if isinstance(info, dict) else None
        if not isinstance(info, dict) or not any(k in info for k in ("deploymentType", "baseUrl", "version")):
            raise JiraClientError(
                f"{safe_url(self.base_url)}/rest/api/2/serverInfo answered without Jira's server info: "
                "check JIRA_URL is the Jira site root (e.g. https://example.atlassian.net, or https://jira.example.com)"
            )
        self.deployment = str(kind or "Server")
        version = 3 if self.deployment.lower() == "cloud" else 2
        log.info("Jira at %s is %s (serverInfo): searching with API v%d", host, self.deployment, version)
        return version

    def _get(self, path: str, params: dict[str, Any] | None = None, version: int | None = None) -> Any:
        url = f"{self.base_url}/rest/api/{version or self.api_version}/{path}"
        try:
            return self.http.get_json(url, params=params)
        except HttpError as exc:
            if exc.status is None and not exc.transient:
                raise JiraClientError(
                    f"cannot reach Jira at {safe_url(self.base_url)} ({exc.reason}): check JIRA_URL "
                    "(the site root, e.g. https://example.atlassian.net) and that this machine can reach it"
                ) from None
            if exc.status is not None and exc.status < 400:
                raise JiraClientError(
                    f"GET {exc.url} answered HTTP {exc.status} with something that is not JSON (a login page, a "
                    "proxy?): check JIRA_URL is the Jira site root, e.g. https://example.atlassian.net"
                ) from None
            if exc.status == 401:
                raise JiraClientError(
                    f"Jira rejected the credentials for user {self.user} (HTTP 401): "
                    "check JIRA_USER and JIRA_API_TOKEN"
                ) from None
            if exc.status == 403:
                raise JiraClientError(
                    f"Jira refused access for user {self.user} (HTTP 403): check JIRA_USER and JIRA_API_TOKEN, "
                    "that the user may browse the projects, and whether Jira now asks this user for a CAPTCHA "
                    "(log in once in a browser)"
                ) from None
            if exc.status == 404:
                raise JiraClientError(
                    f"{exc.url} was not found (HTTP 404): check JIRA_URL (the site root, without /jira or /rest "
                    f"unless the site lives there) and JIRA_API_VERSION (v{version or self.api_version} here; "
                    "Jira Cloud serves search on v3 at /rest/api/3/search/jql, Server/Data Center on v2)"
                ) from None
            if exc.status == 410:
                raise JiraClientError(
                    f"{exc.url} is gone (HTTP 410): this is Jira Cloud, which no longer serves API v2 search "
                    "(Atlassian CHANGE-2046): set JIRA_API_VERSION=3, or unset it to let the pull detect Cloud"
                ) from None
            if exc.status == 400:
                raise JiraClientError(
                    f"Jira refused the query (HTTP 400): {exc.body_excerpt} (check JIRA_JQL and "
                    "JIRA_PROJECTS: every project key must exist and be visible to JIRA_USER)"
                ) from None
            raise JiraClientError(str(exc)) from None

    def user_timezone(self) -> str | None:
        """The IANA time zone of the user's Jira profile (JQL reads dates in it), None if unknown."""
        me = self._get("myself")
        zone = me.get("timeZone") if isinstance(me, dict) else None
        return zone if isinstance(zone, str) and zone else None

    def jql(self, since: datetime | None, jql_extra: str | None = None) -> str:
        """``updated >= "<since, profile's zone>" [AND project in (...)] [AND (extra)] ORDER BY updated ASC``.

        ``jql_extra`` None means the client's own (JIRA_JQL).
        """
        jql_extra = self.jql_extra if jql_extra is None else jql_extra
        clauses = []
        if since is not None:
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
            zone_name = self.user_timezone()
            local = None
            if zone_name:
                from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

                try:
                    local = since.astimezone(ZoneInfo(zone_name))
                except (ZoneInfoNotFoundError, ValueError):
                    local = None
            if local is None:
                local = since.astimezone(UTC) - _UNKNOWN_ZONE_MARGIN
            clauses.append(f'updated >= "{local:%Y/%m/%d %H:%M}"')
        if self.projects:
            clauses.append("project in (" + ", ".join(f'"{key}"' for key in self.projects) + ")")
        if jql_extra.strip():
            clauses.append(f"({jql_extra.strip()})")
        # v3 /search/jql refuses unbounded queries: a clause that is always true bounds it.
        where = " AND ".join(clauses) or "created >= 1970-01-01"
        return f"{where} ORDER BY updated ASC"

    def pull(
        self, landing_dir: Path, since: datetime | None = None, jql_extra: str | None = None
    ) -> PullResult:
        """Fetch every issue updated since ``since`` (all if None), with changelog, as page files in ``landing_dir``."""
        landing_dir = Path(landing_dir)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        landing_dir.mkdir(parents=True, exist_ok=True)
        query = self.jql(since, jql_extra)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        result = PullResult(pages_written=0, issues=0, new_watermark=since)
        params: dict[str, Any] = {
            "jql": query,
            "maxResults": self.page_size,
            "fields": "*all",
            "expand": "changelog,names",
        }
        start_at = 0
        token: str | None = None
        while True:
            if self.api_version == 2:
                page = self._get("search", {**params, "startAt": start_at})
            else:
                page = self._get("search/jql", {**params, **({"nextPageToken": token} if token else {})})
            issues = page.get("issues") if isinstance(page, dict) else None
            if not isinstance(issues, list):
                raise JiraClientError(
                    f"Jira's search answered without an 'issues' list (keys {sorted(page)[:10] if isinstance(page, dict) else type(page).__name__}): "
                    "check JIRA_URL points at the Jira site root"
                )
            if issues:  # an empty answer (nothing new) leaves no file behind
                result.files.append(self._write_page(landing_dir, stamp, result.pages_written + 1, page))
                result.pages_written += 1
            result.issues += len(issues)
            for issue in issues:
                updated = _updated_at(issue)
                if updated and (result.new_watermark is None or updated > result.new_watermark):
                    result.new_watermark = updated
            if self.api_version == 2:
                start_at += len(issues)
                total = page.get("total")
                if not issues or (isinstance(total, int) and start_at >= total):
                    break
            else:
                token = page.get("nextPageToken")
                if not issues or page.get("isLast") is True or not token:
                    break
        return result

    @staticmethod
    def _write_page(landing_dir: Path, stamp: str, number: int, page: Any) -> Path:
        """Write atomically (temporary name, then rename) so ingestion never reads half a page."""
        final = landing_dir / f"api-{stamp}-p{number:04d}.json"
        tmp = landing_dir / f".{final.name}.tmp"
        try:
            data = json.dumps(page, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate escape in the answer (an emoji cut in two) has no UTF-8 form: written as the
            # escape Jira sent (ASCII JSON), which ingestion reads as U+FFFD (sources.base.mend_lone_surrogates)
            data = json.dumps(page).encode("ascii")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final
