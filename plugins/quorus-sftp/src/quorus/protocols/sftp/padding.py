"""Random padding for asyncssh's packets, drawn from a pooled buffer of ``os.urandom`` bytes.

asyncssh pads every SSH packet it sends with ``os.urandom(n)`` (4 to 255 bytes): one system
call per packet, and one that lets go of the GIL. While the engine hashes or reads a file in a
worker thread, the event loop then waits to get the GIL back after every packet. An upload
to OpenSSH sends about 33,000 packets per GiB (sshd takes 32 KiB per channel packet), and in
a profile these calls took more time than the encryption. Measured on 2 cores, 256 MiB
uploaded through the engine: 88-132 MB/s with a call per packet, 183-200 MB/s pooled.

The padding is the same kernel randomness, each byte used once; only the system calls are
batched, 64 KiB at a time, in a buffer per thread. Requests above 256 bytes (keys, cookies)
still go to ``os.urandom`` directly.
"""

from __future__ import annotations

import os
import threading
import types
from typing import Any

import asyncssh.connection

_POOL_BYTES = 64 * 1024
_POOLED_UP_TO = 256


class _Pool(threading.local):
    def __init__(self) -> None:
        self.buffer = b""
        self.position = 0


class _OsWithPooledRandom(types.ModuleType):
    """The ``os`` module as asyncssh's connection module sees it, with a pooled ``urandom``."""

    def __init__(self) -> None:
        super().__init__("os")
        self._pool = _Pool()

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def urandom(self, size: int) -> bytes:
        if size > _POOLED_UP_TO:
            return os.urandom(size)
        pool = self._pool
        start = pool.position
        if start + size > len(pool.buffer):
            pool.buffer = os.urandom(_POOL_BYTES)
            start = 0
        pool.position = start + size
        return pool.buffer[start : start + size]


def install() -> None:
    """Give asyncssh's connection module the pooled ``urandom`` (once; idempotent)."""
    namespace = vars(asyncssh.connection)
    if not isinstance(namespace["os"], _OsWithPooledRandom):
        namespace["os"] = _OsWithPooledRandom()


__all__ = ["install"]
