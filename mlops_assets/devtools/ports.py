"""Free loopback ports for the servers the tests, benchmarks and screenshots start.

A port the kernel hands out for ``bind(("127.0.0.1", 0))`` lies in its ephemeral range, the same range
it draws the local ports of outgoing connections from. A server that takes seconds to load before it
binds (the scoring service loads its champions first) can then find its port taken by some client's
connection in the meantime: "[Errno 98] address already in use" (CI, 2026-12-05). So ports are chosen
at random below the ephemeral range, where only another listener could take them, and a server that
still loses the race is started again on another port (``port_was_taken`` reads its log).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known and registered services' ports
TAKEN = ("address already in use", "errno 98", "eaddrinuse", "connection in use")  # uvicorn, Python; gunicorn
RELAUNCHES = 3  # a server that lost its port is started again on another at most this many times


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; elsewhere the fallback below still finds a free port


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `host` right now, below the kernel's ephemeral range."""
    low = _ephemeral_low()
    if low - _LOWEST >= 1_000:
        for port in random.sample(range(_LOWEST, low), 50):
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:  # a crowded or unusual range: let the kernel choose
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_was_taken(log_text: str) -> bool:
    """Whether a server's log says it could not bind because its port was taken."""
    lowered = log_text.lower()
    return any(marker in lowered for marker in TAKEN)
