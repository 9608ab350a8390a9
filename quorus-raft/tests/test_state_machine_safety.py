"""Raft paper 5.4.3, state machine safety: no two nodes apply different entries at one index.

The seeded scenarios check it (and every other invariant) after every step, under drops,
delays, duplicates, reordering, partitions, crashes that lose unsynced writes, membership
changes and leadership transfers; then demand liveness after healing and a linearizable
client history. ``python -m quorus.raft.sim --seeds 0..N`` runs longer soaks.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from quorus.raft.sim.cluster import Cluster, InvariantViolation
from quorus.raft.sim.kv import put_command
from quorus.raft.sim.node import SimNode
from quorus.raft.sim.scenario import run_scenario

ClusterFactory = Callable[..., Cluster]
SEEDS = int(os.environ.get("QUORUS_RAFT_SIM_SEEDS", "400"))


@pytest.mark.parametrize("nodes", [3, 4, 5, 7])
def test_seeded_scenarios_keep_every_invariant(nodes: int) -> None:
    ops = 0
    for seed in range(SEEDS):
        result = run_scenario(seed, nodes=nodes, steps=500)
        ops += len(result.history)
    assert ops > SEEDS * 10


def test_the_same_seed_replays_the_same_run() -> None:
    first = run_scenario(12345, nodes=5, steps=800)
    second = run_scenario(12345, nodes=5, steps=800)
    assert first.history == second.history
    assert first.stats == second.stats


def test_the_simulator_catches_acks_sent_before_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime that lets votes and acks precede the fsync loses committed entries on crash;
    the checks must notice within a few seeds, or they prove nothing."""
    original = SimNode.take_ready

    def eager(self: SimNode, now: int, fsync_delay: int):  # type: ignore[no-untyped-def]
        rd, out = original(self, now, fsync_delay + 30)
        held = self._held
        self._held = []
        return rd, out + held

    monkeypatch.setattr(SimNode, "take_ready", eager)
    caught = 0
    for seed in range(40):
        try:
            run_scenario(seed, nodes=3, steps=800)
        except InvariantViolation:
            caught += 1
    assert caught > 0


def test_a_crash_loses_only_unsynced_writes(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=5, fsync_delay=(5, 5))
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 1))
    synced = list(leader.durable.entries)
    leader.propose(put_command("k", 2), lambda *_: None)
    cluster.step()
    assert leader.core.log.last_index > (synced[-1].index if synced else 0)
    leader.crash()
    leader.restart()
    assert leader.core.log.entries[: len(synced)] == synced[-len(leader.core.log.entries):] or (
        leader.core.log.last_index == leader.durable.entries[-1].index)
    assert leader.core.log.last_index == synced[-1].index
