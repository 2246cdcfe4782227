"""Free ports for the servers the tests start: below the kernel's ephemeral range, so no client's
outgoing connection takes one before its server binds it.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from mlops_assets.devtools import ports, screenshots


def test_free_ports_lie_below_the_ephemeral_range_and_can_be_listened_on():
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.exists():
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range on this system (not Linux)")
    low = int(range_file.read_text().split()[0])
    for _ in range(20):
        port = ports.free_port()
        assert 10_000 <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.free_port()))
        taken.listen()
        monkeypatch.setattr(ports.random, "sample", lambda population, k: [taken.getsockname()[1]] * k)
        port = ports.free_port()  # every pick is taken: the kernel chooses
        assert port != taken.getsockname()[1]


def test_a_taken_port_is_read_from_the_servers_log():
    uvicorn = "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 45963): address already in use"
    assert ports.port_was_taken(uvicorn)
    assert not ports.port_was_taken("ValueError: MLOPS_SERVE_MAX_TASKS must be a whole number, not 'many'")


def test_a_ui_server_whose_port_is_taken_starts_again_on_another(tmp_path, monkeypatch):
    """The Dagster and MLflow UIs of the browser tests start through screenshots._server: a server that
    loses its port before binding it is started again on another (here Python's http.server).
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        picks = iter([taken.getsockname()[1]])
        monkeypatch.setattr(screenshots, "free_port", lambda: next(picks, None) or ports.free_port())
        (tmp_path / "index.html").write_text("ok")

        def cmd(port: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(tmp_path),
            ]

        log = tmp_path / "server.log"
        with screenshots._server("http.server", cmd, dict(os.environ), "/", log, 30) as base:
            assert base != f"http://127.0.0.1:{taken.getsockname()[1]}"
            assert "ok" in urllib.request.urlopen(base + "/index.html").read().decode()
