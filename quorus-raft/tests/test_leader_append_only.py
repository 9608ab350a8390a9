"""Raft paper 5.3, leader append-only: a leader never overwrites or deletes its entries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.messages import AppendEntries, Entry, EntryKind
from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster, InvariantViolation
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]


def test_a_leader_ignores_appends_of_its_own_term_and_keeps_its_log(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=2)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 1))
    before = list(leader.core.log.entries)
    other = next(n for n in sorted(cluster.nodes) if n != leader.id)
    bogus = (Entry(1, leader.core.term, EntryKind.NORMAL, b"overwrite"),)
    leader.core.step(AppendEntries(leader.core.term, other, leader.id, 0, 0, bogus, 0))
    rd = leader.core.ready()
    assert leader.role is Role.LEADER
    assert rd.truncate_from is None
    assert leader.core.log.entries == before


def test_the_simulator_catches_a_leader_that_truncates(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=2)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 1))
    leader.core.propose(put_command("k", 2))
    cluster.step()
    # Break the leader on purpose: drop its last entry behind the core's back.
    leader.core.log.truncate_after(leader.core.log.last_index - 1)
    with pytest.raises(InvariantViolation, match="leader"):
        cluster.run(cluster.ticks(5))
