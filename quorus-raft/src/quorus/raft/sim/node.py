"""One simulated node: a :class:`RaftCore`, storage that loses unsynced writes, a state machine.

:class:`SimNode` is a miniature of the real runtime: it executes each Ready in the documented
order, holds ``messages_after_persist`` until the simulated fsync completes, applies committed
entries, serves reads, sends snapshot chunks, compacts its log, and keys client proposals by
``(index, term)``, failing them on step-down, truncation or crash.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quorus.raft.core import InitialState, RaftConfig, RaftCore
from quorus.raft.errors import NotLeader
from quorus.raft.membership import Configuration
from quorus.raft.messages import Entry, EntryKind, Message, SnapshotMeta
from quorus.raft.ready import HardState, Ready, Role
from quorus.raft.sim.kv import KeyValueMachine

#: Outcome of a client request: ("ok", result), ("fail", hint) or ("info", hint).
Callback = Callable[[str, Any], None]


@dataclass(slots=True)
class DurableState:
    """What survives a crash: written only when a simulated fsync completes."""

    hard: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta | None = None
    snapshot_data: bytes = b""
    entries: list[Entry] = field(default_factory=list)

    def truncate_from(self, index: int) -> None:
        offset = self.snapshot.index if self.snapshot else 0
        del self.entries[max(index - offset - 1, 0):]

    def append(self, entries: list[Entry]) -> None:
        offset = self.snapshot.index if self.snapshot else 0
        if entries:
            expected = offset + len(self.entries) + 1
            if entries[0].index != expected:
                raise AssertionError(
                    f"storage append at {entries[0].index}, expected {expected}: a Ready skipped "
                    "or repeated entries"
                )
            self.entries.extend(entries)

    def compact(self, meta: SnapshotMeta, data: bytes) -> None:
        offset = self.snapshot.index if self.snapshot else 0
        del self.entries[: meta.index - offset]
        self.snapshot, self.snapshot_data = meta, data


class SimNode:
    """A node of the simulated cluster; ``cluster`` calls :meth:`process` every step."""

    def __init__(self, node_id: str, cfg: RaftConfig, bootstrap: Configuration | None,
                 rng: random.Random, *, chunk_size: int, compact_every: int) -> None:
        self.id = node_id
        self.cfg = cfg
        self.bootstrap = bootstrap
        self.rng = rng
        self.chunk_size = chunk_size
        self.compact_every = compact_every
        self.durable = DurableState()
        self.up = True
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        d = self.durable
        self.core = RaftCore(
            self.id, self.cfg,
            InitialState(d.hard, d.snapshot, list(d.entries), self.bootstrap),
            random.Random(self.rng.random()),
        )
        self.sm = KeyValueMachine()
        self.sm.restore(d.snapshot_data)
        self.applied = d.snapshot.index if d.snapshot else 0
        self._staged: list[Callable[[], None]] = []
        self._staged_last: tuple[int, int] | None = None
        self._held: list[Message] = []
        self.sync_at: int | None = None
        self._incoming: dict[int, bytearray] = {}
        self.proposals: dict[tuple[int, int], Callback] = {}
        self._reads: dict[bytes, tuple[str, Callback]] = {}
        self._ready_reads: list[tuple[bytes, int]] = []
        self._ctx = itertools.count()

    # ---------------------------------------------------------------- lifecycle

    def crash(self) -> None:
        """Stop at once: unsynced writes and held messages are lost; requests end unknown."""
        self.up = False
        for cb in self.proposals.values():
            cb("info", None)
        for _key, cb in self._reads.values():
            cb("fail", None)
        self.proposals, self._reads = {}, {}

    def restart(self) -> None:
        self.up = True
        self.restarts += 1
        self._start()

    # ---------------------------------------------------------------- client requests

    def propose(self, command: bytes, cb: Callback) -> None:
        try:
            key = self.core.propose(command)
        except NotLeader as exc:
            cb("fail", exc.leader_hint)
            return
        self.proposals[key] = cb

    def read(self, key: str, cb: Callback) -> None:
        ctx = next(self._ctx).to_bytes(8, "big")
        try:
            self.core.read_index(ctx)
        except NotLeader as exc:
            cb("fail", exc.leader_hint)
            return
        self._reads[ctx] = (key, cb)

    # ---------------------------------------------------------------- driving

    def sync(self) -> list[Message]:
        """The simulated fsync completes: staged writes become durable; returns held messages."""
        for write in self._staged:
            write()
        self._staged = []
        if self._staged_last is not None:
            self.core.persisted(*self._staged_last)
            self._staged_last = None
        self.sync_at = None
        held, self._held = self._held, []
        return held

    def take_ready(self, now: int, fsync_delay: int) -> tuple[Ready, list[Message]]:
        """Run one Ready; returns it and the messages to send now."""
        rd = self.core.ready()
        out = list(rd.messages)
        d = self.durable
        for chunk in rd.snapshot_chunks:
            buf = self._incoming.setdefault(chunk.meta.index, bytearray())
            del buf[chunk.offset:]
            buf.extend(chunk.data)
        if rd.snapshot is not None:
            meta = rd.snapshot
            data = bytes(self._incoming.pop(meta.index, b""))
            self._staged.append(lambda: self._install(meta, data))
            self.sm.restore(data)
            self.applied = meta.index
            self._fail_proposals_from(1)
        if rd.truncate_from is not None:
            index = rd.truncate_from
            self._staged.append(lambda: d.truncate_from(index))
            self._fail_proposals_from(index)
        if rd.entries:
            entries = rd.entries
            self._staged.append(lambda: d.append(entries))
            self._staged_last = (entries[-1].index, entries[-1].term)
        if rd.hard_state is not None:
            hard = rd.hard_state
            self._staged.append(lambda: setattr(d, "hard", hard))
        if rd.soft_state is not None and rd.soft_state.role is not Role.LEADER:
            for cb in self.proposals.values():
                cb("info", rd.soft_state.leader)
            self.proposals = {}
        if self._staged:
            self._held.extend(rd.messages_after_persist)
            if self.sync_at is None:
                self.sync_at = now + fsync_delay
        else:
            out.extend(rd.messages_after_persist)
        for entry in rd.committed:
            self._apply(entry)
        if rd.committed:
            self.core.applied(self.applied)
        self._ready_reads.extend((rs.ctx, rs.index) for rs in rd.read_states)
        for ctx in rd.failed_reads:
            read = self._reads.pop(ctx, None)
            if read is not None:
                read[1]("fail", self.core.leader)
        self._serve_reads()
        for req in rd.snapshot_requests:
            if d.snapshot is None or d.snapshot.index != req.meta.index:
                self.core.report_snapshot_unavailable(req.to)
                continue
            data = d.snapshot_data[req.offset : req.offset + self.chunk_size]
            done = req.offset + len(data) >= len(d.snapshot_data)
            out.append(req.message(data, done))
        self._maybe_compact()
        return rd, out

    def _install(self, meta: SnapshotMeta, data: bytes) -> None:
        self.durable.snapshot, self.durable.snapshot_data = meta, data
        self.durable.entries = []

    def _apply(self, entry: Entry) -> None:
        result = self.sm.apply(entry.data) if entry.kind is EntryKind.NORMAL else None
        self.applied = entry.index
        cb = self.proposals.pop((entry.index, entry.term), None)
        if cb is not None:
            cb("ok", result)

    def _serve_reads(self) -> None:
        if not self._ready_reads:
            return
        waiting = []
        for ctx, index in self._ready_reads:
            if index > self.applied:
                waiting.append((ctx, index))
                continue
            read = self._reads.pop(ctx, None)
            if read is not None:
                read[1]("ok", self.sm.get(read[0]))
        self._ready_reads = waiting

    def _fail_proposals_from(self, index: int) -> None:
        for key in [k for k in self.proposals if k[0] >= index]:
            self.proposals.pop(key)("fail", self.core.leader)

    def _maybe_compact(self) -> None:
        d = self.durable
        base = d.snapshot.index if d.snapshot else 0
        if self.applied - base < self.compact_every or self._staged:
            return
        meta = self.core.snapshot_meta(self.applied)
        # Snapshots are written to a temporary file, fsynced and renamed: durable at once.
        d.compact(meta, self.sm.snapshot())
        self.core.compact(meta)

    def unresolved_below(self, index: int) -> list[tuple[int, int]]:
        """Proposals at or below ``index`` still pending: a broken promise once applied."""
        return [k for k in self.proposals if k[0] <= index]

    @property
    def role(self) -> Role:
        return self.core.role

    @property
    def is_member(self) -> bool:
        return self.id in self.core.config.members
