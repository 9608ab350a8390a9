"""Raft paper 5.4.1, leader completeness: a leader holds every entry committed before it."""

from __future__ import annotations

from collections.abc import Callable

from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def test_every_new_leader_holds_all_committed_entries(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(5, seed=21)
    committed = 0
    for round_ in range(8):
        leader = cluster.wait_leader()
        for i in range(5):
            cluster.commit(put_command("k", round_ * 10 + i))
        committed = cluster.invariants.max_committed
        # The leader and one follower lose everything they had not synced, repeatedly.
        leader.crash()
        cluster.run(cluster.ticks(2))
        new = cluster.wait_leader()
        assert new.id != leader.id
        assert new.core.log.last_index >= committed
        leader.restart()
    assert cluster.invariants.max_committed >= committed
    assert len(cluster.invariants.leaders) >= 8


def test_a_stale_node_cannot_win_after_rejoining(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=8)
    leader = cluster.wait_leader()
    stale = next(n for n in sorted(cluster.nodes) if n != leader.id)
    cluster.crash(stale)
    for i in range(10):
        cluster.commit(put_command("k", i))
    committed = cluster.invariants.max_committed
    leader.crash()
    cluster.restart(stale)
    cluster.run(cluster.ticks(40))
    # The stale node lacks committed entries: only the third node can win (with its vote).
    new = cluster.wait_leader()
    assert new.id not in (stale, leader.id)
    assert new.core.log.term_at(committed) == cluster.invariants.committed[committed]
    assert cluster.nodes[stale].role is not Role.LEADER
