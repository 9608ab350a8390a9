"""The sans-IO Raft state machine: messages, ticks and requests in; a :class:`Ready` out.

:class:`RaftCore` holds no clock, socket or disk. The runtime calls :meth:`~RaftCore.step` for
each received message, :meth:`~RaftCore.tick` once per tick (``RaftConfig.tick`` documents the
timeouts, all counted in ticks), and the request methods (:meth:`~RaftCore.propose`,
:meth:`~RaftCore.read_index`, :meth:`~RaftCore.transfer_leadership`,
:meth:`~RaftCore.change_membership`). None of them returns I/O work: the runtime drains it with
:meth:`~RaftCore.ready` whenever it likes (after one input or after a batch of them: fewer,
larger Readies mean fewer fsyncs and larger appends). ``quorus.raft.ready`` describes how a
Ready is executed and acknowledged (:meth:`~RaftCore.persisted`, :meth:`~RaftCore.applied`).

Implemented: pre-vote, check-quorum with leader leases on votes, a no-op entry on election,
pipelined replication bounded by in-flight messages and bytes, fast backtracking, commit by a
majority of the current configuration's voters (only entries of the current term), snapshots
sent in chunks, ReadIndex (local and forwarded by followers), leadership transfer, and
single-server membership changes with learners (see ``quorus.raft.membership``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from quorus.raft.errors import (
    LeadershipTransferInProgress,
    LeadershipTransferRejected,
    MembershipChangeRejected,
    NotLeader,
)
from quorus.raft.log import RaftLog
from quorus.raft.membership import EMPTY, ChangeKind, ConfChange, Configuration
from quorus.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    PreVote,
    PreVoteResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    SnapshotMeta,
    TimeoutNow,
    VoteResponse,
)
from quorus.raft.progress import Progress, ReplicationState
from quorus.raft.ready import (
    Event,
    EventKind,
    HardState,
    ReadState,
    Ready,
    Role,
    SnapshotRequest,
    SoftState,
)

#: Bytes counted per entry on top of its data when sizing appends and the in-flight window.
ENTRY_OVERHEAD = 24

_AFTER_PERSIST = (RequestVote, VoteResponse, AppendResponse, HeartbeatResponse,
                  InstallSnapshotResponse)
_FROM_LEADER = (AppendEntries, Heartbeat, InstallSnapshot)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Tunables. Timeouts count ticks; with the default 50 ms tick the heartbeat is 50 ms and
    the election timeout is drawn from 150-300 ms, anew after each reset."""

    heartbeat_ticks: int = 1
    election_ticks_min: int = 3
    election_ticks_max: int = 6
    pre_vote: bool = True
    check_quorum: bool = True
    max_append_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 32 << 20

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_ticks < self.election_ticks_min <= self.election_ticks_max:
            raise ValueError(
                "need 0 < heartbeat_ticks < election_ticks_min <= election_ticks_max, got "
                f"{self.heartbeat_ticks}, {self.election_ticks_min}, {self.election_ticks_max}"
            )
        if self.max_append_bytes < 1 or self.max_inflight_msgs < 1 or self.max_inflight_bytes < 1:
            raise ValueError("append and in-flight limits must be positive")


@dataclass(frozen=True, slots=True)
class InitialState:
    """What the runtime loaded from storage at start-up.

    ``entries`` are the log entries after ``snapshot`` (consecutive). ``bootstrap`` is the
    configuration of a brand-new cluster, used only when neither the log nor the snapshot holds
    one; a node joining an existing cluster starts with neither and learns it from the leader.
    ``applied`` is the index the state machine reflects (default: the snapshot's).
    """

    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta | None = None
    entries: Sequence[Entry] = ()
    bootstrap: Configuration | None = None
    applied: int | None = None


@dataclass(slots=True)
class _PendingRead:
    seq: int
    ctx: bytes
    index: int
    requester: str | None


@dataclass(slots=True)
class _Incoming:
    index: int
    term: int
    next_offset: int


@dataclass(slots=True)
class _Outbox:
    messages: list[Message] = field(default_factory=list)
    after_persist: list[Message] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    failed_reads: list[bytes] = field(default_factory=list)
    snapshot_chunks: list[InstallSnapshot] = field(default_factory=list)
    snapshot_requests: list[SnapshotRequest] = field(default_factory=list)
    snapshot: SnapshotMeta | None = None


class RaftCore:
    """One Raft node's state machine. Not thread-safe; the runtime serialises every call."""

    def __init__(self, node_id: str, config: RaftConfig | None = None,
                 state: InitialState | None = None, rng: random.Random | int | None = None
                 ) -> None:
        if not node_id:
            raise ValueError("a Raft node needs a non-empty id")
        state = state or InitialState()
        self.id = node_id
        self.cfg = config or RaftConfig()
        self._rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        hs = state.hard_state
        applied = state.applied if state.applied is not None else (
            state.snapshot.index if state.snapshot else 0)
        self.log = RaftLog(state.snapshot, list(state.entries), hs.commit, applied)
        self.term = hs.term
        self.vote = hs.vote
        self.leader: str | None = None
        self.role = Role.FOLLOWER
        self._snapshot = state.snapshot
        base = state.snapshot.config if state.snapshot else (state.bootstrap or EMPTY)
        self._configs: list[tuple[int, Configuration]] = [(self.log.offset, base)]
        for entry in self.log.entries:
            if entry.kind is EntryKind.CONFIG:
                self._configs.append((entry.index, Configuration.decode(entry.data)))
        self.config = self._configs[-1][1]
        self.now = 0
        self._applied = self.log.applying
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = self._random_timeout()
        self._election_started = 0
        self._votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self._committed_in_term = False
        self._read_seq = 0
        self._read_round_due = False
        self._reads: deque[_PendingRead] = deque()
        self._reads_before_commit: list[tuple[bytes, str | None]] = []
        self.transferee: str | None = None
        self._incoming: _Incoming | None = None
        self._out = _Outbox()
        self._hard = HardState(self.term, self.vote, self.log.committed)
        self._soft = SoftState(self.role, self.leader, self.term)
        self._set_follower_role()

    # ------------------------------------------------------------------ inspection

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def commit_index(self) -> int:
        return self.log.committed

    def config_at(self, index: int) -> Configuration:
        """The configuration in effect at log index ``index``."""
        for at, conf in reversed(self._configs):
            if at <= index:
                return conf
        return self._configs[0][1]

    @property
    def config_pending(self) -> bool:
        """Whether the latest configuration entry is not committed yet."""
        return self._configs[-1][0] > self.log.committed

    # ------------------------------------------------------------------ runtime hooks

    def ready(self) -> Ready:
        """Take everything produced since the last call (see ``quorus.raft.ready``)."""
        if self.role is Role.LEADER:
            self._flush()
        out, self._out = self._out, _Outbox()
        truncate, entries = self.log.take_unstable()
        rd = Ready(
            snapshot=out.snapshot,
            truncate_from=truncate,
            entries=entries,
            messages=out.messages,
            messages_after_persist=out.after_persist,
            committed=self.log.take_committed(),
            read_states=out.read_states,
            failed_reads=out.failed_reads,
            snapshot_chunks=out.snapshot_chunks,
            snapshot_requests=out.snapshot_requests,
            events=out.events,
        )
        hard = HardState(self.term, self.vote, self.log.committed)
        if hard != self._hard:
            rd.hard_state = self._hard = hard
        soft = SoftState(self.role, self.leader, self.term)
        if soft != self._soft:
            rd.soft_state = self._soft = soft
        return rd

    def persisted(self, index: int, term: int) -> None:
        """The runtime made entries up to ``(index, term)`` durable (ignored if overwritten)."""
        log = self.log
        if index > log.stable and index <= log.last_index and log.term_at(index) == term:
            log.stable = index
            if self.role is Role.LEADER:
                self._maybe_commit()

    def applied(self, index: int) -> None:
        """The state machine has applied every entry up to ``index``."""
        if index > self.log.applying:
            raise ValueError(f"applied({index}) beyond the entries handed out "
                             f"({self.log.applying})")
        self._applied = max(self._applied, index)

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """Metadata for a snapshot of the state machine taken at ``index`` (already applied)."""
        term = self.log.term_at(index)
        if term is None or index > self._applied or index < self.log.offset:
            raise ValueError(f"no snapshot possible at index {index}: not applied or compacted")
        return SnapshotMeta(index, term, self.config_at(index))

    def compact(self, meta: SnapshotMeta) -> None:
        """A durable snapshot now covers ``meta``: forget the entries it replaces."""
        if self.log.term_at(meta.index) != meta.term or meta.index > self.log.applying:
            raise ValueError(f"snapshot {meta.index}/{meta.term} does not match the applied log")
        self.log.compact(meta)
        self._snapshot = meta
        keep = [c for c in self._configs if c[0] > meta.index]
        self._configs = [(meta.index, meta.config), *keep]

    def report_snapshot_unavailable(self, peer: str) -> None:
        """The runtime could not read the snapshot a :class:`SnapshotRequest` named."""
        pr = self.progress.get(peer)
        if pr is not None and pr.state is ReplicationState.SNAPSHOT:
            pr.become_probe(self.now)

    # ------------------------------------------------------------------ requests

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command; returns its ``(index, term)``. Raises :class:`NotLeader`."""
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.transferee is not None:
            raise LeadershipTransferInProgress(self.transferee)
        index = self.log.last_index + 1
        self.log.entries.append(Entry(index, self.term, EntryKind.NORMAL, data))
        return index, self.term

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read: a ``ReadState(ctx, index)`` (or ``ctx`` in
        ``failed_reads``) comes out of a later Ready. Raises :class:`NotLeader` when no leader
        is known to forward it to."""
        if self.role is Role.LEADER:
            self._leader_read(ctx, None)
        elif self.leader is not None:
            self._send(ReadIndexRequest(self.term, self.id, self.leader, ctx))
        else:
            raise NotLeader(None)

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to voter ``to``: catch it up, then tell it to campaign at once.

        Proposals are refused meanwhile; the transfer is abandoned after an election timeout.
        """
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if to == self.id or self.transferee == to:
            return
        if to not in self.config.voters or to not in self.progress:
            raise LeadershipTransferRejected(f"cannot transfer leadership to {to!r}: not a voter")
        self.transferee = to
        self._election_elapsed = 0
        self._event(EventKind.TRANSFER_STARTED, peer=to)
        if self.progress[to].match == self.log.last_index:
            self._send(TimeoutNow(self.term, self.id, to))

    def change_membership(self, change: ConfChange) -> tuple[int, int]:
        """Append a configuration entry for one change; returns its ``(index, term)``.

        Refused while a previous change is uncommitted, before the leader has committed an
        entry of its term, and during a leadership transfer.
        """
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.transferee is not None:
            raise LeadershipTransferInProgress(self.transferee)
        if not self._committed_in_term:
            raise MembershipChangeRejected("the leader has not committed an entry of its term yet")
        if self.config_pending:
            raise MembershipChangeRejected("a membership change is still uncommitted")
        new = self.config.apply(change)
        index = self.log.last_index + 1
        self.log.entries.append(Entry(index, self.term, EntryKind.CONFIG, new.encode()))
        self._set_config(index, new)
        return index, self.term

    # ------------------------------------------------------------------ ticks

    def tick(self) -> None:
        """One logical tick."""
        self.now += 1
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if (self.leader is not None and self.role is not Role.LEARNER
                and self._election_elapsed > self.cfg.heartbeat_ticks):
            self._event(EventKind.HEARTBEAT_MISSED, peer=self.leader)
        if self._promotable() and self._election_elapsed >= self._timeout:
            self._campaign(pre=self.cfg.pre_vote)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.cfg.election_ticks_min:
            self._election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self._event(EventKind.CHECK_QUORUM_STEP_DOWN)
                self._become_follower(self.term, None)
                return
            if self.transferee is not None:
                self._event(EventKind.TRANSFER_ABORTED, peer=self.transferee)
                self.transferee = None
        if self._heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()
        stale = self.now - self.cfg.election_ticks_min
        for peer, pr in self.progress.items():
            if pr.state is ReplicationState.SNAPSHOT and pr.last_progress_tick <= stale:
                pr.last_progress_tick = self.now
                self._request_chunk(peer, pr)
        self._maybe_promote()

    def _quorum_active(self) -> bool:
        active = {self.id}
        for peer, pr in self.progress.items():
            if pr.recent_active:
                active.add(peer)
            pr.recent_active = False
        return self.config.has_quorum(active)

    # ------------------------------------------------------------------ step

    def step(self, m: Message) -> None:
        """Handle one message received from the network (already decoded and checked)."""
        if m.dst != self.id:
            return
        members = self.config.members
        if members and m.src not in members and not (
            isinstance(m, _FROM_LEADER) and m.term >= self.term
        ):
            # A removed node must not disrupt the cluster; a leader elected in a configuration
            # this node has not seen yet must still reach it.
            self._event(EventKind.NON_MEMBER_IGNORED, peer=m.src)
            return
        if m.term > self.term:
            if isinstance(m, PreVote | RequestVote):
                in_lease = (self.cfg.check_quorum and self.leader is not None
                            and self._election_elapsed < self.cfg.election_ticks_min)
                if in_lease and not (isinstance(m, RequestVote) and m.transfer):
                    return
            if isinstance(m, PreVote) or (isinstance(m, PreVoteResponse) and m.granted):
                pass
            else:
                self._become_follower(m.term, m.src if isinstance(m, _FROM_LEADER) else None)
        elif m.term < self.term:
            if isinstance(m, AppendEntries | Heartbeat):
                self._send(AppendResponse(self.term, self.id, m.src, False, 0))
            elif isinstance(m, PreVote):
                self._send(PreVoteResponse(self.term, self.id, m.src, False))
            return
        if isinstance(m, PreVote | RequestVote):
            self._on_vote_request(m)
        elif isinstance(m, ReadIndexResponse):
            if m.success:
                self._out.read_states.append(ReadState(m.ctx, m.index))
            else:
                self._out.failed_reads.append(m.ctx)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif isinstance(m, _FROM_LEADER):
            if self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
                self._become_follower(self.term, m.src)
            self._election_elapsed = 0
            if self.leader != m.src:
                self._set_leader(m.src)
            if isinstance(m, AppendEntries):
                self._on_append(m)
            elif isinstance(m, Heartbeat):
                self.log.committed = max(self.log.committed,
                                         min(m.commit, self.log.last_index))
                self._send(HeartbeatResponse(self.term, self.id, m.src, m.seq))
            else:
                self._on_snapshot_chunk(m)
        elif isinstance(m, PreVoteResponse):
            if self.role is Role.PRE_CANDIDATE:
                self._tally(m.src, m.granted)
        elif isinstance(m, VoteResponse):
            if self.role is Role.CANDIDATE:
                self._tally(m.src, m.granted)
        elif isinstance(m, TimeoutNow):
            if self._promotable():
                self._campaign(pre=False, transfer=True)
        elif isinstance(m, ReadIndexRequest):
            self._send(ReadIndexResponse(self.term, self.id, m.src, m.ctx, 0, False))

    def _step_leader(self, m: Message) -> None:
        if isinstance(m, AppendResponse):
            self._on_append_response(m)
        elif isinstance(m, HeartbeatResponse):
            pr = self.progress.get(m.src)
            if pr is None:
                return
            pr.recent_active = True
            if m.seq > pr.acked_seq:
                pr.acked_seq = m.seq
                self._release_reads()
            if pr.match < self.log.last_index:
                if pr.state is ReplicationState.PROBE:
                    pr.paused = False
                elif (pr.state is ReplicationState.REPLICATE and pr.inflight
                      and self.now - pr.last_progress_tick >= self.cfg.election_ticks_min):
                    pr.become_probe(self.now)
        elif isinstance(m, InstallSnapshotResponse):
            self._on_snapshot_response(m)
        elif isinstance(m, ReadIndexRequest):
            self._leader_read(m.ctx, m.src)

    # ------------------------------------------------------------------ elections

    def _random_timeout(self) -> int:
        return self._rng.randint(self.cfg.election_ticks_min, self.cfg.election_ticks_max)

    def _promotable(self) -> bool:
        return self.id in self.config.voters

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        self._election_elapsed = 0
        self._timeout = self._random_timeout()
        self._set_leader(None)
        self._votes = {self.id: True}
        if pre:
            self.role = Role.PRE_CANDIDATE
            self._event(EventKind.PRE_VOTE_STARTED)
            term = self.term + 1
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.vote = self.id
            self._election_started = self.now
            self._event(EventKind.ELECTION_STARTED)
            self._event(EventKind.TERM_CHANGED, value=self.term)
            term = self.term
        if self.config.has_quorum(self._votes):
            if pre:
                self._campaign(pre=False)
            else:
                self._become_leader()
            return
        last_index, last_term = self.log.last_index, self.log.last_term
        for peer in sorted(self.config.voters - {self.id}):
            if pre:
                self._send(PreVote(term, self.id, peer, last_index, last_term))
            else:
                self._send(RequestVote(term, self.id, peer, last_index, last_term, transfer))
            self._event(EventKind.VOTE_REQUEST_SENT, peer=peer)

    def _on_vote_request(self, m: PreVote | RequestVote) -> None:
        self._event(EventKind.VOTE_REQUEST_RECEIVED, peer=m.src)
        pre = isinstance(m, PreVote)
        can_vote = (self.vote == m.src or (self.vote is None and self.leader is None)
                    or (pre and m.term > self.term))
        grant = can_vote and self.log.is_up_to_date(m.last_index, m.last_term)
        if pre:
            self._send(PreVoteResponse(m.term if grant else self.term, self.id, m.src, grant))
        else:
            if grant:
                self.vote = m.src
                self._election_elapsed = 0
            self._send(VoteResponse(self.term, self.id, m.src, grant))

    def _tally(self, voter: str, granted: bool) -> None:
        if voter not in self.config.voters:
            return
        self._votes[voter] = granted
        yes = [v for v, g in self._votes.items() if g]
        no = [v for v, g in self._votes.items() if not g]
        if self.config.has_quorum(yes):
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre=False)
            else:
                self._become_leader()
        elif len(self.config.voters.intersection(no)) > len(self.config.voters) - self.config.quorum:
            self._become_follower(self.term, None)

    def _become_follower(self, term: int, leader: str | None) -> None:
        if self.role is Role.LEADER:
            self._abandon_leadership(leader)
        if term != self.term:
            self.term = term
            self.vote = None
            self._event(EventKind.TERM_CHANGED, value=term)
        self._set_follower_role()
        self._set_leader(leader)
        self._election_elapsed = 0
        self._timeout = self._random_timeout()
        self._votes = {}

    def _set_follower_role(self) -> None:
        self.role = Role.LEARNER if self.id in self.config.learners else Role.FOLLOWER

    def _abandon_leadership(self, hint: str | None) -> None:
        self.progress = {}
        self.transferee = None
        for read in self._reads:
            self._fail_read(read.ctx, read.requester)
        for ctx, requester in self._reads_before_commit:
            self._fail_read(ctx, requester)
        self._reads.clear()
        self._reads_before_commit = []

    def _fail_read(self, ctx: bytes, requester: str | None) -> None:
        if requester is None:
            self._out.failed_reads.append(ctx)
        else:
            self._send(ReadIndexResponse(self.term, self.id, requester, ctx, 0, False))

    def _set_leader(self, leader: str | None) -> None:
        if leader != self.leader:
            self.leader = leader
            if leader is not None:
                self._event(EventKind.LEADER_CHANGED, peer=leader)

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self._set_leader(self.id)
        self.transferee = None
        self._heartbeat_elapsed = 0
        self._election_elapsed = 0
        self._committed_in_term = False
        self._event(EventKind.ELECTION_WON, value=self.now - self._election_started)
        next_index = self.log.last_index + 1
        self.progress = {}
        for peer in sorted(self.config.members - {self.id}):
            pr = Progress(next_index, self.now)
            pr.recent_active = True
            self.progress[peer] = pr
        self.log.entries.append(Entry(next_index, self.term, EntryKind.NOOP, b""))
        self._maybe_commit()

    # ------------------------------------------------------------------ replication

    def _on_append(self, m: AppendEntries) -> None:
        log = self.log
        if m.prev_index < log.committed:
            self._send(AppendResponse(self.term, self.id, m.src, True, log.committed))
            return
        if not log.matches(m.prev_index, m.prev_term):
            if m.prev_index > log.last_index:
                conflict_term, conflict_index = 0, log.last_index + 1
            else:
                conflict_term = log.term_at(m.prev_index) or 0
                conflict_index = log.first_index_of_term(conflict_term, m.prev_index)
            self._send(AppendResponse(self.term, self.id, m.src, False, m.prev_index,
                                      conflict_term, conflict_index))
            return
        had_configs = self._configs[-1][0]
        written_from = log.merge(m.prev_index, m.entries)
        if written_from:
            if had_configs >= written_from:
                self._configs = [c for c in self._configs if c[0] < written_from]
                self.config = self._configs[-1][1]
                self._on_config_change()
            for entry in m.entries:
                if entry.kind is EntryKind.CONFIG and entry.index >= written_from:
                    self._set_config(entry.index, Configuration.decode(entry.data))
        last_new = m.prev_index + len(m.entries)
        if m.commit > log.committed:
            log.committed = max(log.committed, min(m.commit, last_new))
        self._send(AppendResponse(self.term, self.id, m.src, True, last_new))

    def _on_append_response(self, m: AppendResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        if not m.success:
            if m.index == 0 and m.term <= self.term:
                return
            if m.conflict_term > 0:
                last_of_term = self.log.last_index_of_term(m.conflict_term)
                hint = last_of_term + 1 if last_of_term is not None else m.conflict_index
            else:
                hint = m.conflict_index
            if pr.state is ReplicationState.REPLICATE:
                if m.index <= pr.match:
                    return
                pr.become_probe(self.now)
            elif pr.state is not ReplicationState.PROBE or pr.next - 1 != m.index:
                return
            pr.next = max(min(m.index, hint), pr.match + 1)
            pr.paused = False
            return
        if pr.maybe_update(m.index, self.now):
            if pr.state is ReplicationState.PROBE:
                pr.become_replicate(self.now)
            elif pr.state is ReplicationState.SNAPSHOT:
                if pr.match >= pr.snapshot_index:
                    pr.become_probe(self.now)
            else:
                pr.free_to(m.index)
            self._maybe_commit()
            if self.role is not Role.LEADER:
                return
            if m.src == self.transferee and pr.match == self.log.last_index:
                self._send(TimeoutNow(self.term, self.id, m.src))
            if m.src in self.config.promoting:
                self._maybe_promote()
        else:
            if pr.state is ReplicationState.REPLICATE:
                pr.free_to(m.index)
            elif pr.state is ReplicationState.PROBE:
                pr.paused = False

    def _maybe_commit(self) -> None:
        log = self.log
        match = {peer: pr.match for peer, pr in self.progress.items()}
        match[self.id] = log.stable
        index = self.config.committed_index(match)
        if index <= log.committed or log.term_at(index) != self.term:
            return
        log.committed = index
        if not self._committed_in_term:
            self._committed_in_term = True
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for ctx, requester in waiting:
                self._leader_read(ctx, requester)
        if self.id not in self.config.voters and not self.config_pending:
            self._step_down_removed()

    def _step_down_removed(self) -> None:
        """This leader committed a configuration without itself: hand over and step down."""
        best = max(
            (p for p in self.progress if p in self.config.voters),
            key=lambda p: (self.progress[p].match, p),
            default=None,
        )
        if best is not None:
            self._send(TimeoutNow(self.term, self.id, best))
        self._become_follower(self.term, None)

    def _flush(self) -> None:
        """Leader: send every follower what it is missing, as far as its window allows."""
        if self._read_round_due:
            self._read_round_due = False
            self._read_seq += 1
            self._broadcast_heartbeat()
        last = self.log.last_index
        max_msgs, max_bytes = self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes
        for peer, pr in self.progress.items():
            if pr.state is ReplicationState.REPLICATE:
                while pr.next <= last and not pr.window_full(max_msgs, max_bytes):
                    if not self._send_append(peer, pr):
                        break
            elif pr.state is ReplicationState.PROBE and not pr.paused and pr.match < last:
                self._send_append(peer, pr)

    def _send_append(self, peer: str, pr: Progress) -> bool:
        log = self.log
        prev = pr.next - 1
        prev_term = log.term_at(prev)
        if prev_term is None:
            if self._snapshot is None:
                raise AssertionError(f"log compacted to {log.offset} without a snapshot")
            pr.become_snapshot(self._snapshot.index, self.now)
            self._request_chunk(peer, pr)
            return False
        entries = log.entries
        start = prev - log.offset
        stop = start
        size = 0
        limit = self.cfg.max_append_bytes
        end = len(entries)
        while stop < end and size < limit:
            size += len(entries[stop].data) + ENTRY_OVERHEAD
            stop += 1
        batch = tuple(entries[start:stop])
        self._out.messages.append(
            AppendEntries(self.term, self.id, peer, prev, prev_term, batch, log.committed)
        )
        pr.sent(prev + len(batch), size, self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes)
        return True

    def _broadcast_heartbeat(self) -> None:
        commit, seq = self.log.committed, self._read_seq
        for peer, pr in self.progress.items():
            self._out.messages.append(
                Heartbeat(self.term, self.id, peer, min(pr.match, commit), seq)
            )

    # ------------------------------------------------------------------ snapshots

    def _request_chunk(self, peer: str, pr: Progress) -> None:
        meta = self._snapshot
        assert meta is not None
        if meta.index != pr.snapshot_index:
            # The log was compacted again since the transfer began: send the newer snapshot.
            pr.become_snapshot(meta.index, self.now)
        self._out.snapshot_requests.append(
            SnapshotRequest(peer, self.id, self.term, meta, pr.snapshot_offset)
        )

    def _on_snapshot_response(self, m: InstallSnapshotResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        if pr.state is not ReplicationState.SNAPSHOT or m.snapshot_index != pr.snapshot_index:
            return
        pr.last_progress_tick = self.now
        if m.done:
            pr.maybe_update(m.match_index, self.now)
            pr.become_probe(self.now)
            self._maybe_commit()
        elif m.next_offset != pr.snapshot_offset or m.next_offset == 0:
            pr.snapshot_offset = m.next_offset
            self._request_chunk(peer=m.src, pr=pr)

    def _on_snapshot_chunk(self, m: InstallSnapshot) -> None:
        meta, log = m.meta, self.log
        if meta.index <= log.committed or (m.offset == 0 and log.matches(meta.index, meta.term)):
            if meta.index > log.committed:
                log.committed = meta.index
            self._incoming = None
            self._send(InstallSnapshotResponse(self.term, self.id, m.src, meta.index, 0, True,
                                               log.committed))
            return
        inc = self._incoming
        if m.offset == 0:
            inc = self._incoming = _Incoming(meta.index, meta.term, 0)
        elif inc is None or (inc.index, inc.term, inc.next_offset) != (meta.index, meta.term,
                                                                      m.offset):
            expected = inc.next_offset if inc and inc.index == meta.index else 0
            self._send(InstallSnapshotResponse(self.term, self.id, m.src, meta.index, expected,
                                               False))
            return
        assert inc is not None
        self._out.snapshot_chunks.append(m)
        inc.next_offset += len(m.data)
        if not m.done:
            self._send(InstallSnapshotResponse(self.term, self.id, m.src, meta.index,
                                               inc.next_offset, False))
            return
        self._incoming = None
        log.restore(meta)
        self._applied = meta.index
        self._out.snapshot = meta
        self._snapshot = meta
        self._configs = [(meta.index, meta.config)]
        self.config = meta.config
        self._on_config_change()
        self._send(InstallSnapshotResponse(self.term, self.id, m.src, meta.index, 0, True,
                                           meta.index))

    # ------------------------------------------------------------------ reads

    def _leader_read(self, ctx: bytes, requester: str | None) -> None:
        if not self._committed_in_term:
            self._reads_before_commit.append((ctx, requester))
            return
        if self.config.has_quorum({self.id}):
            self._serve_read(ctx, self.log.committed, requester)
            return
        self._reads.append(_PendingRead(self._read_seq + 1, ctx, self.log.committed, requester))
        self._read_round_due = True

    def _release_reads(self) -> None:
        reads = self._reads
        while reads:
            seq = reads[0].seq
            acked = {self.id}
            acked.update(p for p, pr in self.progress.items() if pr.acked_seq >= seq)
            if not self.config.has_quorum(acked):
                return
            read = reads.popleft()
            self._serve_read(read.ctx, read.index, read.requester)

    def _serve_read(self, ctx: bytes, index: int, requester: str | None) -> None:
        if requester is None:
            self._out.read_states.append(ReadState(ctx, index))
        else:
            self._send(ReadIndexResponse(self.term, self.id, requester, ctx, index, True))

    # ------------------------------------------------------------------ membership

    def _set_config(self, index: int, conf: Configuration) -> None:
        self._configs.append((index, conf))
        self.config = conf
        self._on_config_change()

    def _on_config_change(self) -> None:
        self._event(EventKind.CONFIG_CHANGED)
        conf = self.config
        if self.role is Role.LEADER:
            for peer in sorted(conf.members - {self.id} - self.progress.keys()):
                self.progress[peer] = Progress(self.log.last_index, self.now)
                self.progress[peer].recent_active = True
            for peer in sorted(self.progress.keys() - conf.members):
                del self.progress[peer]
            if self.transferee is not None and self.transferee not in conf.voters:
                self.transferee = None
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            if self.id not in conf.voters:
                self._become_follower(self.term, None)
        else:
            self._set_follower_role()

    def _maybe_promote(self) -> None:
        if (not self.config.promoting or not self._committed_in_term or self.config_pending
                or self.transferee is not None):
            return
        for learner in sorted(self.config.promoting):
            pr = self.progress.get(learner)
            if pr is not None and pr.match >= self.log.committed:
                self.change_membership(ConfChange(ChangeKind.ADD_VOTER, learner))
                return

    # ------------------------------------------------------------------ output

    def _send(self, m: Message) -> None:
        if isinstance(m, _AFTER_PERSIST):
            self._out.after_persist.append(m)
        else:
            self._out.messages.append(m)

    def _event(self, kind: EventKind, value: int = 1, peer: str | None = None) -> None:
        self._out.events.append(Event(kind, value, peer))
