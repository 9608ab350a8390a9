"""Running a Quorus process's event loop: asyncio (with uvloop when installed) or trio.

``QUORUS_ASYNC_BACKEND`` picks the backend (``asyncio``, the default, or ``trio``).
On asyncio, ``QUORUS_UVLOOP=1`` runs uvloop (``pip install "quorus-core[uvloop]"``).
Measured on the Raft benchmark (3 processes on loopback, ``tests/benchmarks/raft_vs_peers.py``)
it cut the sequential commit p50 from 1.16 to 0.95 ms and raised 64-client throughput from
5,606 to 6,638 commits/s, as these processes spend most of their time in the event loop's own
machinery, which uvloop implements in C. It is not the default yet: in the same benchmark's
100 MB snapshot phase, with uvloop the leader lost its leadership while writing its snapshot
(a stall past the election timeout) where the default loop did not; until that is understood,
the default is the standard loop.
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
    if name == "asyncio" and os.environ.get(UVLOOP_ENV, "0").strip().lower() in ("1", "true", "yes", "on"):
        if importlib.util.find_spec("uvloop") is None:
            raise ConfigurationError(f"{UVLOOP_ENV}=1 but uvloop is not installed: "
                                     'pip install "quorus-core[uvloop]"')
        options["use_uvloop"] = True
    return name, options


def run(func: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """``anyio.run`` with the backend :func:`backend` chooses."""
    name, options = backend()
    return anyio.run(func, *args, backend=name, backend_options=options)


__all__ = ["BACKEND_ENV", "UVLOOP_ENV", "backend", "run"]
