"""What the leader knows of each follower's log, and how fast it may send to it.

A follower is in one of three states (as in etcd's raft):

- ``PROBE``: the leader does not know where the logs diverge; it sends one append at a time and
  waits for the answer (or the next heartbeat answer) before sending another.
- ``REPLICATE``: the logs match up to ``match``; appends are pipelined optimistically, bounded
  by an in-flight window counted in messages and in bytes.
- ``SNAPSHOT``: the entries the follower needs were compacted away; a snapshot is being sent in
  chunks and appends wait until it is installed.
"""

from __future__ import annotations

import enum
from collections import deque


class ReplicationState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """One follower's replication state as seen by the leader."""

    __slots__ = (
        "acked_seq",
        "inflight",
        "inflight_bytes",
        "last_progress_tick",
        "match",
        "next",
        "paused",
        "recent_active",
        "snapshot_index",
        "snapshot_offset",
        "state",
    )

    def __init__(self, next_index: int, now: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ReplicationState.PROBE
        self.paused = False
        self.inflight: deque[tuple[int, int]] = deque()
        self.inflight_bytes = 0
        self.recent_active = False
        self.acked_seq = 0
        self.snapshot_index = 0
        self.snapshot_offset = 0
        self.last_progress_tick = now

    def __repr__(self) -> str:
        return (
            f"Progress({self.state.value}, match={self.match}, next={self.next}, "
            f"inflight={len(self.inflight)}/{self.inflight_bytes}B)"
        )

    def become_probe(self, now: int) -> None:
        if self.state is ReplicationState.SNAPSHOT:
            self.next = max(self.match + 1, self.snapshot_index + 1)
        else:
            self.next = self.match + 1
        self.state = ReplicationState.PROBE
        self.paused = False
        self.snapshot_index = 0
        self.snapshot_offset = 0
        self._reset_inflight()
        self.last_progress_tick = now

    def become_replicate(self, now: int) -> None:
        self.state = ReplicationState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self._reset_inflight()
        self.last_progress_tick = now

    def become_snapshot(self, index: int, now: int) -> None:
        self.state = ReplicationState.SNAPSHOT
        self.snapshot_index = index
        self.snapshot_offset = 0
        self.paused = False
        self._reset_inflight()
        self.last_progress_tick = now

    def _reset_inflight(self) -> None:
        self.inflight.clear()
        self.inflight_bytes = 0

    def maybe_update(self, index: int, now: int) -> bool:
        """The follower matches up to ``index``; whether that is news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.paused = False
            self.last_progress_tick = now
        if index + 1 > self.next:
            self.next = index + 1
        return updated

    def maybe_decrease(self, rejected: int, hint: int) -> bool:
        """An append at ``rejected`` failed; move ``next`` back to ``hint``. False if stale."""
        if self.state is ReplicationState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint), self.match + 1, 1)
        self.paused = False
        return True

    def sent(self, last_index: int, size: int, max_msgs: int, max_bytes: int) -> None:
        """An append ending at ``last_index`` went out."""
        if self.state is ReplicationState.REPLICATE:
            self.next = last_index + 1
            self.inflight.append((last_index, size))
            self.inflight_bytes += size
        else:
            self.paused = True

    def free_to(self, index: int) -> None:
        """Acknowledged appends up to ``index`` leave the in-flight window."""
        inflight = self.inflight
        while inflight and inflight[0][0] <= index:
            self.inflight_bytes -= inflight.popleft()[1]

    def window_full(self, max_msgs: int, max_bytes: int) -> bool:
        return len(self.inflight) >= max_msgs or self.inflight_bytes >= max_bytes

    def blocked(self, max_msgs: int, max_bytes: int) -> bool:
        """Whether the leader must not send this follower another append now."""
        if self.state is ReplicationState.PROBE:
            return self.paused
        if self.state is ReplicationState.REPLICATE:
            return self.window_full(max_msgs, max_bytes)
        return True
