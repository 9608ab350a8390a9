"""Running a Quorus process's event loop: asyncio (with uvloop when installed) or trio.

``QUORUS_ASYNC_BACKEND`` picks the backend (``asyncio``, the default, or ``trio``).
On asyncio, uvloop runs when it is installed (``pip install "quorus-core[uvloop]"``; the
``quorus`` distribution installs it): ``QUORUS_UVLOOP=0`` keeps the standard loop,
``QUORUS_UVLOOP=1`` insists on uvloop (an error without it). Measured on the Raft benchmark
(3 processes on loopback, ``tests/benchmarks/raft_vs_peers.py``, paired runs against etcd) it
takes the sequential commit p50 from parity with etcd to 0.82x etcd's, and 64-client
throughput from 5,046 to 5,991 commits/s, as these processes spend most of their time in the
event loop's own machinery, which uvloop implements in C. It was opt-in while a leader could
lose its leadership during a large snapshot write with it; that came from an fdatasync on the
event loop waiting behind the snapshot's data, which no longer happens (none in 7 snapshot
phases since), and every process test passes with it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio
from quorus.core.errors import ConfigurationError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

BACKEND_ENV = "QUORUS_ASYNC_BACKEND"
UVLOOP_ENV = "QUORUS_UVLOOP"


def backend() -> tuple[str, dict[str, Any]]:
    """The anyio backend name and its options for this process."""
    name = os.environ.get(BACKEND_ENV, "asyncio").strip().lower() or "asyncio"
    options: dict[str, Any] = {}
    if name != "asyncio":
        return name, options
    wanted = os.environ.get(UVLOOP_ENV, "").strip().lower()
    if wanted in ("0", "false", "no", "off"):
        return name, options
    installed = importlib.util.find_spec("uvloop") is not None
    if wanted in ("1", "true", "yes", "on") and not installed:
        raise ConfigurationError(f"{UVLOOP_ENV}=1 but uvloop is not installed: "
                                 'pip install "quorus-core[uvloop]"')
    if installed:
        options["use_uvloop"] = True
    return name, options


def run(func: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """``anyio.run`` with the backend :func:`backend` chooses."""
    name, options = backend()
    return anyio.run(func, *args, backend=name, backend_options=options)


__all__ = ["BACKEND_ENV", "UVLOOP_ENV", "backend", "run"]
