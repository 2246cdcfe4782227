"""The scoring service serves data/reports/ and data/exports/ read-only, and nothing outside them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from mlops_assets.devtools.ports import free_port
from mlops_assets.serving.app import Settings, create_app


@pytest.fixture
def served(tmp_path: Path, mlflow_uri: str) -> Iterator[tuple[str, Path, Path]]:
    """The real app under uvicorn on a free loopback port (no champion: files do not need one)."""
    reports, exports = tmp_path / "reports", tmp_path / "exports"
    (reports / "late_risk" / "abc123").mkdir(parents=True)
    (reports / "late_risk" / "abc123" / "evaluation.html").write_text("<h1>evaluation</h1>")
    (exports / "projects").mkdir(parents=True)
    (exports / "task_risk_scores.csv").write_text("task_id,late_risk\njira:A-1,0.5\n")
    (exports / "projects" / "index.html").write_text("<h1>projects</h1>")
    (exports / ".task_risk_scores.csv.x1y2.tmp").write_text("half a file")
    (tmp_path / "secret.txt").write_text("not yours")
    (exports / "escape").symlink_to(tmp_path / "secret.txt")
    port = free_port()
    settings = Settings(
        port=port,
        warehouse=str(tmp_path / "none.duckdb"),
        tracking_uri=mlflow_uri,
        check_interval_s=3600,
        reports_dir=str(reports),
        exports_dir=str(exports),
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the service did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", reports, exports
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _raw_get(base: str, path: str) -> int:
    """The status of a GET sent byte for byte (an HTTP client would normalize the '..' away)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split()[1])


def test_reports_and_exports_are_served_over_http(served):
    base, _, _ = served
    with httpx.Client(base_url=base) as http:
        page = http.get("/reports/late_risk/abc123/evaluation.html")
        assert (
            page.status_code == 200
            and "evaluation" in page.text
            and page.headers["content-type"].startswith("text/html")
        )
        csv = http.get("/exports/task_risk_scores.csv")
        assert csv.status_code == 200 and csv.text.startswith("task_id,late_risk")
        assert http.get("/exports/projects/").text == "<h1>projects</h1>"  # a folder serves its index.html
        assert http.get("/exports/nothing.csv").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/exports/../secret.txt",
        "/exports/%2e%2e/secret.txt",
        "/exports/..%2fsecret.txt",
        "/reports/../../../../etc/passwd",
        "/exports/escape",  # a symlink that points out
        "/exports/.task_risk_scores.csv.x1y2.tmp",  # an export being written
    ],
)
def test_paths_outside_the_folders_and_hidden_files_are_refused(served, path):
    base, _, _ = served
    assert _raw_get(base, path) == 404


def test_the_files_are_read_only(served):
    base, _, exports = served
    with httpx.Client(base_url=base) as http:
        for method in ("PUT", "POST", "DELETE"):
            assert http.request(method, "/exports/task_risk_scores.csv", content=b"x").status_code == 405
    assert (exports / "task_risk_scores.csv").read_text().startswith("task_id,late_risk")
