"""The scheduler: each placement rule, each reason a job waits, determinism, and that its
plans are accepted by the state machine."""

from __future__ import annotations

from typing import Any

from quorus.core.controller import (
    AgentCapabilities,
    AgentLocation,
    AgentState,
    AgentStateChanged,
    Applied,
    AssignJob,
    Command,
    ControllerState,
    DrainAgent,
    JobPlacement,
    LabelRequirement,
    RegisterAgent,
    Site,
    SubmitJob,
)
from quorus.core.controller.scheduler import AgentCapacity, Assignment, schedule


class Fleet:
    def __init__(self) -> None:
        self.state = ControllerState()
        self.index = 0

    def do(self, command: Command) -> Any:
        self.index += 1
        result = self.state.apply(self.index, command.encode())
        assert isinstance(result, Applied), result
        return result

    def agent(self, agent_id: str, *protocols: str, slots: int = 2, **kw: Any) -> None:
        self.do(RegisterAgent(agent_id, 1.0,
                              capabilities=AgentCapabilities(protocols or ("file",), slots), **kw))

    def job(self, job_id: str, source: str = "/in", destination: str = "/out", **kw: Any) -> None:
        self.do(SubmitJob.new(source, destination, job_id=job_id, at=2.0, **kw))

    def run(self, capacity: dict[str, AgentCapacity] | None = None,
            **kw: Any) -> dict[str, str]:
        """Schedule, apply every assignment, and return job → agent."""
        plan = schedule(self.state, capacity, **kw)
        for assignment in plan.assignments:
            self.do(assignment.command(3.0))
        self.waiting = dict(plan.waiting)
        return {a.job_id: a.agent_id for a in plan.assignments}


def test_protocols_both_schemes_must_be_supported() -> None:
    fleet = Fleet()
    fleet.agent("files", "file")
    fleet.agent("sftp", "sftp")
    fleet.agent("both", "file", "sftp")
    fleet.job("up", "/in", "sftp://h/out")
    fleet.job("local")
    fleet.job("smb", "/in", "smb://h/s/out")
    placed = fleet.run()
    assert placed["up"] == "both"
    assert placed["local"] == "files"  # least loaded: "both" already has a job
    assert fleet.waiting == {"smb": "no agent supports smb"}


def test_reason_when_no_agent_supports_both() -> None:
    fleet = Fleet()
    fleet.agent("sftp", "sftp")
    fleet.agent("smb", "smb")
    fleet.job("j", "sftp://h/a", "smb://h/s/b")
    assert fleet.run() == {}
    assert fleet.waiting == {"j": "no agent supports both sftp and smb"}


def test_capacity_and_the_full_reason() -> None:
    fleet = Fleet()
    for i in range(3):
        fleet.agent(f"a{i}", "smb", slots=1)
    for i in range(5):
        fleet.job(f"j{i}", "smb://h/s/a", "smb://h/s/b")
    placed = fleet.run()
    assert sorted(placed) == ["j0", "j1", "j2"]
    assert sorted(placed.values()) == ["a0", "a1", "a2"]
    assert fleet.waiting == {"j3": "all 3 agents that support smb are full",
                             "j4": "all 3 agents that support smb are full"}
    # Reported free capacity below the configured maximum is respected.
    fleet2 = Fleet()
    fleet2.agent("a", slots=4)
    for i in range(4):
        fleet2.job(f"j{i}")
    assert len(fleet2.run({"a": AgentCapacity(free_slots=1)})) == 1
    assert fleet2.waiting["j1"] == "the one agent that supports file is full"


def test_fair_spreading_least_loaded_first_ties_by_id() -> None:
    fleet = Fleet()
    fleet.agent("b", slots=4)
    fleet.agent("a", slots=4)
    fleet.agent("c", slots=2)
    fleet.job("first")
    fleet.do(AssignJob("first", "a", 1, 2.5))
    for i in range(6):
        fleet.job(f"j{i}")
    placed = fleet.run()
    # b and c are empty (tie: b < c); then by share of slots in use, then by jobs held
    # (j4: all three at half their slots, c holds the fewest), then by id.
    assert [placed[f"j{i}"] for i in range(6)] == ["b", "c", "a", "b", "c", "a"]
    assert [fleet.state.load(x) for x in "abc"] == [3, 2, 2]


def test_priority_then_age() -> None:
    fleet = Fleet()
    fleet.agent("a", slots=2)
    fleet.job("old")
    fleet.job("new")
    fleet.job("urgent", priority=5)
    assert sorted(fleet.run()) == ["old", "urgent"]
    assert fleet.waiting == {"new": "the one agent that supports file is full"}


def test_location_preference_then_load() -> None:
    fleet = Fleet()
    fleet.agent("east", slots=4, location=AgentLocation("dc-east", "z1", "us"))
    fleet.agent("east-b", slots=4, location=AgentLocation("dc-east", "z2", "us"))
    fleet.agent("west", slots=4, location=AgentLocation("dc-west", "z9", "us"))
    fleet.agent("eu", slots=4, location=AgentLocation("dc-eu", "z1", "eu"))
    fleet.job("to-z1", placement=JobPlacement(destination_site=Site(None, "dc-east", "z1")))
    fleet.job("from-dc", placement=JobPlacement(source_site=Site(datacenter="dc-east")))
    fleet.job("in-us", placement=JobPlacement(preferred_site=Site(region="us")))
    fleet.job("eu-zone", placement=JobPlacement(preferred_site=Site(zone="z1", region="eu"),
                                                source_site=Site(datacenter="dc-west")))
    placed = fleet.run()
    assert placed["to-z1"] == "east"
    assert placed["from-dc"] == "east-b"  # same datacenter; east-b is less loaded than east
    assert placed["in-us"] == "west"  # region only; west is least loaded of the us agents
    assert placed["eu-zone"] == "eu"
    # A preference never blocks: with the preferred agent full the job runs elsewhere.
    fleet2 = Fleet()
    fleet2.agent("near", slots=1, location=AgentLocation(zone="z1"))
    fleet2.agent("far", slots=1, location=AgentLocation(zone="z2"))
    fleet2.job("a", placement=JobPlacement(preferred_site=Site(zone="z1")))
    fleet2.job("b", placement=JobPlacement(preferred_site=Site(zone="z1")))
    assert fleet2.run() == {"a": "near", "b": "far"}


def test_required_site_and_labels() -> None:
    fleet = Fleet()
    fleet.agent("gpu-a", labels={"gpu": "true"}, location=AgentLocation(zone="zone-b"))
    fleet.agent("plain-a", location=AgentLocation(zone="zone-a"))
    fleet.agent("prod", labels={"env": "prod"}, location=AgentLocation(zone="zone-c"))
    gpu = (LabelRequirement.parse("gpu=true"),)
    fleet.job("gpu-in-a", placement=JobPlacement(affinity=gpu, required_site=Site(zone="zone-a")))
    fleet.job("gpu", placement=JobPlacement(affinity=gpu))
    fleet.job("in-a", placement=JobPlacement(required_site=Site(zone="zone-a")))
    fleet.job("in-x", placement=JobPlacement(required_site=Site(zone="zone-x")))
    fleet.job("not-prod", placement=JobPlacement(
        anti_affinity=(LabelRequirement.parse("env=prod"),),
        required_site=Site(zone="zone-c")))
    fleet.job("no-sftp", "/in", "sftp://h/x")
    placed = fleet.run()
    assert placed == {"gpu": "gpu-a", "in-a": "plain-a"}
    assert fleet.waiting == {
        "gpu-in-a": "no agent in zone-a matches label gpu=true",
        "in-x": "no agent in zone-x supports file",
        "not-prod": "every agent in zone-c matches excluded label env=prod",
        "no-sftp": "no agent supports sftp",
    }


def test_unavailable_and_unconnected_agents_get_nothing() -> None:
    fleet = Fleet()
    fleet.agent("sick", "sftp")
    fleet.agent("leaving", "sftp")
    fleet.do(AgentStateChanged("sick", AgentState.UNHEALTHY, 2.0))
    fleet.job("keep", "sftp://h/a", "sftp://h/x")  # keeps "leaving" draining a while
    fleet.do(AssignJob("keep", "leaving", 1, 2.0))
    fleet.do(DrainAgent("leaving", 2.0, 100.0))
    fleet.job("j", "sftp://h/a", "sftp://h/y")
    assert fleet.run() == {}
    assert fleet.waiting == {"j": "the 2 agents that support sftp are draining or unhealthy"}
    fleet.agent("ready", "sftp")
    fleet.agent("ready-too", "sftp")
    # Only agents connected to this leader (those in the capacity map) get jobs.
    assert fleet.run({"sick": AgentCapacity()}) == {}
    assert fleet.waiting["j"] == "the 2 agents that support sftp are not connected to the leader"
    assert fleet.run({"ready-too": AgentCapacity()}) == {"j": "ready-too"}


def test_the_limit_bounds_a_round_and_the_plan_is_deterministic() -> None:
    def build() -> Fleet:
        fleet = Fleet()
        for i in range(10):
            fleet.agent(f"a{i}", "file", "sftp", slots=3,
                        location=AgentLocation(zone=f"z{i % 3}"))
        for i in range(50):
            fleet.job(f"j{i:02}", placement=JobPlacement(preferred_site=Site(zone=f"z{i % 4}")),
                      priority=i % 3)
        return fleet

    one, two = build(), build()
    plan = schedule(one.state, max_assignments=7)
    assert len(plan.assignments) == 7 and plan.waiting == {}
    assert plan == schedule(two.state, max_assignments=7)
    assert all(isinstance(a, Assignment) and a.attempt == 1 for a in plan.assignments)
    # The top-priority jobs come first.
    assert all(one.state.jobs[a.job_id].priority == 2 for a in plan.assignments)
    assert len(one.run()) == 30 and len(one.waiting) == 20


def test_assignments_in_flight_are_not_planned_again_and_hold_their_agents_slots() -> None:
    # The leader plans a round while an earlier round's assignments are being committed.
    fleet = Fleet()
    fleet.agent("a", slots=2)
    fleet.agent("b", slots=1)
    for i in range(5):
        fleet.job(f"j{i}")
    first = schedule(fleet.state, max_assignments=2)
    in_flight = {a.job_id: a.agent_id for a in first.assignments}
    assert in_flight == {"j0": "a", "j1": "b"}
    # Not yet applied: the jobs are still queued in the state, but nothing is placed twice
    # and b, whose one slot the first round took, gets nothing.
    second = schedule(fleet.state, in_flight=in_flight)
    assert [(a.job_id, a.agent_id) for a in second.assignments] == [("j2", "a")]
    assert set(second.waiting) == {"j3", "j4"}
    assert "j0" not in second.waiting and "j1" not in second.waiting
    assert second.waiting["j3"] == "all 2 agents that support file are full"
    # Once the first round is applied the overlay is gone and the state holds the same.
    for assignment in first.assignments:
        fleet.do(assignment.command(3.0))
    assert schedule(fleet.state).assignments == second.assignments
