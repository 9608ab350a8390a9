"""Membership changes one server at a time: add a voter (as a learner promoted once caught up),
add a learner, remove a voter, remove the leader itself; one change at a time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.errors import MembershipChangeRejected, NotLeader
from quorus.raft.membership import ChangeKind, ConfChange, Configuration
from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def settled(cluster: Cluster, done: Callable[[], bool]) -> None:
    assert cluster.run_until(done, cluster.ticks(100))


def test_adding_a_voter_goes_through_a_caught_up_learner(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=1, compact_every=8)
    for i in range(20):
        cluster.commit(put_command("k", i))
    leader = cluster.wait_leader()
    leader.core.change_membership(ConfChange(ChangeKind.ADD_VOTER, "n4"))
    assert "n4" in leader.core.config.learners and "n4" in leader.core.config.promoting
    new = cluster.start_node("n4")
    settled(cluster, lambda: "n4" in cluster.wait_leader().core.config.voters
            and not cluster.wait_leader().core.config_pending)
    settled(cluster, lambda: new.sm.get("k") == 19)
    assert new.role is Role.FOLLOWER
    assert cluster.wait_leader().core.config.quorum == 3


def test_a_learner_receives_the_log_but_never_counts(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=2)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    leader.core.change_membership(ConfChange(ChangeKind.ADD_LEARNER, "n4"))
    learner = cluster.start_node("n4")
    cluster.commit(put_command("k", 1))
    settled(cluster, lambda: learner.sm.get("k") == 1)
    assert learner.role is Role.LEARNER
    assert cluster.wait_leader().core.config.voters == {"n1", "n2", "n3"}
    # Two voters down: the learner must not make up a majority.
    for node in sorted(cluster.nodes):
        if node not in (leader.id, "n4"):
            cluster.crash(node)
            break
    other = next(n for n in ("n1", "n2", "n3") if n != leader.id and cluster.nodes[n].up)
    cluster.crash(other)
    done: list[str] = []
    leader.propose(put_command("k", 2), lambda kind, _: done.append(kind))
    cluster.run(cluster.ticks(30))
    assert "ok" not in done
    assert learner.sm.get("k") == 1


def test_removing_a_voter_shrinks_the_quorum(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(5, seed=3)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    victim = next(n for n in sorted(cluster.nodes) if n != leader.id)
    leader.core.change_membership(ConfChange(ChangeKind.REMOVE, victim))
    settled(cluster, lambda: not leader.core.config_pending)
    assert leader.core.config.voters == set(cluster.nodes) - {victim}
    cluster.crash(victim)
    cluster.commit(put_command("k", 1))
    # The removed node cannot disrupt the cluster when it comes back.
    cluster.restart(victim)
    term = leader.core.term
    cluster.run(cluster.ticks(60))
    assert cluster.leader() is leader and leader.core.term == term


def test_removing_the_leader_hands_over_after_the_change_commits(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=4)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    leader.core.change_membership(ConfChange(ChangeKind.REMOVE, leader.id))
    settled(cluster, lambda: leader.role is not Role.LEADER)
    new = cluster.wait_leader(20)
    assert new.id != leader.id
    assert leader.id not in new.core.config.members
    cluster.commit(put_command("k", 1))
    cluster.run(cluster.ticks(30))
    assert leader.role is not Role.LEADER
    assert cluster.wait_leader() is new


def test_one_change_at_a_time_and_only_after_a_commit_in_term(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=5)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 0))
    leader.core.change_membership(ConfChange(ChangeKind.ADD_LEARNER, "n4"))
    with pytest.raises(MembershipChangeRejected, match="uncommitted"):
        leader.core.change_membership(ConfChange(ChangeKind.ADD_LEARNER, "n5"))
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    with pytest.raises(NotLeader) as info:
        follower.core.change_membership(ConfChange(ChangeKind.ADD_LEARNER, "n5"))
    assert info.value.leader_hint == leader.id


def test_configuration_rules() -> None:
    conf = Configuration(frozenset({"a", "b", "c", "d"}))
    assert conf.quorum == 3
    assert conf.committed_index({"a": 5, "b": 5, "c": 3, "d": 1}) == 3
    with pytest.raises(MembershipChangeRejected, match="last voter"):
        Configuration(frozenset({"a"})).apply(ConfChange(ChangeKind.REMOVE, "a"))
    with pytest.raises(MembershipChangeRejected, match="already a voter"):
        conf.apply(ConfChange(ChangeKind.ADD_VOTER, "a"))
    assert Configuration.decode(conf.encode()) == conf
