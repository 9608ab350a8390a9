"""The simulator's replicated state machine: a key-value map with put, get and cas.

Commands are msgpack lists ``["put", key, value]`` and ``["cas", key, expected, new]``; reads do
not go through the log (they use ReadIndex). Snapshots are the msgpack of the whole map.
"""

from __future__ import annotations

from typing import Any

import msgpack


def put_command(key: str, value: int) -> bytes:
    return bytes(msgpack.packb(["put", key, value]))


def cas_command(key: str, expected: int | None, new: int) -> bytes:
    return bytes(msgpack.packb(["cas", key, expected, new]))


class KeyValueMachine:
    """A deterministic map from keys to integer values."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def apply(self, command: bytes) -> Any:
        """Apply one command; returns ``None`` for a put, whether it swapped for a cas."""
        op = msgpack.unpackb(command)
        if op[0] == "put":
            self.data[op[1]] = op[2]
            return None
        if op[0] == "cas":
            if self.data.get(op[1]) == op[2]:
                self.data[op[1]] = op[3]
                return True
            return False
        raise ValueError(f"unknown key-value command {op[0]!r}")

    def get(self, key: str) -> int | None:
        return self.data.get(key)

    def snapshot(self) -> bytes:
        return bytes(msgpack.packb(self.data))

    def restore(self, data: bytes) -> None:
        self.data = dict(msgpack.unpackb(data)) if data else {}
