"""The agent's side of the protocol, driven with plain messages and times: handshake order,
heartbeat numbering, assignments and aborts, coalesced progress, results kept until
acknowledged, redirects, reconnection with computed backoff, and drain."""

from __future__ import annotations

import random

import pytest
from quorus.core.agentproto import (
    Abort,
    AbortJob,
    AgentCapabilities,
    AgentLocation,
    AgentPhase,
    AgentSession,
    AgentStatus,
    Assign,
    Backoff,
    CloseConnection,
    Completed,
    ControllerAddress,
    ControllerError,
    Deregister,
    Drain,
    DrainRequested,
    Error,
    ErrorCode,
    Failed,
    Heartbeat,
    HeartbeatAck,
    JobAttempt,
    Progress,
    ProtocolError,
    Reconnect,
    Redirect,
    Register,
    Registered,
    RegisteredWith,
    RegistrationRejected,
    ResultAck,
    ResultRejected,
    SessionStateError,
    Shutdown,
    StartJob,
    Step,
    VersionMismatch,
)
from quorus.core.secrets import Secret
from quorus.core.wire import Hello

C1 = ControllerAddress("c1", "127.0.0.1:7001")
C2 = ControllerAddress("c2", "127.0.0.1:7002")
C3 = ControllerAddress("c3", "127.0.0.1:7003")
QUORUM = (C1, C2, C3)
SHA = "0f" * 32
INTERVAL = 1.0


def controller_hello(node: str = "c1", versions: tuple[int, ...] = (1,)) -> Hello:
    return Hello("quorus-agent", versions, node)


def accepted(abort: tuple[JobAttempt, ...] = (), progress_interval: float = 2.0) -> Registered:
    return Registered(True, INTERVAL, progress_interval, abort, QUORUM)


def new_agent(max_concurrent: int = 2, backoff: Backoff | None = None) -> AgentSession:
    registration = Register(
        "agent-1", "host-1", "0.1.0", AgentCapabilities(("file", "sftp"), max_concurrent),
        location=AgentLocation("dc-1", "zone-a", "eu", ("ssd",)), labels={"tier": "gold"},
    )
    return AgentSession(
        registration, [C1, C2, C3], Secret("s3cret-token"), backoff=backoff,
        rng=random.Random(7),
    )


def register(agent: AgentSession, now: float, registered: Registered | None = None) -> Step:
    """Connect, exchange hellos and register; the step answering ``registered``."""
    agent.connected(now)
    agent.receive(controller_hello(agent.directory.current.controller_id), now)
    return agent.receive(registered or accepted(), now)


def active_agent(**kwargs: object) -> AgentSession:
    agent = new_agent(**kwargs)  # type: ignore[arg-type]
    agent.start(0.0)
    register(agent, 0.0)
    return agent


def assign(job: str = "j1", attempt: int = 1) -> Assign:
    return Assign(job, attempt, "file:///in/" + job, "sftp://h/out/" + job)


def kinds(step: Step) -> list[str]:
    return [type(item).__name__ for item in (*step.send, *step.actions)]


# -- handshake and order ------------------------------------------------------------------------


def test_start_connects_to_the_first_controller_and_says_hello_with_the_token() -> None:
    agent = new_agent()
    step = agent.start(5.0)
    assert step.actions == (Reconnect(C1, 5.0, "starting"),)
    with pytest.raises(SessionStateError):
        agent.start(5.0)
    (hello,) = agent.connected(5.0).send
    assert isinstance(hello, Hello)
    assert (hello.protocol, hello.versions, hello.node_id) == ("quorus-agent", (1,), "agent-1")
    assert hello.auth_method == "token" and hello.credentials == {"token": "s3cret-token"}
    assert "s3cret" not in repr(hello) and "s3cret" not in repr(agent.__dict__)


def test_the_hello_names_the_auth_method_the_token_is_for() -> None:
    agent = AgentSession(new_agent().registration, [C1], Secret("s3cret-token"),
                         auth_method="shared-secret")
    agent.start(0.0)
    (hello,) = agent.connected(0.0).send
    assert isinstance(hello, Hello)
    assert hello.auth_method == "shared-secret"
    assert hello.credentials == {"token": "s3cret-token"}
    # Without a token (a certificate proves who the agent is) the hello names no method.
    bare = AgentSession(new_agent().registration, [C1], None, auth_method="shared-secret")
    bare.start(0.0)
    (hello,) = bare.connected(0.0).send
    assert isinstance(hello, Hello) and hello.auth_method is None and not hello.credentials


def test_register_follows_the_hello_and_carries_the_registration() -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    (register_message,) = agent.receive(controller_hello(), 0.0).send
    assert isinstance(register_message, Register)
    assert register_message.location.datacenter == "dc-1"
    assert register_message.labels == {"tier": "gold"}
    assert register_message.current_jobs == ()
    assert agent.phase is AgentPhase.REGISTERING and agent.version == 1


@pytest.mark.parametrize(
    ("phase_steps", "message"),
    [
        (0, accepted()),
        (0, assign()),
        (0, HeartbeatAck(1)),
        (1, controller_hello()),
        (1, assign()),
        (1, HeartbeatAck(0)),
        (2, controller_hello()),
        (2, accepted()),
        (2, Register("agent-1", "h", "1", AgentCapabilities(("file",), 1))),
        (2, Progress("j1", 1, 0, None, 0.0)),
    ],
)
def test_messages_out_of_order_are_protocol_errors(phase_steps: int, message: object) -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    if phase_steps >= 1:
        agent.receive(controller_hello(), 0.0)
    if phase_steps >= 2:
        agent.receive(accepted(), 0.0)
    with pytest.raises(ProtocolError) as caught:
        agent.receive(message, 0.0)  # type: ignore[arg-type]
    assert caught.value.reply.code is ErrorCode.PROTOCOL


def test_nothing_is_received_without_a_connection() -> None:
    agent = new_agent()
    agent.start(0.0)
    with pytest.raises(ProtocolError, match="no registered connection"):
        agent.receive(controller_hello(), 0.0)
    with pytest.raises(SessionStateError):
        new_agent().connected(0.0)  # never started


@pytest.mark.parametrize(
    "hello", [controller_hello(versions=(2, 3)), Hello("quorus-raft", (1,), "c1")]
)
def test_a_controller_without_a_common_version_is_refused(hello: Hello) -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    with pytest.raises(VersionMismatch) as caught:
        agent.receive(hello, 0.0)
    assert caught.value.reply.code is ErrorCode.VERSION


def test_handshake_times_out_and_moves_to_the_next_controller() -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    assert agent.next_deadline() == 10.0
    assert agent.tick(9.9) == Step()
    step = agent.tick(10.0)
    assert isinstance(step.actions[0], CloseConnection)
    assert step.actions[1] == Reconnect(C2, 10.0, "handshake timed out")
    assert agent.phase is AgentPhase.DISCONNECTED


def test_registration_accepted_starts_heartbeats() -> None:
    agent = new_agent()
    agent.start(0.0)
    step = register(agent, 3.0)
    assert step.actions == (RegisteredWith("c1", INTERVAL, QUORUM),)
    assert agent.phase is AgentPhase.ACTIVE
    assert agent.next_deadline() == 4.0


def test_registration_rejected_backs_off_to_the_next_controller() -> None:
    agent = new_agent()
    agent.start(0.0)
    step = register(agent, 1.0, Registered(False, 0.0, 0.0, (), (), "agent id in use"))
    assert kinds(step) == ["RegistrationRejected", "CloseConnection", "Reconnect"]
    assert step.actions[0] == RegistrationRejected("agent id in use")
    reconnect = step.actions[2]
    assert isinstance(reconnect, Reconnect) and reconnect.to == C2


def test_an_error_from_the_controller_closes_and_reconnects() -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    step = agent.receive(Error(ErrorCode.UNAUTHORIZED, "credentials refused"), 0.5)
    assert step.actions[0] == ControllerError(ErrorCode.UNAUTHORIZED, "credentials refused")
    assert isinstance(step.actions[1], CloseConnection)
    assert isinstance(step.actions[2], Reconnect) and step.actions[2].to == C2


def test_credentials_refused_while_registered_abort_what_runs_and_back_off() -> None:
    # The controller ended the session (a revoked token): the attempts are no longer this
    # agent's to finish; the results already owed stay owed (resent if it registers again).
    agent = active_agent(backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0))
    agent.receive(assign("j1"), 0.1)
    agent.receive(assign("j2"), 0.1)
    agent.job_completed("j2", 1, 10, SHA, 0.1, 0.2)
    step = agent.receive(Error(ErrorCode.UNAUTHORIZED, "token qrs_… was revoked"), 0.5)
    assert kinds(step) == ["ControllerError", "AbortJob", "CloseConnection", "Reconnect"]
    assert step.actions[1] == AbortJob(
        "j1", 1, "the controller withdrew this agent's access: token qrs_… was revoked")
    assert agent.running == {} and set(agent.unacknowledged) == {JobAttempt("j2", 1)}
    # Refused again at each hello: each try waits longer.
    waits = []
    for now in (10.0, 20.0, 30.0, 40.0, 50.0):
        agent.connected(now)
        refused = agent.receive(Error(ErrorCode.UNAUTHORIZED, "token qrs_… was revoked"), now)
        reconnect = refused.actions[-1]
        assert isinstance(reconnect, Reconnect)
        waits.append(reconnect.at - now)
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0]


def test_other_errors_keep_what_runs() -> None:
    agent = active_agent()
    agent.receive(assign("j1"), 0.1)
    step = agent.receive(Error(ErrorCode.INTERNAL, "the quorum is unavailable"), 0.5)
    assert kinds(step) == ["ControllerError", "CloseConnection", "Reconnect"]
    assert set(agent.running) == {"j1"}


# -- heartbeats -----------------------------------------------------------------------------------


def test_heartbeats_are_numbered_and_due_every_interval() -> None:
    agent = active_agent()
    assert agent.tick(0.5) == Step()
    sequences = []
    now = 1.0
    for _ in range(3):
        (heartbeat,) = agent.tick(now).send
        assert isinstance(heartbeat, Heartbeat)
        sequences.append(heartbeat.sequence)
        assert heartbeat.timestamp == now and heartbeat.agent_id == "agent-1"
        agent.receive(HeartbeatAck(heartbeat.sequence), now)
        assert agent.tick(now + 0.5).send == ()
        now += INTERVAL
    assert sequences == [1, 2, 3]


def test_heartbeat_reports_status_jobs_and_capacity() -> None:
    agent = active_agent(max_concurrent=2)
    agent.receive(assign("j1"), 0.1)
    (heartbeat,) = agent.tick(1.0).send
    assert isinstance(heartbeat, Heartbeat)
    assert (heartbeat.status, heartbeat.available_capacity) == (AgentStatus.ACTIVE, 1)
    assert heartbeat.current_jobs == (JobAttempt("j1", 1),)
    agent.receive(assign("j2", 3), 1.1)
    (heartbeat,) = agent.tick(2.0).send
    assert isinstance(heartbeat, Heartbeat)
    assert (heartbeat.status, heartbeat.available_capacity) == (AgentStatus.BUSY, 0)
    assert heartbeat.current_jobs == (JobAttempt("j1", 1), JobAttempt("j2", 3))
    agent.update_status(unhealthy=True)
    agent.job_failed("j2", 3, "NotFoundError", "gone", False, 2.1)
    (heartbeat,) = agent.tick(3.0).send
    assert isinstance(heartbeat, Heartbeat) and heartbeat.status is AgentStatus.UNHEALTHY


def test_an_ack_for_a_heartbeat_never_sent_is_a_protocol_error() -> None:
    agent = active_agent()
    agent.tick(1.0)
    with pytest.raises(ProtocolError, match="heartbeat-ack for heartbeat 2; the last sent is 1"):
        agent.receive(HeartbeatAck(2), 1.0)


def test_a_silent_controller_is_left_after_three_intervals() -> None:
    agent = active_agent()
    agent.tick(1.0)
    agent.receive(HeartbeatAck(1), 1.0)  # heard at 1.0
    assert agent.next_deadline() == 2.0
    agent.tick(2.0)
    agent.tick(3.0)
    step = agent.tick(4.0)  # 3 intervals since the last word
    assert kinds(step) == ["CloseConnection", "Reconnect"]
    assert step.actions[1] == Reconnect(C2, 4.0, "the controller went silent")


def test_heartbeat_numbers_keep_rising_across_reconnects() -> None:
    agent = active_agent()
    agent.tick(1.0)
    agent.tick(2.0)
    agent.connection_lost(2.5, "reset")
    register(agent, 3.0)
    (heartbeat,) = agent.tick(4.0).send
    assert isinstance(heartbeat, Heartbeat) and heartbeat.sequence == 3


# -- assignments and aborts ---------------------------------------------------------------------


def test_assign_starts_the_job_once() -> None:
    agent = active_agent()
    job = assign()
    assert agent.receive(job, 0.1).actions == (StartJob(job),)
    assert agent.receive(job, 0.2) == Step()  # a repeat, e.g. from a new leader
    assert agent.running == {"j1": job}


def test_a_newer_attempt_replaces_the_old_one_and_an_older_one_is_ignored() -> None:
    agent = active_agent()
    agent.receive(assign("j1", 2), 0.1)
    assert agent.receive(assign("j1", 1), 0.2) == Step()
    step = agent.receive(assign("j1", 3), 0.3)
    assert step.actions == (
        AbortJob("j1", 2, "superseded by a newer attempt"), StartJob(assign("j1", 3))
    )


def test_assign_beyond_capacity_is_answered_failed_retryable() -> None:
    agent = active_agent(max_concurrent=1)
    agent.receive(assign("j1"), 0.1)
    (refusal,) = agent.receive(assign("j2"), 0.2).send
    assert isinstance(refusal, Failed)
    assert (refusal.job_id, refusal.error_type, refusal.retryable) == ("j2", "AgentFull", True)
    assert list(agent.running) == ["j1"]


def test_abort_stops_the_attempt_and_its_late_result_is_dropped() -> None:
    agent = active_agent()
    agent.receive(assign("j1", 1), 0.1)
    assert agent.receive(Abort("j1", 2, "wrong attempt"), 0.2) == Step()
    step = agent.receive(Abort("j1", 1, "cancelled"), 0.3)
    assert step.actions == (AbortJob("j1", 1, "cancelled"),)
    assert agent.receive(Abort("j1", 1, "cancelled"), 0.4) == Step()  # idempotent
    assert agent.job_progress("j1", 1, 10, 100, 5.0, 0.5) == Step()
    assert agent.job_completed("j1", 1, 100, SHA, 1.0, 0.6) == Step()
    assert agent.unacknowledged == {}


# -- progress -------------------------------------------------------------------------------------


def test_progress_is_coalesced_to_the_latest_values() -> None:
    agent = active_agent()
    agent.receive(assign(), 0.0)
    first = agent.job_progress("j1", 1, 10, 100, 5.0, 0.0)
    assert first.send == (Progress("j1", 1, 10, 100, 5.0),)
    assert agent.job_progress("j1", 1, 20, 100, 6.0, 0.5) == Step()
    assert agent.job_progress("j1", 1, 30, 100, 7.0, 1.5) == Step()
    assert agent.next_deadline() == 1.0  # the heartbeat comes first
    agent.tick(1.0)
    agent.receive(HeartbeatAck(1), 1.0)
    assert agent.next_deadline() == 2.0
    step = agent.tick(2.0)
    progress = [m for m in step.send if isinstance(m, Progress)]
    assert progress == [Progress("j1", 1, 30, 100, 7.0)]
    assert [m for m in agent.tick(2.5).send if isinstance(m, Progress)] == []
    # past the interval a report goes out at once
    assert agent.job_progress("j1", 1, 40, 100, 7.0, 4.0).send == (Progress("j1", 1, 40, 100, 7.0),)


def test_progress_reports_of_one_run_are_bounded_by_the_interval() -> None:
    agent = active_agent()
    agent.receive(assign(), 0.0)
    sent: list[Progress] = []
    now = 0.0
    for step_number in range(200):  # a report every 50 ms for 10 s
        now = step_number * 0.05
        for out in (agent.job_progress("j1", 1, step_number, 200, 1.0, now), agent.tick(now)):
            sent += [m for m in out.send if isinstance(m, Progress)]
            for message in out.send:
                if isinstance(message, Heartbeat):
                    agent.receive(HeartbeatAck(message.sequence), now)
    assert 5 <= len(sent) <= 6  # one per 2 s
    assert sent[-1].bytes_done >= 160


def test_completion_sends_a_final_progress_then_completed() -> None:
    agent = active_agent()
    agent.receive(assign(), 0.0)
    agent.job_progress("j1", 1, 10, 100, 5.0, 0.0)
    agent.job_progress("j1", 1, 90, 100, 5.0, 0.5)  # held
    step = agent.job_completed("j1", 1, 100, SHA, 2.0, 0.9)
    assert step.send == (Progress("j1", 1, 100, 100, 50.0), Completed("j1", 1, 100, SHA, 2.0))
    assert agent.tick(3.0).send[1:] == ()  # nothing held any more, only the heartbeat
    assert agent.running == {}


def test_progress_while_disconnected_is_sent_once_registered_again() -> None:
    agent = active_agent()
    agent.receive(assign(), 0.0)
    agent.job_progress("j1", 1, 10, 100, 5.0, 0.0)
    agent.connection_lost(0.2, "reset")
    assert agent.job_progress("j1", 1, 50, 100, 5.0, 0.3) == Step()
    assert agent.next_deadline() is None
    assert register(agent, 0.4).send == (Progress("j1", 1, 50, 100, 5.0),)
    assert agent.next_deadline() == 1.4  # the next heartbeat; nothing held


# -- results ---------------------------------------------------------------------------------------


def test_results_are_resent_after_reregistration_until_acknowledged() -> None:
    agent = active_agent()
    agent.receive(assign("j1"), 0.0)
    agent.receive(assign("j2"), 0.0)
    agent.job_completed("j1", 1, 100, SHA, 1.0, 1.0)
    agent.connection_lost(1.1, "reset")
    agent.job_failed("j2", 1, "TransientError", "reset by peer", True, 1.2)  # while away
    step = register(agent, 2.0)
    assert step.send == (
        Completed("j1", 1, 100, SHA, 1.0), Failed("j2", 1, "TransientError", "reset by peer", True)
    )
    agent.receive(ResultAck("j1", 1, True), 2.1)
    step = agent.receive(ResultAck("j2", 1, False, "job was cancelled"), 2.1)
    assert step.actions == (ResultRejected("j2", 1, "job was cancelled"),)
    agent.connection_lost(3.0, "reset")
    assert register(agent, 3.5).send == ()


def test_reregistering_lists_running_attempts_and_aborts_the_moved_ones() -> None:
    agent = active_agent()
    agent.receive(assign("j1", 1), 0.0)
    agent.receive(assign("j2", 4), 0.0)
    agent.connection_lost(1.0, "partition")
    agent.connected(1.0)
    (register_message,) = agent.receive(controller_hello("c2"), 1.0).send
    assert isinstance(register_message, Register)
    assert register_message.current_jobs == (JobAttempt("j1", 1), JobAttempt("j2", 4))
    step = agent.receive(accepted(abort=(JobAttempt("j2", 4),)), 1.1)
    assert AbortJob("j2", 4, "the controller moved this attempt elsewhere") in step.actions
    assert list(agent.running) == ["j1"]


def test_attempts_with_results_not_yet_acknowledged_are_listed_when_reregistering() -> None:
    agent = active_agent(max_concurrent=3)
    agent.receive(assign("j1", 1), 0.0)
    agent.receive(assign("j2", 2), 0.0)
    agent.receive(assign("j3", 1), 0.0)
    agent.connection_lost(0.5, "the leader died")
    agent.job_completed("j1", 1, 100, SHA, 1.0, 1.0)
    agent.job_failed("j2", 2, "TransientError", "reset by peer", True, 1.1)
    agent.connected(2.0)
    (register_message,) = agent.receive(controller_hello("c2"), 2.0).send
    assert isinstance(register_message, Register)
    assert register_message.current_jobs == (
        JobAttempt("j1", 1), JobAttempt("j2", 2), JobAttempt("j3", 1)
    )
    step = agent.receive(accepted(), 2.1)
    assert step.send == (
        Completed("j1", 1, 100, SHA, 1.0), Failed("j2", 2, "TransientError", "reset by peer", True)
    )


def test_a_moved_attempt_whose_result_is_pending_is_not_resent() -> None:
    agent = active_agent()
    agent.receive(assign("j1", 1), 0.0)
    agent.connection_lost(0.5, "partition")
    agent.job_completed("j1", 1, 100, SHA, 1.0, 1.0)
    step = register(agent, 2.0, accepted(abort=(JobAttempt("j1", 1),)))
    assert step.send == ()
    assert agent.unacknowledged == {}


# -- redirects and reconnection ---------------------------------------------------------------


def test_a_redirect_is_followed_to_the_leader_at_once() -> None:
    agent = new_agent()
    agent.start(0.0)
    agent.connected(0.0)
    c4 = ControllerAddress("c4", "127.0.0.1:7004")
    step = agent.receive(Redirect("c4", c4.address, (C1, C2, C3, c4)), 0.2)
    assert kinds(step) == ["CloseConnection", "Reconnect"]
    assert step.actions[1] == Reconnect(c4, 0.2, "redirected to the leader c4")
    assert agent.directory.controllers == [C1, C2, C3, c4]


def test_the_end_of_a_connection_the_session_closed_asks_for_nothing_more() -> None:
    agent = active_agent()
    step = agent.receive(Redirect("c2", C2.address, QUORUM), 0.5)
    assert isinstance(step.actions[-1], Reconnect)
    assert agent.connection_lost(0.6, "eof") == Step()  # the runtime saw the close
    (reconnect,) = agent.connection_failed(0.7, "refused").actions  # c2 did not answer
    assert isinstance(reconnect, Reconnect) and reconnect.to == C3


def test_a_redirect_without_a_leader_tries_the_next_controller() -> None:
    agent = active_agent()
    step = agent.receive(Redirect(None, None, QUORUM), 0.5)
    reconnect = step.actions[-1]
    assert isinstance(reconnect, Reconnect) and reconnect.to == C2


def test_a_redirect_after_a_run_of_failures_is_followed_at_once() -> None:
    agent = new_agent(backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0))
    agent.start(0.0)
    now = 0.0
    for _ in range(7):  # a partition: every controller refuses, the backoff grows
        (reconnect,) = agent.connection_failed(now, "refused").actions
        assert isinstance(reconnect, Reconnect)
        now = reconnect.at
    assert now == 0.0 + 1.0 + 2.0 + 4.0 + 8.0 + 8.0
    agent.connected(now)  # healed: a follower answers and names the leader
    step = agent.receive(Redirect("c3", C3.address, QUORUM), now)
    assert step.actions[-1] == Reconnect(C3, now, "redirected to the leader c3")


def test_redirect_ping_pong_backs_off() -> None:
    agent = new_agent(backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0))
    agent.start(0.0)
    delays = []
    now = 0.0
    for hop in range(6):  # c1 and c2 each claim the other leads
        agent.connected(now)
        leader = C2 if hop % 2 == 0 else C1
        step = agent.receive(Redirect(leader.controller_id, leader.address, QUORUM), now)
        reconnect = step.actions[-1]
        assert isinstance(reconnect, Reconnect) and reconnect.to == leader
        delays.append(reconnect.at - now)
        now = reconnect.at
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0]


def test_failures_try_each_controller_then_back_off_exponentially() -> None:
    agent = new_agent(backoff=Backoff(initial=0.5, maximum=4.0, jitter=0.0))
    agent.start(0.0)
    targets, delays = [], []
    now = 0.0
    for _ in range(8):
        (reconnect,) = agent.connection_failed(now, "refused").actions
        assert isinstance(reconnect, Reconnect)
        targets.append(reconnect.to.controller_id)
        delays.append(reconnect.at - now)
        now = reconnect.at
    assert targets == ["c2", "c3", "c1", "c2", "c3", "c1", "c2", "c3"]
    assert delays == [0.0, 0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    register(agent, now)  # success resets the count
    (reconnect,) = agent.connection_lost(now, "reset").actions
    assert isinstance(reconnect, Reconnect) and reconnect.at == now


def test_backoff_jitter_is_bounded_and_replays_with_the_same_seed() -> None:
    backoff = Backoff(initial=1.0, maximum=10.0, jitter=0.5)
    first = [backoff.delay(n, random.Random(3)) for n in range(1, 8)]
    assert first == [backoff.delay(n, random.Random(3)) for n in range(1, 8)]
    for n, delay in enumerate(first, start=1):
        full = min(10.0, 2.0 ** (n - 1))
        assert full / 2 <= delay <= full
    with pytest.raises(ValueError, match="0 < initial <= maximum"):
        Backoff(initial=0.0)


def test_registered_teaches_the_agent_the_quorum() -> None:
    agent = AgentSession(
        Register("a", "h", "1", AgentCapabilities(("file",), 1)), [C1], Secret("t")
    )
    agent.start(0.0)
    register(agent, 0.0)
    assert agent.directory.controllers == [C1, C2, C3]
    (reconnect,) = agent.connection_lost(1.0, "reset").actions
    assert isinstance(reconnect, Reconnect) and reconnect.to == C2


# -- drain ------------------------------------------------------------------------------------------


def test_drain_refuses_new_work_then_deregisters_once_idle() -> None:
    agent = active_agent()
    agent.receive(assign("j1"), 0.0)
    step = agent.receive(Drain(30.0), 1.0)
    assert step.actions == (DrainRequested(31.0),)
    (refusal,) = agent.receive(assign("j2"), 1.1).send
    assert isinstance(refusal, Failed) and refusal.error_type == "AgentDraining"
    (heartbeat,) = agent.tick(1.2).send
    assert isinstance(heartbeat, Heartbeat)
    assert (heartbeat.status, heartbeat.available_capacity) == (AgentStatus.DRAINING, 0)
    agent.job_completed("j1", 1, 10, SHA, 1.0, 5.0)
    assert agent.phase is AgentPhase.ACTIVE  # the result is not acknowledged yet
    step = agent.receive(ResultAck("j1", 1, True), 5.1)
    assert step.send == (Deregister("agent-1", "drained: every transfer finished"),)
    assert kinds(step)[1:] == ["CloseConnection", "Shutdown"]
    assert agent.phase is AgentPhase.STOPPED
    assert agent.tick(100.0) == Step() and agent.next_deadline() is None


def test_drain_deadline_aborts_what_still_runs() -> None:
    agent = active_agent()
    agent.receive(assign("j1"), 0.0)
    agent.drain(0.5, timeout=2.0)  # SIGTERM
    assert agent.next_deadline() == 1.0  # heartbeat first
    agent.receive(HeartbeatAck(0), 0.6)
    agent.tick(1.0)
    agent.receive(HeartbeatAck(1), 1.0)
    step = agent.tick(2.5)
    assert step.actions[0] == AbortJob("j1", 1, "the drain deadline passed")
    failed = [m for m in step.send if isinstance(m, Failed)]
    assert [(f.job_id, f.error_type, f.retryable) for f in failed] == [("j1", "DrainTimeout", True)]
    assert isinstance(step.send[-1], Deregister)
    assert step.actions[-1] == Shutdown("the drain deadline passed")


def test_drain_while_disconnected_stops_at_the_deadline_without_sending() -> None:
    agent = active_agent()
    agent.receive(assign("j1"), 0.0)
    agent.connection_lost(0.1, "reset")
    agent.drain(0.2, timeout=1.0)
    assert agent.next_deadline() == 1.2
    step = agent.tick(1.2)
    assert step.send == ()
    assert kinds(step) == ["AbortJob", "Shutdown"]
    assert agent.connection_failed(1.3, "x") == Step()
