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
