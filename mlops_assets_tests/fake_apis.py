"""A local HTTP server for client tests: real sockets and real HTTP on 127.0.0.1, answers from a function.

    def handler(req: FakeRequest) -> Reply:
        return Reply(200, {"ok": True})

    with serve(handler) as base_url:
        requests.get(f"{base_url}/anything")

The server binds a free port, runs in a daemon thread and shuts down when the block ends.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeRequest:
    """One request as the handler sees it (query values are lists, as parse_qs gives them)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """The answer: a dict/list body is sent as JSON, str/bytes as they are."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[FakeRequest], Reply]


def _request_handler(handler: Handler) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = FakeRequest(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k: v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            try:
                reply = handler(req)
            except Exception:  # a bug in the test's handler: show it to the client, do not hang
                reply = Reply(500, traceback.format_exc(), {"Content-Type": "text/plain"})
            body = reply.body
            headers = dict(reply.headers)
            if isinstance(body, dict | list):
                body = json.dumps(body).encode()
                headers.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                body = body.encode()
            elif body is None:
                body = b""
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return _Handler


@contextmanager
def serve(handler: Handler) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 at a free port; yields the base URL (``http://127.0.0.1:<port>``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _request_handler(handler))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-api", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Jira: serverInfo and search as Cloud and Server/Data Center answer them
# ---------------------------------------------------------------------------------------------

# Jira Cloud's answer to the removed search endpoints, word for word (Atlassian CHANGE-2046).
JIRA_SEARCH_GONE = {
    "errorMessages": [
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration "
        "guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
    ],
    "errors": {},
}


def jira_server_info(deployment: str, base_url: str) -> dict[str, Any]:
    """``GET /rest/api/2/serverInfo`` as Jira sends it; ``deployment`` is Cloud, Server or DataCenter."""
    cloud = deployment == "Cloud"
    return {
        "baseUrl": base_url,
        "displayUrl": base_url,
        "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.15",
        "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 15],
        "deploymentType": deployment,
        "buildNumber": 100290 if cloud else 9120015,
        "buildDate": "2026-11-30T00:00:00.000+0000",
        "serverTime": "2026-12-04T09:00:00.000+0000",
        "scmInfo": "3c5b4a8e4c63a9f1bd7ed5e4d0f4c3f5a1c9e2d7",
        "serverTitle": "Jira",
        **({"serverTimeZone": {"id": "Europe/Berlin"}} if not cloud else {}),
    }


class FakeJiraSite:
    """A Jira site by deployment: Cloud serves v2/v3 serverInfo, v3 ``/search/jql`` and 410 on ``/search``;
    Server and DataCenter serve v2 only (``/search`` with ``startAt``/``total``; no v3 at all).

    ``issues`` are returned ``page_cap`` at a time; every request is kept in ``requests``.
    """

    def __init__(
        self, deployment: str, issues: list[dict[str, Any]], page_cap: int = 2, time_zone: str = "UTC"
    ):
        assert deployment in ("Cloud", "Server", "DataCenter")
        self.deployment = deployment
        self.issues = issues
        self.page_cap = page_cap
        self.time_zone = time_zone
        self.requests: list[FakeRequest] = []
        self.base_url = ""

    @property
    def searches(self) -> list[FakeRequest]:
        return [r for r in self.requests if "/search" in r.path]

    def __call__(self, req: FakeRequest) -> Reply:
        self.requests.append(req)
        cloud = self.deployment == "Cloud"
        versions = ("2", "3") if cloud else ("2",)
        parts = req.path.strip("/").split("/", 3)  # rest, api, <version>, <resource>
        if len(parts) < 4 or parts[:2] != ["rest", "api"] or parts[2] not in versions:
            return Reply(
                404,
                "<html><body>Oops, you've found a dead link.</body></html>",
                {"Content-Type": "text/html;charset=UTF-8"},
            )
        resource = parts[3]
        if resource == "serverInfo":
            return Reply(200, jira_server_info(self.deployment, self.base_url or "http://jira.local"))
        if resource == "myself":
            return Reply(200, {"accountId": "5b10ac8d82e05b22cc7d4ef5", "timeZone": self.time_zone})
        size = min(int(req.param("maxResults", "50")), self.page_cap)
        if resource == "search":
            if cloud:
                return Reply(410, JIRA_SEARCH_GONE)
            start = int(req.param("startAt", "0"))
            return Reply(
                200,
                {
                    "expand": "names,schema",
                    "startAt": start,
                    "maxResults": size,
                    "total": len(self.issues),
                    "issues": self.issues[start : start + size],
                },
            )
        if resource == "search/jql" and cloud:
            start = int((req.param("nextPageToken") or "tok-0").removeprefix("tok-"))
            body: dict[str, Any] = {
                "issues": self.issues[start : start + size],
                "isLast": start + size >= len(self.issues),
            }
            if not body["isLast"]:  # Cloud leaves the key out on the last page
                body["nextPageToken"] = f"tok-{start + size}"
            return Reply(200, body)
        return Reply(404, {"errorMessages": ["null for uri: " + req.path], "errors": {}})
