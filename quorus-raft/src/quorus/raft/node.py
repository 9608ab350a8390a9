"""The anyio runtime that drives a :class:`~quorus.raft.core.RaftCore`: ``raft`` consensus.

One driver task owns the core. Each turn it feeds the core everything that arrived (peer
messages, ticks, proposals, read requests), takes a :class:`~quorus.raft.ready.Ready` and
carries it out in the order ``ready.py`` prescribes: messages out, then the log, hard state and
snapshot written with ONE fsync in a worker thread, then the messages that must follow the
fsync (votes, acks), then committed entries applied and their proposers answered. Whatever
arrives during an fsync waits for the next turn and is written by the next single fsync: group
commit falls out of the loop's shape.

Member addresses travel in the log itself (address-book entries, handled here and never shown
to the state machine) and in snapshots, so every node can reach members added after it started.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import msgpack
from anyio.abc import TaskGroup
from quorus.core.consensus import (
    ConsensusBackend,
    ConsensusConfig,
    ConsensusUnavailable,
    StateMachine,
)
from quorus.core.consensus import NotLeader as ConsensusNotLeader
from quorus.core.hooks import plugin_manager
from quorus.core.storage import HardState as StoredHardState
from quorus.core.storage import LogEntry, LogStore, SnapshotWriter, StorageError, load_store
from quorus.core.storage import SnapshotMeta as StoredSnapshotMeta
from quorus.raft import messages as wire
from quorus.raft.core import InitialState, RaftCore
from quorus.raft.errors import MembershipChangeRejected, NotLeader, RaftError
from quorus.raft.membership import ChangeKind, ConfChange, Configuration
from quorus.raft.messages import Entry, EntryKind, Message, SnapshotMeta
from quorus.raft.ready import EventKind, HardState, Ready, Role
from quorus.raft.settings import RaftSettings
from quorus.raft.transport import PeerTransport

log = logging.getLogger(__name__)

#: Commands starting with this are the runtime's own address-book entries.
ADDRESS_MARK = b"\x00quorus-raft-addresses\x00"
SNAPSHOT_FORMAT = 2
_ctx = itertools.count(1)
#: A lone fsync runs in the event loop only while recent fsyncs took less than this (a
#: moving average, in seconds): on a quiet disk that saves a thread hop (~0.3 ms) per write;
#: on a busy one (several members syncing the same disk, fsyncs of milliseconds) the loop
#: must not stop for that long, so it goes to the syncer's worker thread.
INLINE_SYNC_LIMIT = 0.001
#: Weight of the newest fsync in that average.
SYNC_AVERAGE_WEIGHT = 0.2


@dataclass(slots=True)
class _SyncJob:
    """A written Ready waiting for its fsync: what to acknowledge and send once durable."""

    index: int | None
    term: int
    after: list[Message]


class _Waiter:
    """The outcome of a request to the driver: awaited (:meth:`wait`), or handed to a callback
    (:meth:`RaftNode.propose_nowait`), in which case no event is ever made."""

    __slots__ = ("_done", "callback", "error", "finished", "result")

    def __init__(self, callback: Callable[[Any, BaseException | None], None] | None = None) -> None:
        self.callback = callback
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._done: anyio.Event | None = None if callback is not None else anyio.Event()

    def resolve(self, result: Any = None) -> None:
        if not self.finished:
            self.finished, self.result = True, result
            self._settled()

    def fail(self, error: BaseException) -> None:
        if not self.finished:
            self.finished, self.error = True, error
            self._settled()

    def _settled(self) -> None:
        if self._done is not None:
            self._done.set()
        if self.callback is not None:
            try:
                self.callback(self.result, self.error)
            except Exception:
                log.exception("raft: a proposal's completion callback failed")

    async def wait(self) -> Any:
        assert self._done is not None
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.result


def _to_stored(entry: Entry) -> LogEntry:
    return LogEntry(entry.index, entry.term, int(entry.kind), entry.data)


def _from_stored(entry: LogEntry) -> Entry:
    return Entry(entry.index, entry.term, EntryKind(entry.kind), entry.data)


class RaftNode(ConsensusBackend):
    """A Raft member; the ``raft`` entry point in ``quorus.consensus``.

    ``config.members`` lists the voters of a new cluster (node id → ``host:port``, this node
    included). A node started with ``options["join"] = True`` belongs to no configuration yet:
    it waits for the leader to add it (``add_member`` on the leader) and needs the addresses
    of the current members in ``members`` only to answer them. See :class:`RaftSettings` for
    the other options.
    """

    def __init__(
        self,
        config: ConsensusConfig,
        state_machine: StateMachine,
        *,
        store: LogStore | None = None,
    ) -> None:
        self.config = config
        self.settings = RaftSettings.from_options(config.options)
        # Looked up once: metrics are emitted on every batch.
        self._hook = plugin_manager().hook
        self._sm = state_machine
        self._store = store
        self._core: RaftCore | None = None
        self._transport: PeerTransport | None = None
        self._addresses: dict[str, str] = dict(config.members)
        self._inbox: deque[Message] = deque()
        self._proposals: deque[tuple[bytes, _Waiter]] = deque()
        self._read_requests: deque[tuple[bytes, _Waiter]] = deque()
        self._calls: deque[tuple[Any, _Waiter]] = deque()
        self._pending: dict[int, tuple[int, _Waiter]] = {}
        self._reads: dict[bytes, _Waiter] = {}
        self._ready_reads: list[tuple[int, bytes]] = []
        self._ticks = 0
        self._wakeup = anyio.Event()
        self._task_group: TaskGroup | None = None
        self._running = False
        self._applied = 0
        self._snapshot_index = 0
        self._incoming: tuple[int, SnapshotWriter] | None = None
        self._leader: str | None = None
        self._role = Role.FOLLOWER
        self._term = 0
        self._leader_changed = anyio.Event()
        self._syncs: deque[_SyncJob] = deque()
        self._sync_wakeup = anyio.Event()
        self._synced = anyio.Event()
        self._syncing = False
        #: Moving average of recent fsyncs' durations, seconds (see INLINE_SYNC_LIMIT).
        self._sync_average = 0.0
        self._poked = False
        self._durable_term_vote: tuple[int, str | None] = (-1, None)
        self._snapshotting = False
        #: A turn is being carried out (by the driver, or inline by _on_batch).
        self._turning = False
        #: A Ready an inline turn left for the driver (it installs a snapshot).
        self._deferred: Ready | None = None
        self.fsyncs = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._store is None:
            self._store = load_store(self.config.storage, self.config.data_dir)
        store = self._store
        try:
            initial = await self._recover(store)
        except BaseException:
            store.close()
            raise
        self._core = RaftCore(self.node_id, self.settings.core, initial)
        self._transport = PeerTransport(
            self.node_id,
            self._addresses.get(self.node_id) or self.settings.listen,
            deliver=self._deliver,
            encode=wire.to_wire,
            decode=wire.from_wire,
            is_member=self._may_connect,
            token=self.settings.token(),
            max_frame_size=self.settings.max_frame_size,
            server_tls=self.settings.server_tls(),
            client_tls=self.settings.client_tls(),
        )
        self._transport.on_batch_delivered(self._on_batch)
        self._transport.set_peers(self._peer_addresses())
        self._running = True
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            await self._task_group.start(self._transport.run)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._task_group.start_soon(self._ticker)
        self._task_group.start_soon(self._syncer)
        self._task_group.start_soon(self._drive)
        log.info("raft node %s started (applied %d)", self.node_id, self._applied)
        return self

    async def _recover(self, store: LogStore) -> InitialState:
        recovered = await anyio.to_thread.run_sync(store.open)
        for repair in recovered.repairs:
            log.warning("raft storage repaired at start-up: %s", repair)
        snapshot: SnapshotMeta | None = None
        if recovered.snapshot is not None:
            meta = recovered.snapshot
            snapshot = SnapshotMeta(meta.index, meta.term, Configuration.decode(meta.configuration))
            data = await anyio.to_thread.run_sync(store.read_snapshot)
            self._restore(data, meta.index)
        hs = recovered.hard_state
        self._durable_term_vote = (hs.term, hs.vote)
        bootstrap = None
        if not self.settings.join and self.config.members:
            bootstrap = Configuration(frozenset(self.config.members))
        return InitialState(
            HardState(hs.term, hs.vote, hs.commit),
            snapshot,
            [_from_stored(e) for e in recovered.entries],
            bootstrap,
            self._applied,
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        self._wakeup.set()
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
        stopped = ConsensusUnavailable("the raft node stopped")
        self._fail_all(stopped)
        if self._incoming is not None:
            self._incoming[1].abort()
            self._incoming = None
        if self._store is not None:
            self._store.close()

    def _fail_all(self, error: BaseException) -> None:
        for _, waiter in self._proposals:
            waiter.fail(error)
        for _, waiter in self._read_requests:
            waiter.fail(error)
        for _, waiter in self._calls:
            waiter.fail(error)
        for _, waiter in self._pending.values():
            waiter.fail(error)
        for waiter in self._reads.values():
            waiter.fail(error)
        self._proposals.clear()
        self._read_requests.clear()
        self._calls.clear()
        self._pending.clear()
        self._reads.clear()

    # -- inputs ---------------------------------------------------------------------------------

    def _deliver(self, sender: str, message: Any) -> None:
        # The transport calls _on_batch after each read's messages: that steps them (or wakes
        # the driver to).
        self._inbox.append(message)

    def _may_connect(self, node_id: str) -> bool:
        core = self._core
        known = node_id in self._addresses
        return known or (core is not None and node_id in core.config.members)

    async def _ticker(self) -> None:
        interval = self.settings.tick_seconds
        next_at = time.monotonic()
        while True:
            next_at += interval
            await anyio.sleep(max(0.0, next_at - time.monotonic()))
            self._ticks += 1
            self._wakeup.set()

    def _not_leader(self, *, maybe_committed: bool = False) -> ConsensusNotLeader:
        leader = self._leader if self._leader != self.node_id else None
        return ConsensusNotLeader(
            leader, self._addresses.get(leader) if leader else None, maybe_committed=maybe_committed
        )

    async def propose(self, command: bytes) -> Any:
        if command.startswith(ADDRESS_MARK):
            raise ValueError("commands may not start with the raft runtime's reserved prefix")
        return await self._propose(bytes(command))

    async def _propose(self, command: bytes) -> Any:
        if not self._running:
            raise ConsensusUnavailable("the raft node is not running")
        if self._role is not Role.LEADER:
            raise self._not_leader()
        waiter = _Waiter()
        self._proposals.append((command, waiter))
        self._wakeup.set()
        return await waiter.wait()

    def propose_nowait(
        self, command: bytes, done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """:meth:`propose` without a task to wait in: ``done(result, None)`` once the command
        is applied, or ``done(None, error)`` with the error :meth:`propose` would raise
        (:class:`~quorus.core.consensus.NotLeader`, ``ConsensusUnavailable``, the state
        machine's own). ``done`` is called exactly once, from the runtime's task (possibly
        before this returns): it must be quick and must not block.

        For servers that read requests and write replies without a task per request.
        """
        if command.startswith(ADDRESS_MARK):
            raise ValueError("commands may not start with the raft runtime's reserved prefix")
        waiter = _Waiter(done)
        if not self._running:
            waiter.fail(ConsensusUnavailable("the raft node is not running"))
        elif self._role is not Role.LEADER:
            waiter.fail(self._not_leader())
        else:
            self._proposals.append((bytes(command), waiter))
            self._wakeup.set()

    async def read_barrier(self) -> None:
        if not self._running:
            raise ConsensusUnavailable("the raft node is not running")
        waiter = _Waiter()
        self._read_requests.append((next(_ctx).to_bytes(8, "big"), waiter))
        self._wakeup.set()
        with anyio.fail_after(self.settings.request_timeout):
            await waiter.wait()

    async def _call(self, request: Any) -> Any:
        """Run a core request (membership change, leadership transfer) in the driver."""
        if not self._running:
            raise ConsensusUnavailable("the raft node is not running")
        waiter = _Waiter()
        self._calls.append((request, waiter))
        self._wakeup.set()
        return await waiter.wait()

    # -- membership -----------------------------------------------------------------------------

    async def add_member(self, node_id: str, address: str, *, voter: bool = True) -> None:
        """Add ``node_id`` at ``address``: its address is committed first, then the node joins
        as a learner and (``voter``) is promoted by the leader once it has caught up. A node
        that is already a member is refused before anything is proposed (its address is
        not replaced: remove it first)."""
        if self._core is not None and node_id in self._configuration().members:
            raise MembershipChangeRejected(
                f"{node_id!r} is already a member: remove it first to give it another address")
        await self._propose(ADDRESS_MARK + msgpack.packb({node_id: address}))
        kind = ChangeKind.ADD_VOTER if voter else ChangeKind.ADD_LEARNER
        await self._call(ConfChange(kind, node_id))
        if voter:
            with anyio.fail_after(self.settings.request_timeout * 10):
                while node_id not in self._configuration().voters:
                    await self._wait_for_change()

    async def remove_member(self, node_id: str) -> None:
        await self._call(ConfChange(ChangeKind.REMOVE, node_id))

    async def transfer_leadership(self, node_id: str) -> None:
        await self._call(("transfer", node_id))
        with anyio.fail_after(self.settings.request_timeout):
            while self._leader != node_id:
                await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        event = self._leader_changed
        await event.wait()

    def _configuration(self) -> Configuration:
        assert self._core is not None
        return self._core.config

    def _peer_addresses(self) -> dict[str, str]:
        members = set(self._core.config.members) if self._core is not None else set()
        members |= set(self.config.members)
        return {n: self._addresses[n] for n in members if n in self._addresses and n != self.node_id}

    # -- the driver ----------------------------------------------------------------------------

    async def _drive(self) -> None:
        core = self._core
        assert core is not None
        while True:
            if self._deferred is None and not self._has_input():
                await self._wakeup.wait()
            self._wakeup = anyio.Event()
            self._poked = False
            rd, self._deferred = self._deferred, None
            if rd is None:
                self._feed(core)
                rd = core.ready()
            if rd:
                self._turning = True
                try:
                    await self._handle(core, rd)
                finally:
                    self._turning = False

    def _on_batch(self) -> None:
        """Peer messages were just delivered (one read's worth): step them through the core
        right here, in the receiving task, unless the driver is busy with a turn of its own.

        This saves a task switch on every hop of a write: a follower's append is written,
        synced and acknowledged, and a leader's acknowledgements commit and apply, without
        waiting for the driver to be scheduled. Proposals, reads and ticks stay with the
        driver (once per loop iteration), so concurrent proposals still share one fsync.
        """
        core = self._core
        if not self._inbox or core is None:
            return
        if self._turning or self._deferred is not None or not self._running:
            self._wakeup.set()
            return
        inbox, self._inbox = self._inbox, deque()
        for message in inbox:
            core.step(message)
        rd = core.ready()
        if not rd:
            return
        if rd.snapshot is not None or rd.snapshot_chunks:
            # Installing a snapshot takes worker threads: the driver does it, before anything
            # else (no inline turn runs meanwhile).
            self._deferred = rd
            self._wakeup.set()
            return
        self._turning = True
        try:
            self._handle_now(core, rd)
        finally:
            self._turning = False

    def _has_input(self) -> bool:
        return bool(
            self._poked
            or self._inbox
            or self._ticks
            or self._proposals
            or self._read_requests
            or self._calls
        )

    def _feed(self, core: RaftCore) -> None:
        inbox, self._inbox = self._inbox, deque()
        for message in inbox:
            core.step(message)
        for _ in range(min(self._ticks, 10)):
            core.tick()
        self._ticks = 0
        while self._proposals:
            command, waiter = self._proposals.popleft()
            try:
                index, term = core.propose(command)
            except NotLeader:
                waiter.fail(self._not_leader())
                continue
            self._pending[index] = (term, waiter)
        while self._read_requests:
            ctx, waiter = self._read_requests.popleft()
            try:
                core.read_index(ctx)
            except NotLeader:
                waiter.fail(self._not_leader())
                continue
            self._reads[ctx] = waiter
        while self._calls:
            request, waiter = self._calls.popleft()
            try:
                if isinstance(request, ConfChange):
                    index, term = core.change_membership(request)
                    self._pending[index] = (term, waiter)
                else:
                    core.transfer_leadership(request[1])
                    waiter.resolve()
            except NotLeader:
                waiter.fail(self._not_leader())
            except RaftError as exc:
                waiter.fail(exc)

    async def _handle(self, core: RaftCore, rd: Ready) -> None:
        transport = self._transport
        assert transport is not None
        if rd.snapshot is None and not rd.snapshot_chunks:
            self._handle_now(core, rd)
            return
        # Rare: wait for the syncs in flight, then install and sync the snapshot.
        transport.send_all(rd.messages)
        if rd.truncate_from is not None:
            self._fail_from(rd.truncate_from)
        await self._drain_syncs()
        await self._persist_snapshot(core, rd)
        transport.send_all(rd.messages_after_persist)
        self._finish(core, rd)

    def _handle_now(self, core: RaftCore, rd: Ready) -> None:
        """Carry out a Ready that installs no snapshot, without yielding to other tasks."""
        transport = self._transport
        assert transport is not None
        assert self._store is not None
        # Out first (written to the sockets now), so the followers' fsyncs run while this
        # node's does: the leader counts itself only once its own fsync below is done.
        transport.send_all(rd.messages)
        if rd.truncate_from is not None:
            self._fail_from(rd.truncate_from)
        if self._commit_only(rd) and not self._syncs and not self._syncing:
            # Only the commit index moved. It is a hint for recovery (Raft finds the commit
            # point again after a restart), so it is written now and made durable by the next
            # fsync instead of costing one of its own on every request's path.
            self._write(rd)
            transport.send_all(rd.messages_after_persist)
        elif (rd.must_persist() and not self._syncs and not self._syncing
              and not self._snapshotting and not self._busy()
              and self._sync_average < INLINE_SYNC_LIMIT):
            # Nothing else is being synced or waiting, and fsyncs are quick: fsync here and
            # now. A blocking call in the event loop, on purpose: on this path (a lone request)
            # handing the fsync to the syncer task and a worker thread costs more than the
            # fsync itself (measured: two task switches and a thread hop, ~0.3 ms, against
            # ~0.2 ms for fdatasync). Not while a snapshot is being written: the log's fsync
            # may then wait for the disk to take the snapshot's data, and the loop must keep
            # heartbeats and elections going.
            self._write(rd)
            started = time.perf_counter()
            self._store.sync()
            self._synced_in(time.perf_counter() - started)
            if rd.entries:
                core.persisted(rd.entries[-1].index, rd.entries[-1].term)
            transport.send_all(rd.messages_after_persist)
        elif rd.must_persist():
            self._write(rd)
            self._syncs.append(_SyncJob(
                rd.entries[-1].index if rd.entries else None,
                rd.entries[-1].term if rd.entries else 0,
                rd.messages_after_persist,
            ))
            self._sync_wakeup.set()
        elif self._syncs or self._syncing:
            # Nothing to write, but what it sends must still follow earlier writes.
            self._syncs.append(_SyncJob(None, 0, rd.messages_after_persist))
            self._sync_wakeup.set()
        else:
            transport.send_all(rd.messages_after_persist)
        self._finish(core, rd)

    def _finish(self, core: RaftCore, rd: Ready) -> None:
        """What follows persisting: apply, answer, serve reads, snapshot requests, metrics."""
        if rd.committed:
            self._apply(rd.committed)
            core.applied(self._applied)
        if rd.soft_state is not None:
            # After applying: entries committed in this Ready answer their proposers first.
            self._soft_state_changed(rd)
        for state in rd.read_states:
            self._ready_reads.append((state.index, state.ctx))
        for ctx in rd.failed_reads:
            waiter = self._reads.pop(ctx, None)
            if waiter is not None:
                waiter.fail(self._not_leader())
        if self._ready_reads:
            self._serve_reads()
        for request in rd.snapshot_requests:
            assert self._task_group is not None
            self._task_group.start_soon(self._send_snapshot_chunk, core, request)
        for event in rd.events:
            if event.kind is EventKind.ELECTION_WON:  # its value counts ticks
                self._metric(event.kind.value, "histogram",
                             event.value * self.settings.tick_seconds * 1000)
            elif event.kind is EventKind.TERM_CHANGED:
                self._metric(event.kind.value, "gauge", event.value)
            else:
                self._metric(event.kind.value, "counter", event.value)
        self._maybe_snapshot(core)

    def _soft_state_changed(self, rd: Ready) -> None:
        soft = rd.soft_state
        assert soft is not None
        was_leader = self._role is Role.LEADER
        self._role, self._leader, self._term = soft.role, soft.leader, soft.term
        if was_leader and soft.role is not Role.LEADER:
            # The outcome of proposals in flight is unknown now: they may still commit under
            # the next leader, or be overwritten. Their callers are told at once.
            error = self._not_leader(maybe_committed=True)
            for _, waiter in self._pending.values():
                waiter.fail(error)
            self._pending.clear()
        self._leader_changed.set()
        self._leader_changed = anyio.Event()
        self._metric("raft.term.current", "gauge", soft.term)

    def _fail_from(self, index: int) -> None:
        error = self._not_leader()
        for at in [i for i in self._pending if i >= index]:
            self._pending.pop(at)[1].fail(error)

    def _synced_in(self, seconds: float) -> None:
        self.fsyncs += 1
        self._sync_average += SYNC_AVERAGE_WEIGHT * (seconds - self._sync_average)
        self._metric("raft.fsync.latency_ms", "histogram", seconds * 1e3)

    def _busy(self) -> bool:
        """Whether more work is already waiting: then an fsync goes to the syncer, so the loop
        keeps batching, instead of blocking the loop here."""
        return bool(self._inbox or self._proposals or self._read_requests)

    def _commit_only(self, rd: Ready) -> bool:
        """Whether the only thing to persist is a new commit index (same term and vote)."""
        hs = rd.hard_state
        return (
            hs is not None
            and not rd.entries
            and rd.truncate_from is None
            and (hs.term, hs.vote) == self._durable_term_vote
        )

    def _write(self, rd: Ready) -> None:
        """Hand a Ready's log writes to the store (buffered; made durable by the syncer)."""
        store = self._store
        assert store is not None
        if rd.truncate_from is not None:
            # A truncation below what a snapshot installed in the same Ready replaced refers to
            # entries already gone with the old log: only what follows the snapshot (if
            # anything) is still to drop.
            start = max(rd.truncate_from, store.first_index)
            if start <= store.last_index:
                store.truncate_from(start)
        if rd.entries:
            store.append([_to_stored(e) for e in rd.entries])
        if rd.hard_state is not None:
            hs = rd.hard_state
            store.set_hard_state(StoredHardState(hs.term, hs.vote, hs.commit))
            # Becomes durable with the sync that follows every write except commit-only ones,
            # which never change the term or vote.
            self._durable_term_vote = (hs.term, hs.vote)

    async def _syncer(self) -> None:
        """Make written Readies durable: one fsync for everything queued, in a worker thread,
        while the driver goes on writing the next ones; then acknowledge them in order."""
        store, core, transport = self._store, self._core, self._transport
        assert store is not None and core is not None and transport is not None  # noqa: PT018
        while True:
            if not self._syncs:
                await self._sync_wakeup.wait()
                self._sync_wakeup = anyio.Event()
                continue
            jobs, self._syncs = self._syncs, deque()
            self._syncing = True
            started = time.perf_counter()
            try:
                finish = store.begin_sync()
                await anyio.to_thread.run_sync(finish, abandon_on_cancel=False)
            finally:
                self._syncing = False
            self._synced_in(time.perf_counter() - started)
            for job in jobs:
                if job.index is not None:
                    core.persisted(job.index, job.term)
                transport.send_all(job.after)
            self._poked = True
            self._wakeup.set()
            if not self._syncs:
                self._synced.set()
                self._synced = anyio.Event()

    async def _drain_syncs(self) -> None:
        while self._syncs or self._syncing:
            await self._synced.wait()

    async def _persist_snapshot(self, core: RaftCore, rd: Ready) -> None:
        store = self._store
        assert store is not None
        for chunk in rd.snapshot_chunks:
            self._receive_chunk(chunk.meta, chunk.offset, chunk.data)
        installed = rd.snapshot
        if installed is not None:
            await self._install_snapshot(installed)
        self._write(rd)
        await anyio.to_thread.run_sync(store.sync, abandon_on_cancel=False)
        self.fsyncs += 1
        if installed is not None:
            core.persisted(installed.index, installed.term)
        if rd.entries:
            core.persisted(rd.entries[-1].index, rd.entries[-1].term)

    # -- applying -------------------------------------------------------------------------------

    def _apply(self, entries: list[Entry]) -> None:
        for entry in entries:
            result: Any = None
            error: BaseException | None = None
            if entry.kind is EntryKind.NORMAL:
                if entry.data.startswith(ADDRESS_MARK):
                    self._learn_addresses(entry.data[len(ADDRESS_MARK) :])
                else:
                    try:
                        result = self._sm.apply(entry.index, entry.data)
                    except Exception as exc:
                        error = exc
            elif entry.kind is EntryKind.CONFIG:
                self._configuration_applied()
            self._applied = entry.index
            pending = self._pending.pop(entry.index, None)
            if pending is None:
                continue
            term, waiter = pending
            if term != entry.term:
                # Another entry took this index: the proposal was overwritten.
                waiter.fail(self._not_leader())
            elif error is not None:
                waiter.fail(error)
            else:
                waiter.resolve(result)
        self._metric("raft.commit.index", "gauge", self._applied)
        assert self._core is not None
        self._metric("raft.apply.lag", "gauge", self._core.commit_index - self._applied)

    def _learn_addresses(self, data: bytes) -> None:
        try:
            update = msgpack.unpackb(data)
        except ValueError:
            log.error("raft: an address-book entry is not msgpack; ignored")
            return
        self._addresses.update({str(k): str(v) for k, v in update.items()})
        if self._transport is not None:
            self._transport.set_peers(self._peer_addresses())

    def _configuration_applied(self) -> None:
        if self._transport is not None:
            self._transport.set_peers(self._peer_addresses())
        self._leader_changed.set()
        self._leader_changed = anyio.Event()
        self._metric("raft.membership.voters", "gauge", len(self._configuration().voters))

    def _serve_reads(self) -> None:
        waiting = []
        for index, ctx in self._ready_reads:
            if index > self._applied:
                waiting.append((index, ctx))
                continue
            waiter = self._reads.pop(ctx, None)
            if waiter is not None:
                waiter.resolve()
        self._ready_reads = waiting

    # -- snapshots ------------------------------------------------------------------------------

    def _snapshot_parts(self) -> Callable[[], Iterable[bytes]]:
        """A snapshot as pieces written one after the other: a length-prefixed msgpack header
        (format, member addresses), then the state machine's bytes. Taken in the loop; the
        returned function runs in the writer thread. A state machine with ``snapshot_view``
        produces its bytes there too, so a large state never stalls the loop for long."""
        header: bytes = msgpack.packb([SNAPSHOT_FORMAT, dict(self._addresses)])
        head = [len(header).to_bytes(4, "big"), header]
        view = getattr(self._sm, "snapshot_view", None)
        if view is not None:
            produce: Callable[[], Iterable[bytes]] = view()
            return lambda: itertools.chain(head, produce())
        state = self._sm.snapshot()
        return lambda: [*head, state]

    def _restore(self, data: bytes, index: int) -> None:
        try:
            size = int.from_bytes(data[:4], "big")
            fmt, addresses = msgpack.unpackb(data[4 : 4 + size])
        except (ValueError, TypeError) as exc:
            raise RaftError(f"snapshot at index {index} is not a raft snapshot: {exc}") from exc
        if fmt != SNAPSHOT_FORMAT:
            raise RaftError(f"snapshot at index {index} has unknown format {fmt!r}")
        self._addresses.update({str(k): str(v) for k, v in addresses.items()})
        self._sm.restore(memoryview(data)[4 + size :].tobytes(), index)
        self._applied = self._snapshot_index = index

    def _maybe_snapshot(self, core: RaftCore) -> None:
        """Start a snapshot when enough entries were applied since the last one.

        Only the state machine's bytes are taken here, in the loop (they must match the applied
        index); writing them runs in the background, so heartbeats and appends go on meanwhile.
        """
        if self._snapshotting or self._applied - self._snapshot_index < self.config.snapshot_every:
            return
        assert self._task_group is not None
        meta = core.snapshot_meta(self._applied)
        parts = self._snapshot_parts()
        self._snapshotting = True
        self._task_group.start_soon(self._write_snapshot, core, meta, parts)

    async def _write_snapshot(
        self, core: RaftCore, meta: SnapshotMeta, parts: Callable[[], Iterable[bytes]]
    ) -> None:
        store = self._store
        assert store is not None
        stored = StoredSnapshotMeta(meta.index, meta.term, meta.config.encode())
        try:
            written = await anyio.to_thread.run_sync(
                lambda: store.save_snapshot(stored, parts()), abandon_on_cancel=False
            )
        finally:
            self._snapshotting = False
        # Back in the loop: drop the log the snapshot covers. A newer snapshot installed from
        # the leader meanwhile has already replaced it all.
        try:
            store.compact(meta.index)
            core.compact(meta)
        except (ValueError, StorageError) as exc:
            log.info("raft: snapshot at %d superseded: %s", meta.index, exc)
            return
        self._snapshot_index = max(self._snapshot_index, meta.index)
        log.info("raft: snapshot at %d (%d bytes); log compacted", meta.index, written.size)

    async def _send_snapshot_chunk(self, core: RaftCore, request: Any) -> None:
        store = self._store
        assert store is not None
        assert self._transport is not None
        current = store.snapshot_meta
        if current is None or current.index != request.meta.index:
            core.report_snapshot_unavailable(request.to)
            return
        size = self.settings.snapshot_chunk_bytes
        data = await anyio.to_thread.run_sync(store.read_snapshot, request.offset, size)
        done = request.offset + len(data) >= current.size
        self._transport.send(request.to, request.message(data, done))

    def _receive_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        store = self._store
        assert store is not None
        if self._incoming is None or self._incoming[0] != meta.index or offset == 0:
            if self._incoming is not None:
                self._incoming[1].abort()
            stored = StoredSnapshotMeta(meta.index, meta.term, meta.config.encode())
            self._incoming = (meta.index, store.snapshot_writer(stored))
        self._incoming[1].write(data)

    async def _install_snapshot(self, meta: SnapshotMeta) -> None:
        store = self._store
        assert store is not None
        if self._incoming is None or self._incoming[0] != meta.index:
            raise RaftError(f"asked to install snapshot {meta.index} that was never received")
        writer = self._incoming[1]
        self._incoming = None
        stored = await anyio.to_thread.run_sync(writer.commit, abandon_on_cancel=False)
        await anyio.to_thread.run_sync(store.reset, stored, abandon_on_cancel=False)
        data = await anyio.to_thread.run_sync(store.read_snapshot)
        self._restore(data, meta.index)
        self._fail_from(1)
        if self._transport is not None:
            self._transport.set_peers(self._peer_addresses())

    # -- status ---------------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def leader_id(self) -> str | None:
        return self._leader if self._running else None

    @property
    def is_leader(self) -> bool:
        return self._running and self._role is Role.LEADER

    def status(self) -> dict[str, Any]:
        core = self._core
        configuration = core.config if core is not None else Configuration(frozenset())
        return {
            "backend": "raft",
            "node_id": self.node_id,
            "role": self._role.value if self._running else "stopped",
            "leader": self._leader,
            "term": self._term,
            "commit_index": core.commit_index if core is not None else 0,
            "applied_index": self._applied,
            "snapshot_index": self._snapshot_index,
            "voters": sorted(configuration.voters),
            "learners": sorted(configuration.learners),
            "members": {n: self._addresses.get(n, "?") for n in sorted(configuration.members)},
            "fsyncs": self.fsyncs,
        }

    def _metric(self, name: str, kind: str, value: float) -> None:
        if math.isfinite(value):
            self._hook.quorus_metric(
                name=name, kind=kind, value=value, labels={"node": self.node_id}
            )


__all__ = ["ADDRESS_MARK", "RaftNode"]
