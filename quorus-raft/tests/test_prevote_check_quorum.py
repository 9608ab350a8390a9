"""Pre-vote (a partitioned node does not raise the term on rejoin) and check-quorum (a leader
that cannot hear a majority steps down within an election timeout)."""

from __future__ import annotations

from collections.abc import Callable

from quorus.raft.core import RaftConfig, RaftCore
from quorus.raft.messages import VoteResponse
from quorus.raft.ready import EventKind, Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def test_an_isolated_node_does_not_raise_its_term(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=1)
    leader = cluster.wait_leader()
    term = leader.core.term
    lonely = cluster.nodes[next(n for n in sorted(cluster.nodes) if n != leader.id)]
    cluster.isolate(lonely.id)
    cluster.run(cluster.ticks(50))
    assert lonely.core.term == term
    assert lonely.role is Role.PRE_CANDIDATE
    cluster.heal()
    cluster.run(cluster.ticks(10))
    assert cluster.leader() is leader and leader.core.term == term


def test_without_pre_vote_the_isolated_node_would_disrupt(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=1, config=RaftConfig(pre_vote=False, check_quorum=False))
    leader = cluster.wait_leader()
    lonely = cluster.nodes[next(n for n in sorted(cluster.nodes) if n != leader.id)]
    cluster.isolate(lonely.id)
    cluster.run(cluster.ticks(50))
    assert lonely.core.term > leader.core.term + 3


def test_a_leader_cut_off_from_the_majority_steps_down(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(5, seed=3)
    leader = cluster.wait_leader()
    cluster.isolate(leader.id)
    timeout = cluster.cfg.election_ticks_min
    cluster.run(cluster.ticks(2 * timeout + 1))
    assert leader.role is not Role.LEADER
    other = cluster.wait_leader()
    assert other.id != leader.id and other.core.term > leader.core.term - 1
    cluster.heal()
    cluster.commit(put_command("k", 1))
    assert cluster.run_until(lambda: leader.sm.get("k") == 1, cluster.ticks(10))


def test_check_quorum_step_down_is_reported(make_core: Callable[..., RaftCore]) -> None:
    core = make_core("a", ["a", "b", "c"], pre_vote=False)
    for _ in range(10):
        core.tick()
        if core.role is Role.CANDIDATE:
            break
    core.step(VoteResponse(core.term, "b", "a", True))
    assert core.role is Role.LEADER
    for _ in range(2 * core.cfg.election_ticks_min + 1):
        core.tick()
    assert core.role is Role.FOLLOWER
    kinds = [e.kind for e in core.ready().events]
    assert EventKind.CHECK_QUORUM_STEP_DOWN in kinds
