"""Leadership transfer: the target is caught up, then told to campaign (TimeoutNow); proposals
are refused meanwhile; a transfer that cannot finish is abandoned after an election timeout."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.errors import LeadershipTransferInProgress, LeadershipTransferRejected
from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def test_transfer_to_a_lagging_follower_catches_it_up_first(make_cluster: ClusterFactory
                                                            ) -> None:
    cluster = make_cluster(3, seed=7)
    leader = cluster.wait_leader()
    target = next(n for n in sorted(cluster.nodes) if n != leader.id)
    cluster.isolate(target)
    for i in range(10):
        cluster.commit(put_command("k", i))
    cluster.heal()
    leader.core.transfer_leadership(target)
    with pytest.raises(LeadershipTransferInProgress) as info:
        leader.core.propose(b"refused")
    assert info.value.leader_hint == target
    assert cluster.run_until(lambda: cluster.nodes[target].role is Role.LEADER,
                             cluster.ticks(20))
    assert cluster.nodes[target].sm.get("k") == 9 or cluster.run_until(
        lambda: cluster.nodes[target].sm.get("k") == 9, cluster.ticks(5))
    cluster.commit(put_command("k", 10))


def test_a_transfer_to_an_unreachable_node_is_abandoned(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=8)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    target = next(n for n in sorted(cluster.nodes) if n != leader.id)
    cluster.crash(target)
    leader.core.transfer_leadership(target)
    cluster.run(cluster.ticks(cluster.cfg.election_ticks_min + 1))
    assert leader.core.transferee is None and leader.role is Role.LEADER
    cluster.commit(put_command("k", 1))


def test_only_voters_can_receive_leadership(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=9)
    leader = cluster.wait_leader()
    with pytest.raises(LeadershipTransferRejected):
        leader.core.transfer_leadership("stranger")
