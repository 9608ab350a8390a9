"""The simulator's network: seeded drops, delays, duplicates, reordering and partitions.

Time is counted in steps (a tick is several steps). Every message is encoded with
:func:`~quorus.raft.messages.to_wire` and msgpack when sent and decoded when delivered, so the
simulator exercises the same codec as the real transport.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import msgpack
from quorus.raft.messages import Message, from_wire, to_wire


@dataclass(slots=True)
class Faults:
    """Fault rates of the network, changed freely during a run."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay_min: int = 1
    delay_max: int = 4
    long_delay: int = 40

    @classmethod
    def none(cls) -> Faults:
        return cls()


class Network:
    """Messages in flight, ordered by delivery step."""

    def __init__(self, rng: random.Random, codec: bool = True) -> None:
        self.rng = rng
        self.codec = codec
        self.faults = Faults()
        self._queue: list[tuple[int, int, str, object]] = []
        self._seq = 0
        self._groups: dict[str, int] = {}
        self.sent = 0
        self.dropped = 0

    def partition(self, *groups: set[str] | frozenset[str]) -> None:
        """Only nodes in the same group can talk; nodes in no group talk to everyone."""
        self._groups = {node: i for i, group in enumerate(groups) for node in group}

    def heal(self) -> None:
        self._groups = {}

    def connected(self, a: str, b: str) -> bool:
        ga, gb = self._groups.get(a), self._groups.get(b)
        return ga is None or gb is None or ga == gb

    def send(self, now: int, msg: Message) -> None:
        self.sent += 1
        faults, rng = self.faults, self.rng
        if not self.connected(msg.src, msg.dst) or (faults.drop and rng.random() < faults.drop):
            self.dropped += 1
            return
        payload: object = msgpack.packb(to_wire(msg)) if self.codec else msg
        copies = 2 if faults.duplicate and rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = rng.randint(faults.delay_min, faults.delay_max)
            if faults.reorder and rng.random() < faults.reorder:
                delay += rng.randint(1, faults.long_delay)
            self._seq += 1
            heapq.heappush(self._queue, (now + delay, self._seq, msg.dst, payload))

    def due(self, now: int) -> list[Message]:
        """Messages to deliver at step ``now`` (partitions apply on arrival too)."""
        out: list[Message] = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, _, payload = heapq.heappop(queue)
            msg: Message = (
                from_wire(msgpack.unpackb(payload)) if self.codec else payload  # type: ignore[assignment]
            )
            if self.connected(msg.src, msg.dst):
                out.append(msg)
            else:
                self.dropped += 1
        return out

    def clear(self) -> None:
        self._queue.clear()
