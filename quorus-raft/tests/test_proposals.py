"""Proposals fail promptly with NotLeader when this node is not (or stops being) the leader,
and are never resolved with another entry's result."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.errors import NotLeader
from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def test_a_follower_refuses_with_a_leader_hint(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=12)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    with pytest.raises(NotLeader) as info:
        follower.core.propose(b"x")
    assert info.value.leader_hint == leader.id
    assert leader.id in str(info.value)


def test_step_down_fails_pending_proposals_at_once(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=13)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    cluster.isolate(leader.id)
    outcomes: list[str] = []
    leader.propose(put_command("k", 1), lambda kind, _: outcomes.append(kind))
    cluster.run_until(lambda: leader.role is not Role.LEADER, cluster.ticks(20))
    assert leader.role is not Role.LEADER
    assert outcomes == ["info"]  # failed as soon as leadership was lost (outcome unknown)


def test_an_overwritten_proposal_fails_and_is_not_resolved_by_the_new_entry(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=14)
    old = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    cluster.isolate(old.id)
    results: list[tuple[str, object]] = []
    old.propose(put_command("k", 111), lambda kind, value: results.append((kind, value)))
    index, old_term = old.core.log.last_index, old.core.term
    cluster.run(cluster.ticks(20))
    new = cluster.wait_leader()
    assert new is not old
    for i in range(3):
        cluster.commit(put_command("k", 200 + i))
    cluster.heal()
    cluster.run(cluster.ticks(20))
    # The old leader's entry at `index` was replaced; the proposal never reported "ok".
    assert old.core.log.offset >= index or old.core.log.term_at(index) != old_term
    assert [kind for kind, _ in results] == ["info"]
    assert old.sm.get("k") == 202
