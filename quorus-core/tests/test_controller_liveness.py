"""Liveness: missed heartbeats, the new leader's grace, recovery, drain deadlines, and the
soft state handed to the scheduler. Times are plain numbers: nothing reads a clock."""

from __future__ import annotations

from typing import Any

import pytest
from quorus.core.controller import (
    AgentCapabilities,
    AgentState,
    AgentStateChanged,
    Applied,
    AssignJob,
    Command,
    ControllerState,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    JobState,
    RegisterAgent,
    SubmitJob,
)
from quorus.core.controller.liveness import Liveness
from quorus.core.controller.scheduler import AgentCapacity, schedule


class Leader:
    """A state and a liveness tracker, applying what the review proposes."""

    def __init__(self, interval: float = 1.0, **kw: Any) -> None:
        self.state = ControllerState()
        self.liveness = Liveness(interval, **kw)
        self.index = 0

    def do(self, command: Command) -> Any:
        self.index += 1
        result = self.state.apply(self.index, command.encode())
        assert isinstance(result, Applied), result
        return result

    def review(self, now: float) -> list[Command]:
        commands = self.liveness.review(self.state, now)
        for command in commands:
            self.do(command)
        return commands


def register(agent_id: str, at: float = 0.0) -> RegisterAgent:
    return RegisterAgent(agent_id, at, capabilities=AgentCapabilities(("file",), 2))


def test_agent_missing_three_intervals_is_expired_and_its_jobs_requeued() -> None:
    leader = Leader(interval=1.0)
    leader.liveness.start_leading(0.0)
    leader.do(register("a1"))
    leader.do(register("a2"))
    leader.do(SubmitJob.new("/a", "/b", job_id="j1", at=0.0))
    leader.do(AssignJob("j1", "a1", 1, 0.5))
    for t in (0.5, 1.5, 2.5):
        leader.liveness.heartbeat("a1", t)
    for t in (0.5, 1.5, 2.5, 3.5, 4.5, 5.5):
        leader.liveness.heartbeat("a2", t)
    assert leader.review(5.4) == []  # a1's deadline is 2.5 + 3
    assert leader.liveness.deadline("a1") == 5.5
    assert leader.review(5.5) == [ExpireAgent("a1", 5.5, last_heartbeat=2.5)]
    assert leader.state.agents["a1"].state is AgentState.UNHEALTHY
    job = leader.state.jobs["j1"]
    assert (job.state, job.attempt) == (JobState.QUEUED, 2)
    assert leader.review(5.6) == []  # proposed once
    assert leader.state.agents["a2"].state is AgentState.ACTIVE


def test_new_leader_gives_a_full_timeout_of_grace() -> None:
    leader = Leader(interval=1.0)
    leader.do(register("a1"))
    # Not leading: nothing is ever proposed.
    assert leader.review(100.0) == [] and leader.liveness.grace_until is None
    leader.liveness.start_leading(100.0)
    assert leader.liveness.grace_until == 103.0
    # Silent since long before the election: still not dead until a full timeout after it.
    assert leader.review(102.9) == []
    assert leader.review(103.0) == [ExpireAgent("a1", 103.0, last_heartbeat=None)]


def test_heartbeats_seen_by_an_earlier_term_do_not_count() -> None:
    liveness = Liveness(1.0)
    liveness.start_leading(0.0)
    liveness.heartbeat("a1", 50.0)
    liveness.stop_leading()
    liveness.start_leading(10.0)  # elected again later (a clock that jumped does not matter)
    assert liveness.last_heard("a1") is None
    assert liveness.deadline("a1") == 13.0


def test_unhealthy_agent_that_is_heard_again_recovers() -> None:
    leader = Leader(interval=1.0)
    leader.liveness.start_leading(0.0)
    leader.do(register("a1"))
    leader.review(3.0)
    assert leader.state.agents["a1"].state is AgentState.UNHEALTHY
    leader.liveness.heartbeat("a1", 4.0)
    assert leader.review(4.1) == [
        AgentStateChanged("a1", AgentState.ACTIVE, 4.1, "heartbeats resumed")]
    assert leader.state.agents["a1"].state is AgentState.ACTIVE


def test_unhealthy_by_report_then_silent_with_jobs_is_expired() -> None:
    leader = Leader(interval=1.0)
    leader.liveness.start_leading(0.0)
    leader.do(register("a1"))
    leader.do(SubmitJob.new("/a", "/b", job_id="j1", at=0.0))
    leader.do(AssignJob("j1", "a1", 1, 0.1))
    leader.liveness.heartbeat("a1", 0.5)
    leader.do(AgentStateChanged("a1", AgentState.UNHEALTHY, 0.6, "disk failing"))
    assert leader.review(3.4) == []
    assert leader.review(3.5) == [ExpireAgent("a1", 3.5, last_heartbeat=0.5)]
    assert leader.state.jobs["j1"].state is JobState.QUEUED


def test_unhealthy_agents_are_deregistered_after_the_configured_time() -> None:
    leader = Leader(interval=1.0, unhealthy_deregister_after=60.0)
    leader.liveness.start_leading(0.0)
    leader.do(register("a1"))
    leader.review(3.0)
    assert leader.review(62.9) == []
    assert leader.review(63.0) == [DeregisterAgent("a1", 63.0, "unhealthy for too long")]
    # Without the setting an unhealthy agent is kept so that it can come back.
    keeper = Leader(interval=1.0)
    keeper.liveness.start_leading(0.0)
    keeper.do(register("a1"))
    keeper.review(3.0)
    assert keeper.review(10_000.0) == []


def test_draining_agent_is_deregistered_at_its_deadline() -> None:
    leader = Leader(interval=10.0)
    leader.liveness.start_leading(0.0)
    leader.do(register("a1"))
    leader.do(SubmitJob.new("/a", "/b", job_id="j1", at=0.0))
    leader.do(AssignJob("j1", "a1", 1, 0.1))
    leader.do(DrainAgent("a1", 1.0, deadline=5.0))
    leader.liveness.heartbeat("a1", 4.0)
    assert leader.review(4.9) == []
    assert leader.review(5.0) == [DeregisterAgent("a1", 5.0, "drain deadline passed")]
    assert leader.state.agents["a1"].state is AgentState.DEREGISTERED
    assert leader.state.jobs["j1"].state is JobState.QUEUED


def test_out_of_order_heartbeats_are_ignored() -> None:
    liveness = Liveness(1.0)
    liveness.start_leading(0.0)
    assert liveness.heartbeat("a1", 5.0, sequence=7, free_slots=1)
    assert not liveness.heartbeat("a1", 6.0, sequence=6, free_slots=9)
    assert liveness.last_heard("a1") == 5.0
    assert liveness.capacity(5.5) == {"a1": AgentCapacity(free_slots=1)}


def test_capacity_lists_connected_live_agents_for_the_scheduler() -> None:
    leader = Leader(interval=1.0)
    leader.liveness.start_leading(0.0)
    for agent_id in ("live", "gone", "quiet"):
        leader.do(register(agent_id))
    leader.do(SubmitJob.new("/a", "/b", job_id="j1", at=0.0))
    leader.liveness.heartbeat("live", 1.0, free_slots=2)
    leader.liveness.heartbeat("gone", 1.0)
    leader.liveness.disconnected("gone")
    leader.liveness.heartbeat("quiet", 0.1)
    capacity = leader.liveness.capacity(3.5)
    assert capacity == {"live": AgentCapacity(free_slots=2)}
    assert leader.liveness.is_live("live", 3.5) and not leader.liveness.is_live("quiet", 3.5)
    plan = schedule(leader.state, capacity)
    assert [(a.job_id, a.agent_id) for a in plan.assignments] == [("j1", "live")]
    leader.liveness.forget("live")
    assert leader.liveness.capacity(3.5) == {}


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Liveness(0.0)
    with pytest.raises(ValueError, match="interval must be positive"):
        Liveness(1.0, missed=0)
