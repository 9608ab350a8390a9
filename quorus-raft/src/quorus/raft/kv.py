"""A replicated key-value map: the state machine of the Raft tests, the real-process cluster
and the benchmarks.

Commands are msgpack lists: ``["put", key, value]`` (returns the previous value) and
``["cas", key, expected, new]`` (returns whether it swapped). Reads are not commands: a node
serves them from its map after a :meth:`~quorus.core.consensus.ConsensusBackend.read_barrier`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgpack


def put_command(key: str, value: Any) -> bytes:
    return bytes(msgpack.packb(["put", key, value]))


def cas_command(key: str, expected: Any, new: Any) -> bytes:
    return bytes(msgpack.packb(["cas", key, expected, new]))


class KeyValueStateMachine:
    """A deterministic map; implements :class:`quorus.core.consensus.StateMachine`."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.applied_index = 0

    def apply(self, index: int, command: bytes) -> Any:
        self.applied_index = index
        op = msgpack.unpackb(command)
        if not isinstance(op, list) or not op:
            raise ValueError("a key-value command is a non-empty list")
        if op[0] == "put" and len(op) == 3:
            previous = self.data.get(op[1])
            self.data[op[1]] = op[2]
            return previous
        if op[0] == "cas" and len(op) == 4:
            if self.data.get(op[1]) == op[2]:
                self.data[op[1]] = op[3]
                return True
            return False
        raise ValueError(f"unknown key-value command {op[0]!r}")

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def snapshot(self) -> bytes:
        return bytes(msgpack.packb(self.data))

    def snapshot_view(self) -> Callable[[], Iterator[bytes]]:
        """The snapshot's bytes, produced in another thread from a copy of the items taken now
        (values are immutable, so the copy is shallow and cheap); see
        :class:`quorus.core.consensus.SnapshotView`."""
        items = list(self.data.items())

        def produce() -> Iterator[bytes]:
            packer = msgpack.Packer()
            yield packer.pack_map_header(len(items))
            for key, value in items:
                yield packer.pack(key) + packer.pack(value)

        return produce

    def restore(self, data: bytes, index: int) -> None:
        self.data = dict(msgpack.unpackb(data)) if data else {}
        self.applied_index = index


__all__ = ["KeyValueStateMachine", "cas_command", "put_command"]
