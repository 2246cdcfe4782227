"""Keep secrets and file content out of what is stored and logged about bad input.

Reasons and excerpts of rejected files end up in ``raw.rejects``, ``raw.ingested_files``,
``clean.quarantine`` and the run log, which more people read than the landing zone. A hostile or
mistaken file (a link to ``/proc/self/environ``, a config file dropped by mistake) must not copy
tokens into them: :func:`redact` masks what looks like a credential, and :func:`excerpt` keeps at
most a short, printable start of a file.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

MASK = "***"
EXCERPT_CHARS = 200
# Environment variables whose values are secrets wherever they appear (JIRA_API_TOKEN, GITHUB_TOKEN, ...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
_PATTERNS = (
    # user:password@ in any URL
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"), r"\g<keep>" + MASK + "@"),
    # NAME=value / "name": "value" where the name says secret
    (
        re.compile(
            r"(?P<keep>\b[\w.\-]*(?:token|secret|password|passwd|api[_\-]?key|authorization|credential)[\w.\-]*"
            r"[\"']?\s*[=:]\s*[\"']?)(?:Bearer\s+|Basic\s+)?[^\s\"'&,;\x00]+",
            re.IGNORECASE,
        ),
        r"\g<keep>" + MASK,
    ),
    (re.compile(r"\b(?P<keep>(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/\-]+=*"), r"\g<keep>" + MASK),
    # well-known token shapes: GitHub, Atlassian, AWS, Slack, JWT
    (
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|ATATT[A-Za-z0-9_\-=]{20,}"
            r"|AKIA[0-9A-Z]{16}|xox[abposr]-[A-Za-z0-9\-]{10,}|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]+)"
        ),
        MASK,
    ),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# what must not reach one log line: C0 and C1 controls (ESC sequences, CR, NUL), line and paragraph separators
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _secret_values() -> list[str]:
    return sorted(
        {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}, key=len, reverse=True
    )


def redact(text: str | None) -> str | None:
    """``text`` with credentials masked: values of secret environment variables, URL passwords,
    ``token=...``-like pairs and well-known token shapes.
    """
    if not text:
        return text
    for value in _secret_values():
        if value in text:
            text = text.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def excerpt(data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` printable characters of the start of a file, credentials masked."""
    text = data[: limit * 4].decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = _CONTROL.sub(" ", text[:limit])
    return redact(text) + (" ..." if len(data) > limit else "")


def redact_url(url: str | None, keep_path: bool = True) -> str | None:
    """``url`` safe to show or log: user and password masked, query values masked, and with
    ``keep_path=False`` the path too (a webhook's path is its secret: Slack, Teams, Discord).
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL we can take apart: mask what looks like a credential in it
        return redact(url)
    if not parts.scheme or not (parts.netloc or parts.path):
        return redact(url)
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host + (f":{port}" if port else "")
    path = parts.path if keep_path else ("/" + MASK if parts.path.strip("/") else parts.path)
    query = (
        "&".join(
            f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else MASK
            for pair in parts.query.split("&")
            if pair
        )
        if parts.query
        else ""
    )
    shown = f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    return redact(shown)


def one_line(text: str) -> str:
    """``text`` as one printable line: control characters (a file header's ESC or CR, a newline) become a space."""
    return _NOT_ONE_LINE.sub(" ", text)
