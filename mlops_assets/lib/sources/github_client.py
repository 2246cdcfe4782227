"""Pull GitHub issues updated since a watermark into the landing zone, one JSON file per API page.

``GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=...`` per repository,
following the ``Link: <...>; rel="next"`` header. The files are the API's own pages, so the
ordinary parser (:mod:`github`) ingests them like any other drop (pull requests come mixed in and
are skipped there). Ascending ``updated`` order means an issue edited during the pull moves to a
later page rather than out of reach; ``since`` is inclusive, so the watermark's issue comes again
and the raw layer keeps identical records once.

Rate limits, as GitHub documents them: a 403 or 429 with ``x-ratelimit-remaining: 0`` means wait
until ``x-ratelimit-reset`` (epoch seconds); a ``Retry-After`` header (secondary limits) means
wait that many seconds; a secondary-limit message without either means wait a minute. A response
hook translates all three into the standard 429 + ``Retry-After`` that :class:`RetryingHttp`
honours, so one retry loop handles them alongside 5xx and dropped connections. A wait longer than
``max_wait_s`` raises :class:`GitHubRateLimitError` saying when to run again.

The token travels only in the ``Authorization`` header: it is registered as a secret with the HTTP
helper (masked in every message) and never logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mlops_assets.lib.sources.http import HttpError, RetryingHttp, retry_after_seconds, safe_url

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
SECONDARY_LIMIT_WAIT_S = 60.0  # GitHub: "otherwise, wait for at least one minute before retrying"


class GitHubClientError(RuntimeError):
    """The GitHub pull cannot go on; the message says what to fix (it never contains the token)."""


class GitHubRateLimitError(GitHubClientError):
    """The rate limit resets later than the client is allowed to wait."""


@dataclass
class PullResult:
    """What one pull wrote: page files, issues in them (pull requests counted apart), the next watermark."""

    pages_written: int
    issues: int
    new_watermark: datetime | None
    pull_requests: int = 0
    files: list[Path] = field(default_factory=list)


def _parse_repos(repos: list[str] | str) -> list[tuple[str, str]]:
    items = (
        [r.strip() for r in repos.split(",")] if isinstance(repos, str) else [str(r).strip() for r in repos]
    )
    items = [r for r in items if r]
    if not items:
        raise GitHubClientError("no repositories given: set GITHUB_REPOS to owner/repo[,owner/repo...]")
    parsed = []
    for item in items:
        owner, _, name = item.removesuffix(".git").partition("/")
        if not owner or not name or "/" in name or " " in item:
            raise GitHubClientError(f"repository {item!r} is not owner/repo (e.g. matomo-org/matomo)")
        parsed.append((owner, name))
    return parsed


def _updated_at(item: Any) -> datetime | None:
    try:
        dt = datetime.fromisoformat(item["updated_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class GitHubClient:
    """GitHub REST client for issue pulls (token auth; works against GitHub Enterprise's ``/api/v3`` too)."""

    def __init__(
        self,
        token: str,
        repos: list[str] | str,
        api_url: str = DEFAULT_API_URL,
        per_page: int = 100,
        max_wait_s: float = 900.0,
        session: requests.Session | None = None,
        **http_options: Any,
    ):
        if not token or not token.strip():
            raise GitHubClientError("the GitHub token is empty: set GITHUB_TOKEN")
        if not api_url.startswith(("http://", "https://")):
            raise GitHubClientError(
                f"GITHUB_API_URL must start with http:// or https://, got {safe_url(api_url)!r}"
            )
        if not 1 <= per_page <= 100:
            raise GitHubClientError(f"per_page must be 1..100 (GitHub's maximum is 100), not {per_page}")
        self.repos = _parse_repos(repos)
        self.api_url = api_url.rstrip("/")
        self.per_page = per_page
        self.max_wait_s = max_wait_s
        http_options.setdefault("max_backoff_s", max_wait_s)
        self.http = RetryingHttp(
            session,
            headers={
                "Authorization": f"Bearer {token.strip()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "mlops-assets",
            },
            secrets=[token, token.strip()],
            **http_options,
        )
        self.http.session.hooks["response"].append(self._normalize_rate_limit)
        self._origin = urlsplit(self.api_url)[:2]

    @property
    def scope(self) -> str:
        """What this client pulls, in words: ``repositories owner/a, owner/b``."""
        return "repositories " + ", ".join(f"{o}/{n}" for o, n in self.repos)

    def __repr__(self) -> str:
        repos = ",".join(f"{o}/{n}" for o, n in self.repos)
        return f"GitHubClient(api_url={self.api_url!r}, repos={repos!r}, token=***)"

    @classmethod
    def from_env(cls, **kwargs: Any) -> GitHubClient:
        """A client from GITHUB_TOKEN and GITHUB_REPOS (comma-separated owner/repo), optional GITHUB_API_URL."""
        from mlops_assets.lib.pulls import client_from_env  # one validated constructor, as GitHubResource

        return client_from_env("github", **kwargs)

    # -----------------------------------------------------------------------------------------

    def _normalize_rate_limit(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Turn GitHub's rate-limit answers into 429 + Retry-After (see the module docstring)."""
        if response.status_code not in (403, 429):
            return
        headers = response.headers
        wait = retry_after_seconds(headers.get("Retry-After"))
        if wait is None and headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(headers.get("x-ratelimit-reset", ""))
            except ValueError:
                reset = None
            if reset is not None:
                now = datetime.now(UTC).timestamp()
                try:  # the server's clock, when it says, decides when its window resets
                    now = parsedate_to_datetime(headers["Date"]).timestamp()
                except (KeyError, TypeError, ValueError, IndexError):
                    pass
                wait = max(0.0, reset - now) + 1.0
            else:
                wait = SECONDARY_LIMIT_WAIT_S
        if wait is None and "rate limit" in response.text[:1000].lower():
            wait = SECONDARY_LIMIT_WAIT_S
        if wait is None:
            return  # a genuine 403 (no access): reported as such by _get
        if wait > self.max_wait_s:
            until = datetime.fromtimestamp(datetime.now(UTC).timestamp() + wait, UTC).strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
            raise GitHubRateLimitError(
                f"GitHub's rate limit for this token is exhausted until about {until} (in {wait:.0f} s, more than "
                f"max_wait_s={self.max_wait_s:.0f}): run the pull again after that, or allow a longer max_wait_s"
            )
        log.warning("GitHub rate limit on %s: waiting %.0f s as GitHub asks", safe_url(response.url), wait)
        response.status_code = 429
        headers["Retry-After"] = f"{wait:.3f}"

    def _get(self, url: str, params: dict[str, Any] | None, repo: str) -> requests.Response:
        if urlsplit(url)[:2] != self._origin:
            # The token must never go to another host, even if a Link header points there.
            raise GitHubClientError(
                f"GitHub's next-page link {safe_url(url)} leaves {self.api_url}: refusing to follow it"
            )
        try:
            return self.http.get(url, params=params)
        except HttpError as exc:
            if exc.status is None and not exc.transient:
                raise GitHubClientError(
                    f"cannot reach GitHub at {safe_url(self.api_url)} ({exc.reason}): check GITHUB_API_URL "
                    "(https://api.github.com, or https://<host>/api/v3 for Enterprise) and that this machine can reach it"
                ) from None
            if exc.status == 401:
                raise GitHubClientError(
                    "GitHub rejected the token (HTTP 401 Bad credentials): check GITHUB_TOKEN is valid and not expired"
                ) from None
            if exc.status == 403:
                raise GitHubClientError(
                    f"GitHub refused access to {repo}'s issues (HTTP 403): check GITHUB_TOKEN, which needs read access to "
                    f"the repository's issues (fine-grained token: 'Issues: read'; classic: 'repo' for private ones): {exc.body_excerpt[:200]}"
                ) from None
            if exc.status in (404, 410):
                raise GitHubClientError(
                    f"repository {repo} was not found, its issues are disabled, or the token cannot see it "
                    f"(HTTP {exc.status}): check GITHUB_REPOS and the token's repository access"
                ) from None
            raise GitHubClientError(str(exc)) from None

    def pull(self, landing_dir: Path, since: datetime | None = None) -> PullResult:
        """Fetch every issue (and PR) updated since ``since`` (all if None) as page files in ``landing_dir``.

        ``landing_dir`` is the GitHub drop folder itself (``<landing>/github``); it is created if absent.
        """
        landing_dir = Path(landing_dir)
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        landing_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        result = PullResult(pages_written=0, issues=0, new_watermark=since)
        for owner, name in self.repos:
            repo = f"{owner}/{name}"
            url: str | None = f"{self.api_url}/repos/{owner}/{name}/issues"
            params: dict[str, Any] | None = {
                "state": "all",
                "sort": "updated",
                "direction": "asc",
                "per_page": self.per_page,
            }
            if since is not None:
                params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            page_number = 0
            while url:
                response = self._get(url, params, repo)
                params = None  # the next link carries the whole query
                try:
                    items = response.json()
                except ValueError:
                    raise GitHubClientError(
                        f"GET {safe_url(response.url)} answered {response.headers.get('Content-Type', 'no content type')}, "
                        "not JSON: check GITHUB_API_URL (https://api.github.com, or https://<host>/api/v3 for Enterprise)"
                    ) from None
                if not isinstance(items, list):
                    raise GitHubClientError(
                        f"GET {safe_url(response.url)} answered a JSON {type(items).__name__}, not the list of issues "
                        "GitHub sends: check GITHUB_API_URL"
                    )
                page_number += 1
                if items:  # an empty answer (nothing new) leaves no file behind
                    path = self._write_page(
                        landing_dir, f"{owner}__{name}__{stamp}__p{page_number:04d}.json", response.content
                    )
                    result.files.append(path)
                    result.pages_written += 1
                n_pulls = sum(1 for item in items if isinstance(item, dict) and "pull_request" in item)
                result.pull_requests += n_pulls
                result.issues += len(items) - n_pulls
                for item in items:
                    updated = _updated_at(item)
                    if updated and (result.new_watermark is None or updated > result.new_watermark):
                        result.new_watermark = updated
                log.info(
                    "GitHub %s page %d: %d issues, %d pull requests",
                    repo,
                    page_number,
                    len(items) - n_pulls,
                    n_pulls,
                )
                url = response.links.get("next", {}).get("url")
        return result

    @staticmethod
    def _write_page(landing_dir: Path, name: str, content: bytes) -> Path:
        """Write the page's bytes as received, atomically (temporary name, then rename)."""
        final = landing_dir / name
        tmp = landing_dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final
