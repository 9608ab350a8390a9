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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def payload_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


__all__ = ["BACKENDS", "anyio_backend", "free_port", "missing_server", "payload_bytes"]
