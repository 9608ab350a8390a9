"""Replication: commit by a majority of the current voters (even sizes too), only entries of the
current term by counting, batching, pipelining bounded by messages and bytes."""

from __future__ import annotations

from collections.abc import Callable

from quorus.raft.core import RaftConfig, RaftCore
from quorus.raft.messages import AppendEntries, AppendResponse, VoteResponse
from quorus.raft.ready import Role
from quorus.raft.sim.cluster import Cluster

ClusterFactory = Callable[..., Cluster]
CoreFactory = Callable[..., RaftCore]


def elected(make_core: CoreFactory, voters: list[str], **cfg: object) -> RaftCore:
    core = make_core(voters[0], voters, pre_vote=False, **cfg)
    while core.role is not Role.CANDIDATE:
        core.tick()
    for v in voters[1:]:
        core.step(VoteResponse(core.term, v, core.id, True))
    assert core.role is Role.LEADER
    rd = core.ready()
    core.persisted(rd.entries[-1].index, rd.entries[-1].term)
    return core


def ack(core: RaftCore, peer: str, index: int) -> None:
    core.step(AppendResponse(core.term, peer, core.id, True, index))


def test_even_cluster_needs_three_of_four(make_core: CoreFactory) -> None:
    leader = elected(make_core, ["a", "b", "c", "d"])
    noop = leader.log.last_index
    ack(leader, "b", noop)
    assert leader.commit_index == 0  # 2 of 4 is not a majority
    ack(leader, "c", noop)
    assert leader.commit_index == noop


def test_the_leader_counts_itself_only_after_its_own_fsync(make_core: CoreFactory) -> None:
    leader = elected(make_core, ["a", "b", "c"])
    ack(leader, "b", leader.log.last_index)
    ack(leader, "c", leader.log.last_index)
    leader.ready()
    index, term = leader.propose(b"x")
    rd = leader.ready()
    assert rd.entries[-1].index == index  # still to be made durable...
    appends = [m for m in rd.messages if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in appends) == ["b", "c"]  # ...yet already on its way
    ack(leader, "b", index)
    assert leader.commit_index == index - 1  # b alone is not a majority of three
    leader.persisted(index, term)
    assert leader.commit_index == index


def test_entries_of_older_terms_are_not_committed_by_counting(make_core: CoreFactory) -> None:
    from quorus.raft.core import InitialState
    from quorus.raft.membership import Configuration
    from quorus.raft.messages import Entry, EntryKind
    from quorus.raft.ready import HardState

    old = [Entry(1, 1, EntryKind.NORMAL, b"old")]
    state = InitialState(HardState(2, None, 0), entries=old,
                         bootstrap=Configuration(frozenset({"a", "b", "c"})))
    core = RaftCore("a", RaftConfig(pre_vote=False), state, rng=1)
    while core.role is not Role.CANDIDATE:
        core.tick()
    core.step(VoteResponse(core.term, "b", "a", True))
    rd = core.ready()
    core.persisted(rd.entries[-1].index, rd.entries[-1].term)
    ack(core, "b", 1)  # b holds the old entry only
    assert core.commit_index == 0
    ack(core, "b", 2)  # now the no-op of this term: both commit together
    assert core.commit_index == 2


def test_pipelining_is_bounded_by_in_flight_messages(make_core: CoreFactory) -> None:
    leader = elected(make_core, ["a", "b"], max_inflight_msgs=3, max_append_bytes=1)
    ack(leader, "b", leader.log.last_index)
    leader.ready()
    for i in range(10):
        leader.propose(b"%d" % i)
    appends = [m for m in leader.ready().messages if isinstance(m, AppendEntries)]
    assert len(appends) == 3 and all(len(m.entries) == 1 for m in appends)
    ack(leader, "b", appends[1].entries[-1].index)
    more = [m for m in leader.ready().messages if isinstance(m, AppendEntries)]
    assert len(more) == 2


def test_pipelining_is_bounded_by_in_flight_bytes(make_core: CoreFactory) -> None:
    leader = elected(make_core, ["a", "b"], max_inflight_bytes=3000, max_append_bytes=1000)
    ack(leader, "b", leader.log.last_index)
    leader.ready()
    for _ in range(20):
        leader.propose(b"z" * 500)
    appends = [m for m in leader.ready().messages if isinstance(m, AppendEntries)]
    sent = sum(len(e.data) for m in appends for e in m.entries)
    assert 1500 <= sent <= 4000
    assert all(len(m.entries) <= 2 for m in appends)


def test_proposals_between_readies_go_out_as_one_batch(make_core: CoreFactory) -> None:
    leader = elected(make_core, ["a", "b", "c"])
    for p in ("b", "c"):
        ack(leader, p, leader.log.last_index)
    leader.ready()
    for i in range(50):
        leader.propose(b"%d" % i)
    rd = leader.ready()
    appends = [m for m in rd.messages if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in appends) == ["b", "c"]
    assert all(len(m.entries) == 50 for m in appends)
    assert len(rd.entries) == 50
