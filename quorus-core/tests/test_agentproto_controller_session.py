"""The controller's side of one agent connection, driven with plain messages and times:
hello and authentication, registration answered by the runtime, heartbeat numbering,
reports turned into actions, and commands only once registered."""

from __future__ import annotations

import pytest
from quorus.core.agentproto import (
    Abort,
    AgentCapabilities,
    AgentDeregistering,
    AgentDisconnected,
    AgentStatus,
    Assign,
    AttemptCompleted,
    AttemptFailed,
    AuthenticationRefused,
    CloseConnection,
    Completed,
    ControllerAddress,
    ControllerPhase,
    ControllerSession,
    Deregister,
    Drain,
    Error,
    ErrorCode,
    Failed,
    Heartbeat,
    HeartbeatAck,
    HeartbeatReceived,
    JobAttempt,
    Progress,
    ProgressReported,
    ProtocolError,
    Redirect,
    Register,
    Registered,
    RegistrationRequested,
    ResultAck,
    SessionStateError,
    Step,
    VersionMismatch,
)
from quorus.core.wire import Hello

C1 = ControllerAddress("c1", "127.0.0.1:7001")
C2 = ControllerAddress("c2", "127.0.0.1:7002")
SHA = "0f" * 32
REGISTER = Register("agent-1", "host-1", "0.1.0", AgentCapabilities(("file",), 4),
                    current_jobs=(JobAttempt("j9", 2),))


def agent_hello(token: str = "good", versions: tuple[int, ...] = (1,), node: str = "agent-1") -> Hello:
    return Hello("quorus-agent", versions, node, "token", {"token": token})


def check_token(hello: Hello) -> bool:
    return hello.auth_method == "token" and hello.credentials.get("token") == "good"


def new_session(now: float = 0.0) -> ControllerSession:
    return ControllerSession("c1", check_token, now=now)


def active_session() -> ControllerSession:
    session = new_session()
    session.receive(agent_hello(), 0.0)
    session.receive(REGISTER, 0.0)
    session.accept(heartbeat_interval=1.0, progress_interval=2.0, controllers=[C1, C2])
    return session


def heartbeat(sequence: int, agent: str = "agent-1") -> Heartbeat:
    return Heartbeat(agent, 1.0, sequence, AgentStatus.ACTIVE, (), 4)


def test_hello_is_answered_with_the_controllers_hello() -> None:
    session = new_session()
    step = session.receive(agent_hello(), 0.1)
    assert step == Step(send=(Hello("quorus-agent", (1,), "c1"),))
    assert (session.phase, session.agent_id, session.version) == (
        ControllerPhase.AWAITING_REGISTER, "agent-1", 1
    )


def test_a_wrong_token_is_refused_without_echoing_it() -> None:
    session = new_session()
    with pytest.raises(AuthenticationRefused) as caught:
        session.receive(agent_hello(token="guess-1234"), 0.1)
    assert caught.value.reply.code is ErrorCode.UNAUTHORIZED
    assert "guess-1234" not in str(caught.value)
    assert "agent-1" in str(caught.value)


@pytest.mark.parametrize(
    "hello", [agent_hello(versions=(2,)), Hello("quorus-raft", (1,), "agent-1", "token",
                                                 {"token": "good"})]
)
def test_no_common_version_is_refused(hello: Hello) -> None:
    with pytest.raises(VersionMismatch, match=r"no version in common|expects 'quorus-agent'"):
        new_session().receive(hello, 0.0)


@pytest.mark.parametrize("first", [REGISTER, heartbeat(1), Completed("j", 1, 1, SHA, 1.0)])
def test_the_first_message_must_be_the_hello(first: object) -> None:
    with pytest.raises(ProtocolError, match="expected a hello as the first message"):
        new_session().receive(first, 0.0)  # type: ignore[arg-type]


def test_register_must_follow_the_hello_and_name_the_same_agent() -> None:
    session = new_session()
    session.receive(agent_hello(), 0.0)
    with pytest.raises(ProtocolError, match="expected register after the hello, got heartbeat"):
        session.receive(heartbeat(1), 0.0)
    session = new_session()
    session.receive(agent_hello(node="agent-2"), 0.0)
    with pytest.raises(ProtocolError, match="register names agent 'agent-1', the hello 'agent-2'"):
        session.receive(REGISTER, 0.0)


def test_registration_is_reported_and_answered_by_the_runtime() -> None:
    session = new_session()
    session.receive(agent_hello(), 0.0)
    step = session.receive(REGISTER, 0.5)
    assert step.actions == (RegistrationRequested(REGISTER, 1, 0.5),)
    with pytest.raises(ProtocolError, match="before the registration was answered"):
        session.receive(heartbeat(1), 0.6)
    with pytest.raises(SessionStateError, match="cannot assign a job while"):
        session.assign(Assign("j1", 1, "/a", "/b"))
    step = session.accept(
        heartbeat_interval=1.0, progress_interval=2.0, controllers=[C1, C2],
        abort=[JobAttempt("j9", 2)],
    )
    assert step.send == (Registered(True, 1.0, 2.0, (JobAttempt("j9", 2),), (C1, C2)),)
    assert session.active
    with pytest.raises(SessionStateError):
        session.accept(heartbeat_interval=1.0, progress_interval=2.0, controllers=[])


def test_a_rejected_registration_closes() -> None:
    session = new_session()
    session.receive(agent_hello(), 0.0)
    session.receive(REGISTER, 0.0)
    step = session.reject("agent id in use by a connected agent")
    assert step.send == (Registered(False, 0.0, 0.0, (), (), "agent id in use by a connected agent"),)
    assert isinstance(step.actions[0], CloseConnection)
    assert session.phase is ControllerPhase.CLOSED


def test_a_follower_redirects_at_any_point_before_close() -> None:
    session = new_session()
    session.receive(agent_hello(), 0.0)
    session.receive(REGISTER, 0.0)
    step = session.redirect(C2, [C1, C2])
    assert step.send == (Redirect("c2", C2.address, (C1, C2)),)
    assert step.actions == (CloseConnection("not the leader"),)
    assert session.redirect(C2, [C1, C2]) == Step()
    assert active_session().redirect(None, [C1]).send == (Redirect(None, None, (C1,)),)


def test_heartbeats_are_acknowledged_and_must_rise() -> None:
    session = active_session()
    step = session.receive(heartbeat(1), 1.0)
    assert step.send == (HeartbeatAck(1),)
    assert step.actions == (HeartbeatReceived("agent-1", heartbeat(1), 1.0),)
    session.receive(heartbeat(5), 2.0)  # gaps are allowed: heartbeats skipped while away
    with pytest.raises(ProtocolError, match="heartbeat 5 after heartbeat 5"):
        session.receive(heartbeat(5), 3.0)
    with pytest.raises(ProtocolError, match="heartbeat from 'other'"):
        active_session().receive(heartbeat(1, agent="other"), 1.0)


def test_reports_become_actions_and_results_are_acknowledged_once_recorded() -> None:
    session = active_session()
    progress = Progress("j1", 1, 10, 100, 5.0)
    assert session.receive(progress, 1.0).actions == (ProgressReported("agent-1", progress, 1.0),)
    completed = Completed("j1", 1, 100, SHA, 2.0)
    step = session.receive(completed, 2.0)
    assert step == Step(actions=(AttemptCompleted("agent-1", completed, 2.0),))
    failed = Failed("j2", 3, "NotFoundError", "no such file", False)
    assert session.receive(failed, 2.1).actions == (AttemptFailed("agent-1", failed, 2.1),)
    assert session.result_recorded("j1", 1, True).send == (ResultAck("j1", 1, True),)
    assert session.result_recorded("j2", 3, False, "stale attempt").send == (
        ResultAck("j2", 3, False, "stale attempt"),
    )


@pytest.mark.parametrize(
    "message",
    [Assign("j1", 1, "/a", "/b"), Abort("j1", 1, "x"), Drain(1.0), HeartbeatAck(1),
     Registered(True, 1.0, 1.0, (), ()), REGISTER, Hello("quorus-agent", (1,), "agent-1")],
)
def test_messages_an_agent_never_sends_are_protocol_errors(message: object) -> None:
    with pytest.raises(ProtocolError):
        active_session().receive(message, 1.0)  # type: ignore[arg-type]


def test_commands_to_a_registered_agent() -> None:
    session = active_session()
    job = Assign("j1", 1, "file:///a", "file:///b")
    assert session.assign(job).send == (job,)
    assert session.abort("j1", 1, "cancelled").send == (Abort("j1", 1, "cancelled"),)
    assert session.drain(30.0).send == (Drain(30.0),)


def test_deregister_closes_the_session() -> None:
    session = active_session()
    step = session.receive(Deregister("agent-1", "drained"), 5.0)
    assert step.actions == (
        AgentDeregistering("agent-1", "drained", 5.0), CloseConnection("the agent deregistered")
    )
    with pytest.raises(ProtocolError, match="closed session"):
        session.receive(heartbeat(9), 5.1)
    assert session.result_recorded("j1", 1, True) == Step()
    assert session.connection_lost(5.2, "eof") == Step()


def test_losing_a_registered_agent_is_reported_once() -> None:
    session = active_session()
    assert session.connection_lost(3.0, "reset").actions == (
        AgentDisconnected("agent-1", "reset", 3.0),
    )
    assert session.connection_lost(3.1, "reset") == Step()
    unregistered = new_session()
    unregistered.receive(agent_hello(), 0.0)
    assert unregistered.connection_lost(1.0, "eof") == Step()


def test_ending_a_registered_session_tells_the_agent_why_and_reports_it_gone() -> None:
    session = active_session()
    step = session.end(ErrorCode.UNAUTHORIZED, "token qrs_… was revoked", 4.0)
    assert step == Step(
        send=(Error(ErrorCode.UNAUTHORIZED, "token qrs_… was revoked"),),
        actions=(AgentDisconnected("agent-1", "token qrs_… was revoked", 4.0),
                 CloseConnection("token qrs_… was revoked")),
    )
    assert session.phase is ControllerPhase.CLOSED and not session.active
    assert session.end(ErrorCode.UNAUTHORIZED, "again", 5.0) == Step()
    assert session.connection_lost(5.0, "closed") == Step()  # reported once
    unregistered = new_session()
    unregistered.receive(agent_hello(), 0.0)
    assert unregistered.end(ErrorCode.UNAUTHORIZED, "no", 1.0).actions == (
        CloseConnection("no"),)


def test_an_error_from_the_agent_closes() -> None:
    session = active_session()
    step = session.receive(Error(ErrorCode.PROTOCOL, "unexpected assign"), 4.0)
    assert isinstance(step.actions[0], AgentDisconnected)
    assert isinstance(step.actions[1], CloseConnection)


def test_the_handshake_must_finish_in_time() -> None:
    session = ControllerSession("c1", check_token, now=10.0, handshake_timeout=5.0)
    assert session.next_deadline() == 15.0
    assert session.tick(14.9) == Step()
    session.receive(agent_hello(), 11.0)
    step = session.tick(15.0)
    (error,) = step.send
    assert isinstance(error, Error) and error.code is ErrorCode.TIMEOUT
    assert session.phase is ControllerPhase.CLOSED
    registered = active_session()
    assert registered.next_deadline() is None and registered.tick(1e9) == Step()
