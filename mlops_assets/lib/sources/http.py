"""A small retrying HTTP client for the source APIs (Jira, GitHub, ...), built on ``requests.Session``.

It retries what is worth retrying (429, 500, 502, 503, 504, and connection errors and timeouts once
the server has answered at least once) with exponential backoff, honouring ``Retry-After`` (seconds
or an HTTP date), and raises :class:`HttpError` for everything else with the status and a short
excerpt of the response body.

A connection that fails before the server ever answered (connection refused, unknown host, TLS
failure, connect timeout) is a wrong URL or a network that cannot reach it, not an outage: it fails
at once, with ``transient=False``, so neither this client nor the caller's step retry waits minutes
to say so. Retries are also bounded per client (``retry_budget``, summed over all requests), so a
pull over a flaky link stops after a known number of retries, whatever its page count.
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
    """An HTTP request that failed for good; ``status`` is None when no response arrived at all.

    ``transient`` says whether trying again later may help (429/5xx, or a dropped connection after the
    server had answered); ``reason`` names what happened when no response arrived ("connection refused").
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        url: str = "",
        body_excerpt: str = "",
        *,
        transient: bool | None = None,
        reason: str = "",
    ):
        super().__init__(message)
        self.status = status
        self.url = url
        self.body_excerpt = body_excerpt
        self.transient = status in RETRY_STATUSES if transient is None else transient
        self.reason = reason


def connection_failure(exc: BaseException) -> str:
    """A few words for why no response arrived: unknown host, connection refused, timed out, ..."""
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.Timeout):
        return (
            "connection timed out"
            if isinstance(exc, requests.exceptions.ConnectTimeout)
            else "read timed out"
        )
    if any(
        s in text
        for s in (
            "name or service not known",
            "nodename nor servname",
            "failed to resolve",
            "getaddrinfo failed",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return "unknown host"
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "connection closed without an answer"
    return type(exc).__name__


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

    ``max_retries`` bounds the retries of one request, ``retry_budget`` those of all requests this
    client makes (one client serves one pull). ``secrets`` are strings (API tokens, passwords) masked in every message this client produces.
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
        retry_budget: int = 20,
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
        self.retry_budget = retry_budget
        self.retries_used = 0
        self.requests_sent = 0
        # Whether the server has answered at all: until it has, a failed connection is a wrong URL.
        self.answered = False
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
            can_retry = attempt < self.max_retries and self.retries_used < self.retry_budget
            spent = "" if attempt < self.max_retries else f" after {attempt + 1} attempts"
            if attempt < self.max_retries and not can_retry:
                spent = f" after {attempt + 1} attempts (this pull's retry budget of {self.retry_budget} is spent)"
            self.requests_sent += 1
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = connection_failure(exc)
                if not self.answered:
                    raise HttpError(
                        self.redact(
                            f"{method} {shown} failed: {reason}, no answer from the server (is the host reachable?)"
                        ),
                        url=shown,
                        transient=False,
                        reason=reason,
                    ) from None
                if not can_retry:
                    raise HttpError(
                        self.redact(f"{method} {shown} failed{spent}: {reason} (is the host reachable?)"),
                        url=shown,
                        transient=True,
                        reason=reason,
                    ) from None
                delay = self._delay(attempt, None)
                log.warning("%s %s: %s, retrying in %.1fs", method, shown, reason, delay)
            else:
                self.answered = True
                status = response.status_code
                if status < 400:
                    return response
                if status not in RETRY_STATUSES or not can_retry:
                    excerpt = self.redact(response.text[:500]) if response.content else ""
                    tries = spent if status in RETRY_STATUSES else ""
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
            self.retries_used += 1

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
