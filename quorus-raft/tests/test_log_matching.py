"""Raft paper 5.3, log matching: same index and term means the same entry and the same prefix.
Also the follower's consistency check and the leader's fast backtracking over conflicts."""

from __future__ import annotations

from collections.abc import Callable

from quorus.raft.core import InitialState, RaftConfig, RaftCore
from quorus.raft.membership import Configuration
from quorus.raft.messages import AppendEntries, AppendResponse, Entry, EntryKind
from quorus.raft.ready import HardState
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.kv import put_command
from quorus.raft.sim.network import Faults

ClusterFactory = Callable[..., Cluster]
CONF = Configuration(frozenset({"a", "b", "c"}))


def log_of(terms: list[int]) -> list[Entry]:
    return [Entry(i + 1, t, EntryKind.NORMAL, f"{i + 1}@{t}".encode()) for i, t in enumerate(terms)]


def follower(terms: list[int], term: int) -> RaftCore:
    state = InitialState(HardState(term, None, 0), entries=log_of(terms), bootstrap=CONF)
    return RaftCore("b", RaftConfig(), state, rng=3)


def response(core: RaftCore) -> AppendResponse:
    out = [m for m in core.ready().messages_after_persist if isinstance(m, AppendResponse)]
    assert len(out) == 1
    return out[0]


def test_an_append_whose_previous_entry_does_not_match_is_rejected_with_a_hint() -> None:
    core = follower([1, 1, 2, 2, 2], term=3)
    core.step(AppendEntries(3, "a", "b", 5, 3, (), 0))
    r = response(core)
    assert (r.success, r.index, r.conflict_term, r.conflict_index) == (False, 5, 2, 3)
    core.step(AppendEntries(3, "a", "b", 9, 3, (), 0))
    r = response(core)
    assert (r.success, r.conflict_term, r.conflict_index) == (False, 0, 6)


def test_conflicting_entries_are_replaced_and_the_truncation_reported() -> None:
    core = follower([1, 1, 2, 2], term=3)
    new = (Entry(3, 3, EntryKind.NORMAL, b"new3"), Entry(4, 3, EntryKind.NORMAL, b"new4"),
           Entry(5, 3, EntryKind.NORMAL, b"new5"))
    core.step(AppendEntries(3, "a", "b", 2, 1, new, 2))
    rd = core.ready()
    assert rd.truncate_from == 3
    assert [e.data for e in rd.entries] == [b"new3", b"new4", b"new5"]
    assert [e.term for e in core.log.entries] == [1, 1, 3, 3, 3]
    ack = [m for m in rd.messages_after_persist if isinstance(m, AppendResponse)]
    assert ack[0].success and ack[0].index == 5


def test_entries_already_present_are_not_rewritten() -> None:
    core = follower([1, 1, 2], term=2)
    core.step(AppendEntries(2, "a", "b", 1, 1, tuple(log_of([1, 1, 2])[1:]), 0))
    rd = core.ready()
    assert rd.truncate_from is None and rd.entries == []


def test_fast_backtracking_skips_a_whole_term_per_round_trip(make_cluster: ClusterFactory
                                                            ) -> None:
    cluster = make_cluster(3, seed=4)
    leader = cluster.wait_leader()
    lonely = next(n for n in sorted(cluster.nodes) if n != leader.id)
    cluster.isolate(lonely)
    for i in range(30):
        cluster.commit(put_command("k", i))
    cluster.heal()
    rejections: list[AppendResponse] = []
    original = leader.core.step

    def spy(msg: object) -> None:
        if isinstance(msg, AppendResponse) and not msg.success:
            rejections.append(msg)
        original(msg)  # type: ignore[arg-type]

    leader.core.step = spy  # type: ignore[method-assign]
    cluster.run_until(lambda: cluster.nodes[lonely].applied >= leader.applied, cluster.ticks(20))
    assert cluster.nodes[lonely].applied >= leader.applied
    assert len(rejections) <= 2


def test_logs_match_under_a_lossy_network(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(5, seed=11, compact_every=10_000)
    cluster.network.faults = Faults(drop=0.1, duplicate=0.1, reorder=0.3, delay_max=6)
    for i in range(40):
        cluster.commit(put_command("k", i), max_ticks=200)
    cluster.network.faults = Faults.none()
    cluster.run(cluster.ticks(10))
    logs = [[(e.index, e.term, e.data) for e in n.core.log.entries] for n in cluster.nodes.values()]
    shortest = min(len(log) for log in logs)
    assert shortest >= 40
    assert all(log[:shortest] == logs[0][:shortest] for log in logs)
