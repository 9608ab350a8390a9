"""Both sessions together, still without sockets: a small in-memory runtime carries each step's
messages through the wire conversion to the other side and plays the controller's part
(leader or follower, current attempts). The scenarios are the fleet's failure cases."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from quorus.core.agentproto import (
    AgentCapabilities,
    AgentSession,
    Assign,
    AttemptCompleted,
    CloseConnection,
    ControllerAddress,
    ControllerSession,
    JobAttempt,
    Reconnect,
    Register,
    RegistrationRequested,
    ResultRejected,
    StartJob,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.secrets import Secret

SHA = "5a" * 32
C1 = ControllerAddress("c1", "10.0.0.1:7400")
C2 = ControllerAddress("c2", "10.0.0.2:7400")


@dataclass
class Quorum:
    """What the replicated state would say: the leader, each job's current attempt, and the
    completions it accepted."""

    leader: ControllerAddress
    current: dict[str, int] = field(default_factory=dict)
    completions: list[tuple[str, int]] = field(default_factory=list)


class Harness:
    """One agent and the controller it is connected to, messages crossing as wire values."""

    def __init__(self, quorum: Quorum) -> None:
        self.quorum = quorum
        self.agent = AgentSession(
            Register("a1", "h", "1", AgentCapabilities(("file",), 4)), [C1, C2], Secret("tok"),
            rng=random.Random(1),
        )
        self.controller: ControllerSession | None = None
        self.started: list[Assign] = []
        self.agent_saw: list[object] = []
        self.now = 0.0
        self.connects: list[str] = []
        self.pending: Reconnect | None = None
        self.handle_agent_step(self.agent.start(0.0))

    def connect(self) -> None:
        assert self.pending is not None
        self.now = max(self.now, self.pending.at)
        self.connects.append(self.pending.to.controller_id)
        self.controller = ControllerSession(
            self.pending.to.controller_id, lambda h: h.credentials.get("token") == "tok",
            now=self.now,
        )
        self.pending = None
        self.handle_agent_step(self.agent.connected(self.now))

    def handle_agent_step(self, step: Step) -> None:
        for action in step.actions:
            self.agent_saw.append(action)
            if isinstance(action, Reconnect):
                self.pending = action
            elif isinstance(action, StartJob):
                self.started.append(action.assign)
        for message in step.send:
            if self.controller is not None:
                self.handle_controller_step(self.controller.receive(from_wire(to_wire(message)), self.now))
        if any(isinstance(a, CloseConnection) for a in step.actions):
            self.controller = None

    def handle_controller_step(self, step: Step) -> None:
        controller = self.controller
        assert controller is not None
        for message in step.send:
            self.handle_agent_step(self.agent.receive(from_wire(to_wire(message)), self.now))
        for action in step.actions:
            if isinstance(action, RegistrationRequested):
                if controller.controller_id != self.quorum.leader.controller_id:
                    self.handle_controller_step(controller.redirect(self.quorum.leader, [C1, C2]))
                    return
                moved = [a for a in action.register.current_jobs
                         if self.quorum.current.get(a.job_id) != a.attempt]
                self.handle_controller_step(controller.accept(
                    heartbeat_interval=1.0, progress_interval=2.0, controllers=[C1, C2],
                    abort=moved,
                ))
            elif isinstance(action, AttemptCompleted):
                done = action.completed
                fresh = self.quorum.current.get(done.job_id) == done.attempt and (
                    done.job_id, done.attempt) not in self.quorum.completions
                if fresh:
                    self.quorum.completions.append((done.job_id, done.attempt))
                reason = "" if fresh else "not the job's current attempt"
                self.handle_controller_step(
                    controller.result_recorded(done.job_id, done.attempt, fresh, reason)
                )
            elif isinstance(action, CloseConnection):
                self.lose_connection("closed by the controller")
                return

    def assign(self, job: str, attempt: int) -> None:
        assert self.controller is not None
        self.quorum.current[job] = attempt
        self.handle_controller_step(self.controller.assign(Assign(job, attempt, "/a", "/b")))

    def lose_connection(self, reason: str) -> None:
        if self.controller is not None:
            self.controller.connection_lost(self.now, reason)
            self.controller = None
        if self.pending is None:
            self.handle_agent_step(self.agent.connection_lost(self.now, reason))


def test_agent_follows_the_redirect_registers_and_completes_a_job_once() -> None:
    harness = Harness(Quorum(leader=C2))
    harness.connect()  # c1, a follower
    assert harness.pending is not None and harness.pending.to == C2
    harness.connect()
    assert harness.connects == ["c1", "c2"]
    assert harness.controller is not None and harness.controller.active
    harness.assign("j1", 1)
    assert [a.job_id for a in harness.started] == ["j1"]
    harness.handle_agent_step(harness.agent.job_progress("j1", 1, 50, 100, 10.0, 0.1))
    harness.handle_agent_step(harness.agent.job_completed("j1", 1, 100, SHA, 1.0, 0.2))
    assert harness.quorum.completions == [("j1", 1)]
    assert harness.agent.unacknowledged == {}


def test_partitioned_agent_returns_and_its_stale_completion_is_refused() -> None:
    harness = Harness(Quorum(leader=C1))
    harness.connect()
    harness.assign("j1", 1)
    harness.assign("j2", 1)
    harness.lose_connection("partition")
    # meanwhile the leader gave both jobs' next attempts to other agents
    harness.quorum.current.update(j1=2, j2=2)
    harness.quorum.completions.append(("j1", 2))
    harness.handle_agent_step(harness.agent.job_completed("j1", 1, 100, SHA, 1.0, 5.0))
    harness.connect()  # the partition heals; c2 is tried first, then c1 leads
    for _ in range(3):
        if harness.pending is None:
            break
        harness.connect()
    assert harness.connects == ["c1", "c2", "c1"]
    assert JobAttempt("j2", 1) not in {JobAttempt(a.job_id, a.attempt)
                                       for a in harness.agent.running.values()}
    # The stale completion is listed when registering, so the controller's answer tells the
    # agent to abort that attempt and the result is dropped, never sent.
    assert not [a for a in harness.agent_saw if isinstance(a, ResultRejected)]
    assert harness.quorum.completions == [("j1", 2)]  # exactly once, by the new attempt
    assert harness.agent.unacknowledged == {}


def test_failover_keeps_running_jobs_and_reports_progress_to_the_new_leader() -> None:
    quorum = Quorum(leader=C1)
    harness = Harness(quorum)
    harness.connect()
    harness.assign("j1", 1)
    quorum.leader = C2
    harness.lose_connection("leader killed")
    harness.handle_agent_step(harness.agent.job_progress("j1", 1, 70, 100, 10.0, 0.5))
    harness.connect()
    assert harness.connects == ["c1", "c2"]
    assert harness.controller is not None and harness.controller.active
    assert list(harness.agent.running) == ["j1"]  # not aborted: still its current attempt
    harness.handle_agent_step(harness.agent.job_completed("j1", 1, 100, SHA, 1.0, 1.0))
    assert quorum.completions == [("j1", 1)]
