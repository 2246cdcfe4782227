"""The scoring service as a real process on a free loopback port, for scripts (the tests' `Service`
in mlops_assets_tests/serving/test_app.py does the same under pytest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mlops_assets.devtools.ports import RELAUNCHES, free_port, port_was_taken
from mlops_assets.serving import sandbox

ROOT = Path(__file__).resolve().parents[2]
_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class ServiceProcess:
    """``python -m mlops_assets.serving`` against a sandbox; ``stop()`` ends it (also as a context manager).

    It listens on a free port (mlops_assets/devtools/ports.py); if another process takes that port while the
    service loads its champions, the service is started again on another one (``url`` follows it).
    """

    def __init__(self, box: sandbox.Sandbox, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.log = log
        self.env = {**{k: v for k, v in os.environ.items() if k in _KEEP_ENV}, **box.env(),
                    "XDG_CACHE_HOME": str(box.root / "cache"), **(extra_env or {})}  # fmt: skip
        self.relaunches = 0
        self._launch()

    def _launch(self) -> None:
        self.port = free_port()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "mlops_assets.serving"], cwd=ROOT,
                                            env={**self.env, "MLOPS_SERVE_PORT": str(self.port)},
                                            stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def exited(self) -> str | None:
        """None while the service runs (after starting it again if it lost its port), else why it ended."""
        if self.process.poll() is None:
            return None
        if port_was_taken(self.log_tail()) and self.relaunches < RELAUNCHES:
            self.relaunches += 1
            self._launch()
            return None
        return f"the service exited with {self.process.returncode}:\n{self.log_tail()}"

    def poll_ready(self, accept: Callable[[httpx.Response], bool], timeout_s: float) -> httpx.Response:
        """Poll /ready until `accept` takes an answer; raise RuntimeError with the log's tail if the process
        exits or time runs out.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (why := self.exited()) is not None:
                raise RuntimeError(why)
            try:
                answer = httpx.get(f"{self.url}/ready", timeout=10)
                if accept(answer):
                    return answer
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"/ready did not answer as awaited within {timeout_s:.0f}s:\n{self.log_tail()}")

    def wait_ready(self, timeout_s: float = 120.0) -> dict:
        """Poll /ready until 200; raise with the log's tail if the process exits or time runs out."""
        return self.poll_ready(lambda answer: answer.status_code == 200, timeout_s).json()

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def listening_hosts(self) -> set[str]:
        """The local addresses the process listens on (from /proc/net/tcp*, matched by socket inode)."""
        inodes = set()
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        hosts = set()
        for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # 0A = LISTEN
                    hosts.add(_address(parts[1].split(":")[0], width))
        return hosts

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _address(hex_addr: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hex_addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "::1" if hex_addr == "0" * 24 + "01000000" else ("::" if hex_addr == "0" * 32 else hex_addr)
