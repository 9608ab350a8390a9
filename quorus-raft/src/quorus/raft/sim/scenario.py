"""One seeded scenario: clients, faults, membership changes, then healing and the verdicts.

A scenario runs in three phases:

1. chaos (``steps`` steps): clients put, get (through ReadIndex) and cas on two keys while the
   network drops, delays, duplicates and reorders messages, partitions come and go, nodes crash
   and restart (losing unsynced writes), voters and learners join and leave, and leadership is
   transferred;
2. healing: faults stop and every member restarts; a leader must be elected and a write must
   commit within ``heal_ticks`` ticks (liveness);
3. verdicts: every live member applies every committed entry (nothing committed was lost), and
   the clients' history must be linearizable.

Invariants are checked after every step throughout (see :mod:`quorus.raft.sim.cluster`).
Everything derives from the seed, so a failing seed replays exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from quorus.raft.core import RaftConfig
from quorus.raft.errors import RaftError
from quorus.raft.linearizability import Operation, OpKind, check_history
from quorus.raft.membership import ChangeKind, ConfChange
from quorus.raft.sim.cluster import Cluster, InvariantViolation
from quorus.raft.sim.kv import cas_command, put_command
from quorus.raft.sim.network import Faults

KEYS = ("x", "y")


@dataclass(slots=True)
class ScenarioResult:
    seed: int
    nodes: int
    steps: int
    history: list[Operation]
    ok_ops: int
    leaders: int
    crashes: int
    membership_changes: int
    transfers: int
    max_committed: int
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Client:
    cid: int
    target: str | None = None
    busy: bool = False
    started: int = 0
    seq: int = 0


class Scenario:
    """A seeded scenario over ``nodes`` initial voters (plus up to two joiners)."""

    def __init__(self, seed: int, nodes: int = 3, steps: int = 1500, clients: int = 3,
                 heal_ticks: int = 120, codec: bool = True) -> None:
        self.seed = seed
        self.rng = random.Random(seed * 7919 + nodes)
        self.steps = steps
        self.heal_ticks = heal_ticks
        ids = [f"n{i}" for i in range(1, nodes + 1)]
        self.spares = [f"n{i}" for i in range(nodes + 1, nodes + 3)]
        self.nodes = nodes
        self.cluster = Cluster(
            ids, seed=seed, codec=codec,
            config=RaftConfig(max_append_bytes=self.rng.choice((64, 512, 4096)),
                              max_inflight_msgs=self.rng.choice((1, 4, 64))),
            compact_every=self.rng.choice((8, 32, 1000)),
            chunk_size=self.rng.choice((16, 128, 4096)),
        )
        self.clients = [_Client(i) for i in range(clients)]
        self.history: list[Operation] = []
        self._clock = 0
        self._value = 0
        self.crashes = self.changes = self.transfers = 0
        self.leaders_seen: set[tuple[int, str]] = set()
        self._deadlines: list[tuple[int, _Client, int, Any]] = []

    # ---------------------------------------------------------------- clients

    def _time(self) -> int:
        self._clock += 1
        return self._clock

    def _client_step(self, client: _Client, issue: bool) -> None:
        c = self.cluster
        if client.busy:
            return
        if not issue or self.rng.random() > 0.08:
            return
        members = [n for n in c.nodes.values() if n.up and n.is_member]
        if not members:
            return
        node = c.nodes.get(client.target or "")
        if node is None or not node.up or self.rng.random() < 0.1:
            node = self.rng.choice(members)
        roll = self.rng.random()
        key = self.rng.choice(KEYS)
        self._value += 1
        value = self._value
        invoke = self._time()
        client.busy = True
        client.seq += 1
        seq = client.seq
        deadline = c.now + c.ticks(30)

        def finish(kind: OpKind, outcome: str, result: Any, expected: Any = None,
                   new: Any = None) -> None:
            if not client.busy or client.seq != seq:
                return
            client.busy = False
            if outcome == "fail":
                if isinstance(result, str):
                    client.target = result
                return
            ret = self._time() if outcome == "ok" else None
            if kind is OpKind.GET and ret is None:
                return
            self.history.append(Operation(kind, key, invoke, ret, value=new, expected=expected,
                                          result=result if outcome == "ok" else None,
                                          client=client.cid))

        done: Any
        if roll < 0.4:
            def done(o: str, r: Any) -> None:
                finish(OpKind.PUT, o, r, new=value)

            node.propose(put_command(key, value), done)
        elif roll < 0.75:
            def done(o: str, r: Any) -> None:
                finish(OpKind.GET, o, r)

            node.read(key, done)
        else:
            expected = self.rng.choice([None, *range(max(1, value - 6), value)])

            def done(o: str, r: Any) -> None:
                finish(OpKind.CAS, o, r, expected=expected, new=value)

            node.propose(cas_command(key, expected, value), done)
        if client.busy:
            self._deadlines.append((deadline, client, seq, done))

    def _expire(self) -> None:
        now = self.cluster.now
        keep = []
        for item in self._deadlines:
            deadline, client, seq, done = item
            if client.busy and client.seq == seq:
                if deadline <= now:
                    done("info", None)  # a timeout: the outcome is unknown
                    continue
                keep.append(item)
        self._deadlines = keep

    # ---------------------------------------------------------------- faults

    def _chaos(self) -> None:
        c, rng = self.cluster, self.rng
        r = rng.random()
        if r < 0.002:
            up = [n for n in c.nodes.values() if n.up]
            if up:
                victim = rng.choice(up)
                victim.crash()
                self.crashes += 1
        elif r < 0.005:
            down = [n for n in c.nodes.values() if not n.up]
            if down:
                rng.choice(down).restart()
        elif r < 0.006:
            ids = sorted(c.nodes)
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            c.partition(ids[:cut], ids[cut:])
        elif r < 0.008:
            c.heal()
        elif r < 0.009:
            c.network.faults = Faults(
                drop=rng.choice((0.0, 0.05, 0.2)), duplicate=rng.choice((0.0, 0.05, 0.2)),
                reorder=rng.choice((0.0, 0.1, 0.3)), delay_max=rng.choice((2, 5, 12)),
            )
        elif r < 0.0105:
            self._change_membership()
        elif r < 0.0115:
            leader = c.leader()
            if leader is not None:
                voters = sorted(leader.core.config.voters - {leader.id})
                if voters:
                    leader.core.transfer_leadership(rng.choice(voters))
                    self.transfers += 1

    def _change_membership(self) -> None:
        c, rng = self.cluster, self.rng
        leader = c.leader()
        if leader is None:
            return
        conf = leader.core.config
        choice = rng.random()
        try:
            if choice < 0.5 and self.spares and len(conf.members) < 7:
                new = self.spares.pop(0)
                kind = ChangeKind.ADD_VOTER if rng.random() < 0.7 else ChangeKind.ADD_LEARNER
                leader.core.change_membership(ConfChange(kind, new))
                c.start_node(new)
            elif choice < 0.7 and conf.learners:
                learner = rng.choice(sorted(conf.learners))
                leader.core.change_membership(ConfChange(ChangeKind.ADD_VOTER, learner))
            elif len(conf.voters) > 3:
                victim = rng.choice(sorted(conf.voters))
                leader.core.change_membership(ConfChange(ChangeKind.REMOVE, victim))
            else:
                return
        except RaftError:
            return
        self.changes += 1

    # ---------------------------------------------------------------- run

    def run(self) -> ScenarioResult:
        c = self.cluster
        self._deadlines = []
        for _ in range(self.steps):
            self._chaos()
            for client in self.clients:
                self._client_step(client, issue=True)
            c.step()
            self._note_leader()
            self._expire()
        self._heal()
        return self._verdict()

    def _note_leader(self) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            self.leaders_seen.add((leader.core.term, leader.id))

    def _heal(self) -> None:
        c = self.cluster
        c.network.faults = Faults.none()
        c.heal()
        for node in c.nodes.values():
            if not node.up:
                node.restart()
        try:
            c.commit(put_command("_probe", self.seed), max_ticks=self.heal_ticks)
        except InvariantViolation as exc:
            raise InvariantViolation(f"liveness after healing: {exc}") from None
        # Let outstanding client requests finish or time out.
        c.run_until(lambda: not any(cl.busy for cl in self.clients) or self._expired(),
                    c.ticks(40))
        target = c.invariants.max_committed
        leader = c.wait_leader(self.heal_ticks)
        members = [c.nodes[m] for m in sorted(leader.core.config.members)]

        def caught_up() -> bool:
            return all(n.applied >= target for n in members)

        if not c.run_until(caught_up, c.ticks(self.heal_ticks)):
            lagging = {n.id: n.applied for n in members}
            raise InvariantViolation(
                f"committed entries up to {target} not applied everywhere: {lagging}"
            )

    def _expired(self) -> bool:
        self._expire()
        return not any(cl.busy for cl in self.clients)

    def _verdict(self) -> ScenarioResult:
        c = self.cluster
        ops = list(self.history)
        verdict = check_history(ops)
        if not verdict.ok:
            raise InvariantViolation(
                f"client history not linearizable on key {verdict.key!r}"
                + (" (checker timed out)" if verdict.timed_out else "")
            )
        return ScenarioResult(
            seed=self.seed, nodes=self.nodes, steps=self.steps, history=ops,
            ok_ops=sum(1 for op in ops if op.ret is not None),
            leaders=len(self.leaders_seen), crashes=self.crashes,
            membership_changes=self.changes, transfers=self.transfers,
            max_committed=c.invariants.max_committed,
            stats={"sent": c.network.sent, "dropped": c.network.dropped},
        )


def run_scenario(seed: int, nodes: int = 3, steps: int = 1500, codec: bool = True
                 ) -> ScenarioResult:
    """Run one scenario; raises :class:`InvariantViolation` naming what broke."""
    try:
        return Scenario(seed, nodes=nodes, steps=steps, codec=codec).run()
    except InvariantViolation as exc:
        raise InvariantViolation(f"seed {seed}, {nodes} nodes, {steps} steps: {exc}") from None
