"""A small retrying HTTP client for the source APIs (Jira, GitHub, ...), built on ``requests.Session``.

It retries what is worth retrying (429, 500, 502, 503, 504, connection errors and timeouts) with
exponential backoff, honouring ``Retry-After`` (seconds or an HTTP date), and raises
:class:`HttpError` for everything else with the status and a short excerpt of the response body.
Credentials never reach a message or a log line: URLs are shown without user info and with secret
query parameters masked, and every secret the caller registers is masked wherever it appears.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "auth", "signature", "sig", "credential")
MASK = "***"


class HttpError(RuntimeError):
    """An HTTP request that failed for good; ``status`` is None when no response arrived at all."""

    def __init__(self, message: str, status: int | None = None, url: str = "", body_excerpt: str = ""):
        super().__init__(message)
        self.status = status
        self.url = url
        self.body_excerpt = body_excerpt


def safe_url(url: str) -> str:
    """The URL without user info and with secret-looking query parameters masked (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query:
        pairs = [
            (k, MASK if any(s in k.lower() for s in _SECRET_PARAMS) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait (delta-seconds or an HTTP date), None if absent/invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryingHttp:
    """A ``requests.Session`` wrapper: timeouts, retries with exponential backoff, credential-free errors.

    ``secrets`` are strings (API tokens, passwords) masked in every message this client produces.
    ``sleep`` is injectable so callers (and tests) control waiting.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = (10.0, 60.0),
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        secrets: Iterable[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth
        if headers:
            self.session.headers.update(headers)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep

    def redact(self, text: str) -> str:
        """``text`` with every registered secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        # Full jitter keeps many clients from retrying in lockstep.
        return min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a request, retrying transient failures; return the successful (2xx/3xx) response."""
        kwargs.setdefault("timeout", self.timeout)
        shown = safe_url(url)
        attempt = 0
        while True:
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.max_retries:
                    raise HttpError(
                        self.redact(
                            f"{method} {shown} failed after {attempt + 1} attempts: "
                            f"{type(exc).__name__} (is the host reachable?)"
                        ),
                        url=shown,
                    ) from None
                delay = self._delay(attempt, None)
                log.warning("%s %s: %s, retrying in %.1fs", method, shown, type(exc).__name__, delay)
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status not in RETRY_STATUSES or attempt >= self.max_retries:
                    excerpt = self.redact(response.text[:500]) if response.content else ""
                    tries = f" after {attempt + 1} attempts" if status in RETRY_STATUSES else ""
                    raise HttpError(
                        self.redact(
                            f"{method} {shown} returned HTTP {status} {response.reason or ''}".rstrip()
                        )
                        + tries
                        + (f": {excerpt}" if excerpt else ""),
                        status=status,
                        url=shown,
                        body_excerpt=excerpt,
                    )
                delay = self._delay(attempt, retry_after_seconds(response.headers.get("Retry-After")))
                log.warning("%s %s: HTTP %s, retrying in %.1fs", method, shown, status, delay)
                response.close()
            self._sleep(delay)
            attempt += 1

    def get(self, url: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, params=params, **kwargs)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """GET and decode JSON; a non-JSON answer (a login page, a proxy error) raises HttpError."""
        response = self.get(url, params=params, **kwargs)
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise HttpError(
                self.redact(
                    f"GET {safe_url(response.url or url)} answered {kind}, not JSON "
                    "(check the base URL: it should be the site root, e.g. https://example.atlassian.net)"
                ),
                status=response.status_code,
                url=safe_url(response.url or url),
                body_excerpt=self.redact(response.text[:200]),
            ) from None
