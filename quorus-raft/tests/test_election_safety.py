"""Raft paper 5.2, election safety: at most one leader can be elected in a given term."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quorus.raft.core import InitialState, RaftConfig, RaftCore
from quorus.raft.membership import Configuration
from quorus.raft.messages import (
    Entry,
    EntryKind,
    PreVote,
    PreVoteResponse,
    RequestVote,
    VoteResponse,
)
from quorus.raft.ready import EventKind, HardState, Role
from quorus.raft.sim.cluster import Cluster
from quorus.raft.sim.network import Faults

CoreFactory = Callable[..., RaftCore]
ClusterFactory = Callable[..., Cluster]


def campaign(core: RaftCore) -> None:
    """Tick a follower until it starts an election (pre-vote off) or a pre-vote."""
    for _ in range(core.cfg.election_ticks_max + 1):
        core.tick()
        if core.role is not Role.FOLLOWER:
            return
    raise AssertionError("no campaign within the election timeout")


def test_a_node_votes_at_most_once_per_term(make_core: CoreFactory) -> None:
    core = make_core("c", ["a", "b", "c"])
    core.step(RequestVote(1, "a", "c", 0, 0))
    core.step(RequestVote(1, "b", "c", 0, 0))
    rd = core.ready()
    answers = {(m.dst, m.granted) for m in rd.messages_after_persist if isinstance(m, VoteResponse)}
    assert answers == {("a", True), ("b", False)}
    assert rd.hard_state == HardState(1, "a", 0)


def test_the_vote_survives_a_restart(make_core: CoreFactory) -> None:
    before = make_core("c", ["a", "b", "c"])
    before.step(RequestVote(1, "a", "c", 0, 0))
    hard = before.ready().hard_state
    assert hard is not None
    after = make_core("c", ["a", "b", "c"],
                      state=InitialState(hard_state=hard, bootstrap=before.config))
    after.step(RequestVote(1, "b", "c", 0, 0))
    votes = [m for m in after.ready().messages_after_persist if isinstance(m, VoteResponse)]
    assert [v.granted for v in votes] == [False]


def test_votes_and_vote_requests_wait_for_persistence(make_core: CoreFactory) -> None:
    candidate = make_core("a", ["a", "b", "c"], pre_vote=False)
    campaign(candidate)
    rd = candidate.ready()
    assert rd.hard_state == HardState(1, "a", 0)
    assert not [m for m in rd.messages if isinstance(m, RequestVote)]
    assert {m.dst for m in rd.messages_after_persist if isinstance(m, RequestVote)} == {"b", "c"}
    voter = make_core("b", ["a", "b", "c"])
    voter.step(rd.messages_after_persist[0])
    rd2 = voter.ready()
    assert rd2.hard_state is not None and rd2.hard_state.vote == "a"
    assert rd2.messages == [] and len(rd2.messages_after_persist) == 1


def test_a_candidate_with_a_majority_leads_and_counts_metrics(make_core: CoreFactory) -> None:
    a = make_core("a", ["a", "b", "c"], pre_vote=False)
    campaign(a)
    a.ready()
    a.step(VoteResponse(1, "b", "a", True))
    rd = a.ready()
    assert a.role is Role.LEADER
    assert rd.soft_state is not None and rd.soft_state.leader == "a"
    kinds = [e.kind for e in rd.events]
    assert EventKind.ELECTION_WON in kinds and EventKind.LEADER_CHANGED in kinds
    assert EventKind.ELECTION_WON.value == "raft.election.duration_ms"


def test_split_votes_do_not_elect_anyone(make_core: CoreFactory) -> None:
    a = make_core("a", ["a", "b", "c", "d"], pre_vote=False)
    campaign(a)
    a.step(VoteResponse(1, "b", "a", True))
    assert a.role is Role.CANDIDATE  # 2 of 4 is no majority
    a.step(VoteResponse(1, "c", "a", False))
    a.step(VoteResponse(1, "d", "a", False))
    assert a.role is Role.FOLLOWER


@pytest.mark.parametrize("size", [3, 4, 5, 7])
def test_one_leader_per_term_under_partitions_and_loss(make_cluster: ClusterFactory,
                                                        size: int) -> None:
    for seed in range(6):
        cluster = make_cluster(size, seed=seed)
        cluster.network.faults = Faults(drop=0.2, duplicate=0.1, reorder=0.2, delay_max=8)
        ids = sorted(cluster.nodes)
        for round_ in range(6):
            cut = 1 + (seed + round_) % (size - 1)
            cluster.partition(ids[:cut], ids[cut:])
            cluster.run(cluster.ticks(15))
            cluster.heal()
            cluster.run(cluster.ticks(5))
        # The cluster checked election safety after every step; it also elected leaders.
        assert len(cluster.invariants.leaders) >= 1
        terms = sorted(cluster.invariants.leaders)
        assert len(set(terms)) == len(terms)


def test_an_up_to_date_log_is_needed_for_a_vote(make_core: CoreFactory) -> None:
    entries = [Entry(1, 1, EntryKind.NOOP, b""), Entry(2, 1, EntryKind.NORMAL, b"x")]
    conf = Configuration(frozenset({"a", "b", "c"}))
    state = InitialState(hard_state=HardState(1, None, 0), entries=entries, bootstrap=conf)
    voter = RaftCore("b", RaftConfig(), state, rng=1)
    voter.step(PreVote(2, "c", "b", 1, 1))
    voter.step(RequestVote(2, "c", "b", 1, 1))
    rd = voter.ready()
    answers = [m for m in rd.messages + rd.messages_after_persist
               if isinstance(m, PreVoteResponse | VoteResponse)]
    assert [(type(m).__name__, m.granted) for m in answers] == [
        ("PreVoteResponse", False), ("VoteResponse", False)]
    voter.step(RequestVote(3, "c", "b", 2, 1))
    granted = [m for m in voter.ready().messages_after_persist if isinstance(m, VoteResponse)]
    assert [m.granted for m in granted] == [True]
