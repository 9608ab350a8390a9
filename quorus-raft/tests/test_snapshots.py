"""Snapshots and log compaction on every node; InstallSnapshot in chunks for followers whose
missing entries were compacted away, resumed from the offset after a lost chunk."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.messages import InstallSnapshot, InstallSnapshotResponse
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command
from quorus.raft.sim.network import Faults

ClusterFactory = Callable[..., Cluster]


def lagging_cluster(make_cluster: ClusterFactory, **kw: object) -> tuple[Cluster, str]:
    cluster = make_cluster(3, seed=6, compact_every=10, chunk_size=16, **kw)
    leader = cluster.wait_leader()
    behind = next(n for n in sorted(cluster.nodes) if n != leader.id)
    cluster.crash(behind)
    for i in range(60):
        cluster.commit(put_command(f"k{i % 20}", i))
    stale = cluster.nodes[behind].durable
    assert leader.core.log.offset > len(stale.entries) + (stale.snapshot.index if stale.snapshot
                                                          else 0)
    return cluster, behind


def test_a_follower_behind_the_compacted_log_gets_the_snapshot_in_chunks(
        make_cluster: ClusterFactory) -> None:
    cluster, behind = lagging_cluster(make_cluster)
    chunks: list[InstallSnapshot] = []
    node = cluster.nodes[behind]
    node.restart()
    original = node.core.step

    def spy(msg: object) -> None:
        if isinstance(msg, InstallSnapshot):
            chunks.append(msg)
        original(msg)  # type: ignore[arg-type]

    node.core.step = spy  # type: ignore[method-assign]
    leader = cluster.wait_leader()
    assert cluster.run_until(lambda: node.applied >= leader.applied, cluster.ticks(50))
    assert len(chunks) > 2 and chunks[-1].done and not chunks[0].done
    assert [c.offset for c in chunks] == sorted(c.offset for c in chunks)
    assert node.sm.data == leader.sm.data
    assert node.durable.snapshot is not None
    # The follower keeps serving: new writes reach it through ordinary appends.
    cluster.commit(put_command("after", 1))
    assert cluster.run_until(lambda: node.sm.get("after") == 1, cluster.ticks(20))


@pytest.mark.parametrize("seed", range(4))
def test_snapshot_transfer_survives_a_lossy_network(make_cluster: ClusterFactory,
                                                    seed: int) -> None:
    cluster, behind = lagging_cluster(make_cluster)
    cluster.network.faults = Faults(drop=0.3, duplicate=0.2, reorder=0.3, delay_max=6)
    cluster.network.rng.seed(seed)
    node = cluster.nodes[behind]
    node.restart()
    leader = cluster.wait_leader()
    assert cluster.run_until(lambda: node.applied >= leader.applied, cluster.ticks(300))
    assert node.sm.data == leader.sm.data


def test_an_out_of_order_chunk_is_answered_with_the_expected_offset(
        make_cluster: ClusterFactory) -> None:
    cluster, behind = lagging_cluster(make_cluster)
    node = cluster.nodes[behind]
    node.restart()
    leader = cluster.wait_leader()
    meta = leader.durable.snapshot
    assert meta is not None
    core = node.core
    core.step(InstallSnapshot(leader.core.term, leader.id, behind, meta, 0, b"x" * 8, False))
    core.step(InstallSnapshot(leader.core.term, leader.id, behind, meta, 64, b"y" * 8, False))
    rd = core.ready()
    answers = [m for m in rd.messages_after_persist if isinstance(m, InstallSnapshotResponse)]
    assert [(a.next_offset, a.done) for a in answers] == [(8, False), (8, False)]
    assert [c.offset for c in rd.snapshot_chunks] == [0]
