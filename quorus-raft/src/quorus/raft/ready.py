"""What the core hands the runtime: :class:`Ready`, and the small records inside it.

The runtime drives the core like this, one batch at a time::

    feed inputs: core.step(msg) for each received message, core.tick() per tick,
                 core.propose(...), core.read_index(...)
    rd = core.ready()
    1. send rd.messages at once (leader appends may go out while the leader's own disk writes)
    2. persist, in this order, with ONE fsync at the end:
         rd.snapshot_chunks (write chunk.data at chunk.offset of the incoming snapshot
         chunk.meta.index), rd.snapshot (the incoming snapshot is complete: install it, restore
         the state machine from it, drop the whole stored log), rd.truncate_from (delete stored
         entries with index >= it), rd.entries (append), rd.hard_state (term, vote, commit)
    3. core.persisted(rd.entries[-1].index, rd.entries[-1].term) if there were entries (or
       core.persisted(snapshot.index, snapshot.term) after a snapshot install)
    4. only now send rd.messages_after_persist (votes, append acks: never before the fsync)
    5. apply rd.committed in order, then core.applied(last index applied)
    6. serve rd.read_states once applied >= their index; fail rd.failed_reads
    7. answer rd.snapshot_requests by reading the local snapshot (see SnapshotRequest)

Readies must be persisted in the order they were handed out; ``messages_after_persist`` of a
Ready go out only after it and every earlier Ready are durable.

Pending proposals: the runtime keys them by ``(index, term)`` as returned by ``propose``.
An applied entry resolves the proposal with the same index AND term only. A proposal fails with
``NotLeader`` when (a) ``rd.truncate_from`` is at or below its index (it was overwritten: it
will never commit), or (b) ``rd.soft_state`` shows this node stopped leading (its outcome is
then unknown: it may still commit under the next leader, so callers treat it as "maybe").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from quorus.raft.messages import Entry, InstallSnapshot, Message, SnapshotMeta


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"
    LEARNER = "learner"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash: the current term, the vote cast in it, the commit index."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts the runtime reports: this node's role, the known leader, the term."""

    role: Role
    leader: str | None
    term: int


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read identified by ``ctx`` may be served once ``index`` is applied."""

    ctx: bytes
    index: int


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Send chunk ``offset`` of the local snapshot ``meta.index`` to ``to``.

    The runtime reads up to its chunk size from that offset of its snapshot and sends
    ``request.message(data, done)``. If it no longer has that snapshot (a newer one replaced
    it) it calls ``core.report_snapshot_unavailable(to)`` and the core asks again.
    """

    to: str
    src: str
    term: int
    meta: SnapshotMeta
    offset: int

    def message(self, data: bytes, done: bool) -> InstallSnapshot:
        return InstallSnapshot(self.term, self.src, self.to, self.meta, self.offset, data, done)


class EventKind(enum.Enum):
    """Things the runtime counts or times; the values are the metric names."""

    ELECTION_STARTED = "raft.election.count"
    ELECTION_WON = "raft.election.duration_ms"
    LEADER_CHANGED = "raft.leader.changes"
    VOTE_REQUEST_SENT = "raft.vote.requests_sent"
    VOTE_REQUEST_RECEIVED = "raft.vote.requests_received"
    HEARTBEAT_MISSED = "raft.heartbeat.missed"
    TERM_CHANGED = "raft.term.current"
    PRE_VOTE_STARTED = "raft.prevote.count"
    CHECK_QUORUM_STEP_DOWN = "raft.leader.check_quorum_step_downs"
    NON_MEMBER_IGNORED = "raft.message.non_member_ignored"
    TRANSFER_STARTED = "raft.transfer.started"
    TRANSFER_ABORTED = "raft.transfer.aborted"
    CONFIG_CHANGED = "raft.membership.changes"


@dataclass(frozen=True, slots=True)
class Event:
    """One metric event. ``value``: ticks for ``ELECTION_WON`` (multiply by the tick length),
    the new term for ``TERM_CHANGED``, 1 otherwise. ``peer`` names the other node, if any."""

    kind: EventKind
    value: int = 1
    peer: str | None = None


@dataclass(slots=True)
class Ready:
    """Everything the core produced since the previous :meth:`RaftCore.ready`."""

    hard_state: HardState | None = None
    soft_state: SoftState | None = None
    snapshot: SnapshotMeta | None = None
    truncate_from: int | None = None
    entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    messages_after_persist: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    failed_reads: list[bytes] = field(default_factory=list)
    snapshot_chunks: list[InstallSnapshot] = field(default_factory=list)
    snapshot_requests: list[SnapshotRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def must_persist(self) -> bool:
        """Whether the runtime has anything to write (and fsync) for this Ready."""
        return bool(
            self.hard_state is not None
            or self.snapshot is not None
            or self.truncate_from is not None
            or self.entries
            or self.snapshot_chunks
        )

    def __bool__(self) -> bool:
        return bool(
            self.must_persist()
            or self.soft_state is not None
            or self.messages
            or self.messages_after_persist
            or self.committed
            or self.read_states
            or self.failed_reads
            or self.snapshot_requests
            or self.events
        )
