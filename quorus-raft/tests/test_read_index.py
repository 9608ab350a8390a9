"""ReadIndex: the leader confirms its leadership with a heartbeat round before serving a read,
never serves one before committing an entry of its term, and followers forward reads."""

from __future__ import annotations

from collections.abc import Callable

from quorus.raft.core import RaftCore
from quorus.raft.messages import Heartbeat, HeartbeatResponse, ReadIndexRequest, VoteResponse
from quorus.raft.ready import ReadState, Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command

ClusterFactory = Callable[..., Cluster]
CoreFactory = Callable[..., RaftCore]


def leader_of_three(make_core: CoreFactory) -> RaftCore:
    core = make_core("a", ["a", "b", "c"], pre_vote=False)
    while core.role is not Role.CANDIDATE:
        core.tick()
    core.step(VoteResponse(core.term, "b", "a", True))
    rd = core.ready()
    core.persisted(rd.entries[-1].index, rd.entries[-1].term)
    return core


def test_no_read_before_the_leader_commits_in_its_term(make_core: CoreFactory) -> None:
    from quorus.raft.messages import AppendResponse

    leader = leader_of_three(make_core)
    leader.read_index(b"r1")
    rd = leader.ready()
    assert rd.read_states == []
    assert not [m for m in rd.messages if isinstance(m, Heartbeat) and m.seq > 0]
    leader.step(AppendResponse(leader.term, "b", "a", True, leader.log.last_index))
    rd = leader.ready()
    beats = [m for m in rd.messages if isinstance(m, Heartbeat) and m.seq > 0]
    assert sorted(m.dst for m in beats) == ["b", "c"]
    assert rd.read_states == []  # still waits for the heartbeat round
    leader.step(HeartbeatResponse(leader.term, "c", "a", beats[0].seq))
    assert leader.ready().read_states == [ReadState(b"r1", leader.commit_index)]


def test_an_old_heartbeat_answer_does_not_confirm_a_new_read(make_core: CoreFactory) -> None:
    from quorus.raft.messages import AppendResponse

    leader = leader_of_three(make_core)
    leader.step(AppendResponse(leader.term, "b", "a", True, leader.log.last_index))
    leader.read_index(b"r2")
    seq = max(m.seq for m in leader.ready().messages if isinstance(m, Heartbeat))
    leader.step(HeartbeatResponse(leader.term, "b", "a", seq - 1))
    assert leader.ready().read_states == []
    leader.step(HeartbeatResponse(leader.term, "b", "a", seq))
    assert [r.ctx for r in leader.ready().read_states] == [b"r2"]


def test_a_deposed_leader_fails_its_pending_reads(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=10)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 1))
    cluster.isolate(leader.id)
    outcome: list[str] = []
    leader.read("k", lambda kind, _: outcome.append(kind))
    cluster.run(cluster.ticks(20))
    assert outcome == ["fail"]


def test_followers_forward_reads_and_serve_them_once_applied(
        make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(3, seed=11)
    leader = cluster.wait_leader()
    cluster.commit(put_command("k", 42))
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    got: list[tuple[str, object]] = []
    follower.read("k", lambda kind, value: got.append((kind, value)))
    assert cluster.run_until(lambda: bool(got), cluster.ticks(10))
    assert got == [("ok", 42)]


def test_a_follower_without_a_leader_refuses_reads(make_core: CoreFactory) -> None:
    import pytest
    from quorus.raft.errors import NotLeader

    core = make_core("b", ["a", "b", "c"])
    with pytest.raises(NotLeader):
        core.read_index(b"r")
    core.step(ReadIndexRequest(0, "c", "b", b"r"))
    answers = core.ready().messages
    assert [getattr(m, "success", None) for m in answers] == [False]
