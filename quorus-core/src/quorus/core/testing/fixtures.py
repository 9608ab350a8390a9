"""Fixtures and helpers shared by Quorus's test suites and third-party plugins' suites.

Import the fixture into a ``conftest.py``::

    from quorus.core.testing.fixtures import anyio_backend  # noqa: F401
"""

from __future__ import annotations

import os
import random
import socket
from typing import NoReturn

import pytest

#: Every async test runs once per backend: Quorus's core promises both.
BACKENDS = ("asyncio", "trio")


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test under asyncio and under trio."""
    return str(request.param)


def missing_server(reason: str) -> NoReturn:
    """A real server a test needs is not available: skip on a developer's machine, fail in CI.

    CI (``CI`` set in the environment) installs every server the suite uses, so a missing
    one there is a broken set-up, never a reason to pass quietly.
    """
    if os.environ.get("CI"):
        pytest.fail(f"required server unavailable in CI: {reason}")
    pytest.skip(reason)


_PORT_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_PORTS = random.Random(os.urandom(16))  # apart from the tests' seeded randomness
_HANDED_OUT: set[int] = set()


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for the local end of outgoing connections."""
    try:
        with open(_PORT_RANGE_FILE) as ranges:
            low, high = (int(n) for n in ranges.read().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago, and that no outgoing connection
    will be given meanwhile.

    The port is chosen outside the kernel's ephemeral range: a port from that range can become
    the local end of any connection (a client retrying a stopped server, a peer dialling
    out) while the server meant to listen on it is down, and a server restarted by a test
    then fails with "address already in use". Within one process no port is handed out twice.
    """
    low, high = _ephemeral_ports()
    start, stop = (max(1024, low - 16384), low) if low > 2048 else (high + 1, 65536)
    for _ in range(256):
        port = _PORTS.randrange(start, stop)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))  # without SO_REUSEADDR: not even in TIME_WAIT
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def payload_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


__all__ = ["BACKENDS", "anyio_backend", "free_port", "missing_server", "payload_bytes"]
