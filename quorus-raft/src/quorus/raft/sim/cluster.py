"""A simulated cluster: nodes, network and clock under one seed, with Raft's invariants
checked after every step.

Checked properties (section 5 of the Raft paper, Figure 3):

- election safety: at most one leader per term;
- leader append-only: a leader never truncates its log, and its entries keep their terms;
- log matching: two entries with the same index and term hold the same data and follow
  entries of the same term (so, inductively, identical prefixes);
- leader completeness: a new leader holds every entry committed so far;
- state machine safety: no two nodes apply different entries at one index;
- proposals are resolved only by their own entry: none stays pending below the applied index.

Every violation raises :class:`InvariantViolation` naming the step and the nodes involved.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from quorus.raft.core import RaftConfig
from quorus.raft.membership import Configuration
from quorus.raft.messages import Entry
from quorus.raft.ready import Ready, Role
from quorus.raft.sim.network import Network
from quorus.raft.sim.node import SimNode


class InvariantViolation(AssertionError):
    """A safety property of Raft does not hold in this run."""


class Invariants:
    """Global records the checks compare each node against."""

    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}
        self.entries: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.committed: dict[int, int] = {}
        self.max_committed = 0
        self.applied: dict[int, tuple[int, bytes]] = {}
        self._commit_seen: dict[str, int] = {}
        self._leader_mark: dict[str, tuple[int, int, int]] = {}

    def check_ready(self, step: int, node: SimNode, rd: Ready) -> None:
        core = node.core
        log = core.log
        where = f"step {step}, node {node.id}"
        if rd.entries:
            prev_term = log.term_at(rd.entries[0].index - 1)
            for entry in rd.entries:
                self._check_entry(where, entry, prev_term)
                prev_term = entry.term
        if core.role is Role.LEADER:
            holder = self.leaders.setdefault(core.term, node.id)
            if holder != node.id:
                raise InvariantViolation(
                    f"{where}: two leaders in term {core.term}: {holder} and {node.id}"
                )
            mark = self._leader_mark.get(node.id)
            if mark is not None and mark[0] == core.term:
                if rd.truncate_from is not None:
                    raise InvariantViolation(f"{where}: leader truncated its log at "
                                             f"{rd.truncate_from}")
                _, index, last_term = mark
                if log.last_index < index or (
                    index > log.offset and log.term_at(index) != last_term
                ):
                    raise InvariantViolation(f"{where}: leader's entry {index} changed or vanished")
            else:
                self._check_complete(where, node)
            self._leader_mark[node.id] = (core.term, log.last_index, log.last_term)
        else:
            self._leader_mark.pop(node.id, None)
        seen = self._commit_seen.get(node.id, log.offset)
        for index in range(max(seen, log.offset) + 1, log.committed + 1):
            term = log.term_at(index)
            assert term is not None
            known = self.committed.setdefault(index, term)
            if known != term:
                raise InvariantViolation(
                    f"{where}: committed entry {index} has term {term}, elsewhere {known}"
                )
        self._commit_seen[node.id] = max(seen, log.committed)
        self.max_committed = max(self.max_committed, log.committed)
        for entry in rd.committed:
            record = (entry.term, entry.data)
            known_entry = self.applied.setdefault(entry.index, record)
            if known_entry != record:
                raise InvariantViolation(
                    f"{where}: applied entry {entry.index} (term {entry.term}) differs from the "
                    f"one applied elsewhere (term {known_entry[0]})"
                )
        stuck = node.unresolved_below(node.applied)
        if stuck:
            raise InvariantViolation(f"{where}: proposals {stuck} neither resolved nor failed")

    def _check_entry(self, where: str, entry: Entry, prev_term: int | None) -> None:
        record = (int(entry.kind), entry.data, prev_term)
        known = self.entries.setdefault((entry.index, entry.term), record)
        if known[:2] != record[:2] or (
            prev_term is not None and known[2] is not None and known[2] != prev_term
        ):
            raise InvariantViolation(
                f"{where}: log matching broken at index {entry.index} term {entry.term}"
            )

    def _check_complete(self, where: str, node: SimNode) -> None:
        log = node.core.log
        index = self.max_committed
        if index <= log.offset:
            return
        if log.term_at(index) != self.committed.get(index):
            raise InvariantViolation(
                f"{where}: new leader in term {node.core.term} lacks committed entry {index}"
            )


class Cluster:
    """N simulated nodes under one seed. ``step()`` advances the clock by one step."""

    def __init__(self, ids: Iterable[str], *, seed: int, config: RaftConfig | None = None,
                 tick_steps: int = 10, fsync_delay: tuple[int, int] = (0, 3),
                 chunk_size: int = 256, compact_every: int = 64, codec: bool = True) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.cfg = config or RaftConfig()
        self.tick_steps = tick_steps
        self.fsync_delay = fsync_delay
        self.chunk_size = chunk_size
        self.compact_every = compact_every
        self.network = Network(random.Random(self.rng.random()), codec=codec)
        self.invariants = Invariants()
        self.now = 0
        self.nodes: dict[str, SimNode] = {}
        self._phase: dict[str, int] = {}
        voters = frozenset(ids)
        for node_id in sorted(voters):
            self._add(node_id, Configuration(voters))

    def _add(self, node_id: str, bootstrap: Configuration | None) -> SimNode:
        node = SimNode(node_id, self.cfg, bootstrap, random.Random(self.rng.random()),
                       chunk_size=self.chunk_size, compact_every=self.compact_every)
        self.nodes[node_id] = node
        self._phase[node_id] = self.rng.randrange(self.tick_steps)
        return node

    def start_node(self, node_id: str) -> SimNode:
        """Start a brand-new, empty node that will join through a membership change."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id!r} exists")
        return self._add(node_id, None)

    # ---------------------------------------------------------------- faults

    def crash(self, node_id: str) -> None:
        self.nodes[node_id].crash()

    def restart(self, node_id: str) -> None:
        self.nodes[node_id].restart()

    def partition(self, *groups: Iterable[str]) -> None:
        self.network.partition(*(set(g) for g in groups))

    def isolate(self, node_id: str) -> None:
        self.partition({node_id}, set(self.nodes) - {node_id})

    def heal(self) -> None:
        self.network.heal()

    # ---------------------------------------------------------------- driving

    def step(self) -> None:
        """Deliver due messages, tick, complete due fsyncs, run Readies, check invariants."""
        self.now += 1
        now = self.now
        nodes = self.nodes
        for msg in self.network.due(now):
            node = nodes.get(msg.dst)
            if node is not None and node.up:
                node.core.step(msg)
        for node_id, node in nodes.items():
            if not node.up:
                continue
            if (now + self._phase[node_id]) % self.tick_steps == 0:
                node.core.tick()
            if node.sync_at is not None and node.sync_at <= now:
                for msg in node.sync():
                    self.network.send(now, msg)
            delay = self.rng.randint(*self.fsync_delay)
            rd, out = node.take_ready(now, delay)
            for msg in out:
                self.network.send(now, msg)
            self.invariants.check_ready(now, node, rd)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def run_until(self, done: Callable[[], bool], max_steps: int) -> bool:
        """Step until ``done()`` holds; false if ``max_steps`` pass first."""
        for _ in range(max_steps):
            if done():
                return True
            self.step()
        return done()

    def ticks(self, n: int) -> int:
        """Steps in ``n`` ticks."""
        return n * self.tick_steps

    # ---------------------------------------------------------------- views

    def leader(self) -> SimNode | None:
        """The up node leading in the highest term, if any."""
        best: SimNode | None = None
        for node in self.nodes.values():
            if node.up and node.role is Role.LEADER and (
                best is None or node.core.term > best.core.term
            ):
                best = node
        return best

    def wait_leader(self, max_ticks: int = 100) -> SimNode:
        """Run until some node leads; raises :class:`InvariantViolation` if none does in time."""
        if not self.run_until(lambda: self.leader() is not None, self.ticks(max_ticks)):
            raise InvariantViolation(f"no leader elected within {max_ticks} ticks")
        leader = self.leader()
        assert leader is not None
        return leader

    def commit(self, command: bytes, max_ticks: int = 100) -> tuple[str, object]:
        """Propose through the current leader (retrying) until applied there; the outcome."""
        outcome: list[tuple[str, object]] = []
        deadline = self.now + self.ticks(max_ticks)
        while self.now < deadline:
            leader = self.wait_leader(max_ticks)
            outcome.clear()
            leader.propose(command, lambda kind, value: outcome.append((kind, value)))
            self.run_until(lambda: bool(outcome), deadline - self.now)
            if outcome and outcome[0][0] == "ok":
                return outcome[0]
            self.run(self.tick_steps)
        raise InvariantViolation(f"command not committed within {max_ticks} ticks")
