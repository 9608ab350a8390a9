"""ControllerState: every command's transition and every rejection, through ``apply`` with
encoded bytes exactly as consensus delivers them."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from quorus.core.controller import (
    AgentCapabilities,
    AgentLocation,
    AgentState,
    AgentStateChanged,
    Applied,
    AssignJob,
    AttemptOutcome,
    AttemptRef,
    CancelJob,
    Command,
    CompleteAttempt,
    ControllerState,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    FailAttempt,
    ForgetController,
    JobOptions,
    JobPlacement,
    JobStarted,
    JobState,
    LabelRequirement,
    MalformedCommandError,
    RecordController,
    RegisterAgent,
    RejectCode,
    Rejected,
    RetryPolicy,
    Site,
    SnapshotFormatError,
    SubmitJob,
)
from quorus.core.controller.commands import Batch
from quorus.core.controller.results import AbortOrder
from quorus.core.controller.state import ControllerEndpoints

SHA = "ab" * 32


class Log:
    """Applies commands to a state with increasing log indexes and checks the indexes."""

    def __init__(self) -> None:
        self.state = ControllerState()
        self.index = 0

    def __call__(self, command: Command) -> Any:
        self.index += 1
        result = self.state.apply(self.index, command.encode())
        self.state.check_indexes()
        return result

    def ok(self, command: Command) -> Applied:
        result = self(command)
        assert isinstance(result, Applied), result
        return result

    def rejected(self, command: Command, code: RejectCode) -> Rejected:
        before = self.state.snapshot()
        result = self(command)
        assert isinstance(result, Rejected), result
        assert result.code is code, result
        # A rejection changes nothing.
        after = ControllerState()
        after.restore(before, self.index)
        assert after.agents == self.state.agents and after.jobs == self.state.jobs
        return result


def register(agent_id: str, *protocols: str, slots: int = 2, at: float = 1.0,
             **kw: Any) -> RegisterAgent:
    return RegisterAgent(agent_id, at, hostname=f"{agent_id}.example",
                         capabilities=AgentCapabilities(protocols or ("file",), slots), **kw)


def submit(job_id: str, source: str = "/data/in", destination: str = "/data/out",
           at: float = 2.0, **kw: Any) -> SubmitJob:
    return SubmitJob.new(source, destination, job_id=job_id, at=at, **kw)


@pytest.fixture
def log() -> Log:
    return Log()


# --- agents -----------------------------------------------------------------------------------


def test_register_creates_an_active_agent_with_defaults(log: Log) -> None:
    result = log.ok(register("a1", "file", "sftp", location=AgentLocation("dc1", "z1", "eu")))
    agent = log.state.agents["a1"]
    assert result.agents == (agent,)
    assert agent.state is AgentState.ACTIVE
    assert agent.tenant == agent.namespace == "default"
    assert agent.registered_at == 1.0 and agent.registrations == 1
    assert agent.location.site == Site("eu", "dc1", "z1")


def test_reregistration_keeps_held_attempts_and_aborts_moved_ones(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(register("a2"))
    log.ok(submit("j1"))
    log.ok(submit("j2"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(AssignJob("j2", "a1", 1, 3.0))
    # a1 is lost; j1 and j2 move; j1 goes to a2 as attempt 2.
    log.ok(ExpireAgent("a1", 10.0))
    log.ok(AssignJob("j1", "a2", 2, 11.0))
    log.ok(submit("j3"))
    log.ok(RegisterAgent("a1", 12.0, capabilities=AgentCapabilities(("file",), 2)))
    log.ok(AssignJob("j3", "a1", 1, 13.0))
    # a1 comes back again (a partition healed) still holding j1 attempt 1 and j3 attempt 1.
    result = log.ok(RegisterAgent(
        "a1", 14.0, capabilities=AgentCapabilities(("file",), 2),
        holding=(AttemptRef("j1", 1), AttemptRef("j3", 1), AttemptRef("ghost", 4)),
    ))
    assert result.abort == (AbortOrder("a1", "ghost", 4), AbortOrder("a1", "j1", 1))
    assert log.state.jobs["j3"].state is JobState.ASSIGNED  # still its own
    assert log.state.jobs["j1"].agent_id == "a2"
    agent = log.state.agents["a1"]
    assert agent.state is AgentState.WORKING and agent.registrations == 3
    assert agent.registered_at == 1.0 and agent.updated_at == 14.0


def test_reregistration_without_an_assigned_job_requeues_it(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    result = log.ok(register("a1", at=5.0))  # restarted: holds nothing
    job = log.state.jobs["j1"]
    assert job.state is JobState.QUEUED and job.attempt == 2 and job.agent_id is None
    assert job.attempts[-1].outcome is AttemptOutcome.ABORTED
    assert result.jobs == (job,)
    assert log.state.agents["a1"].state is AgentState.ACTIVE


def test_state_changes(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(AgentStateChanged("a1", AgentState.UNHEALTHY, 2.0, "disk full"))
    assert log.state.agents["a1"].state is AgentState.UNHEALTHY
    assert log.state.agents["a1"].state_reason == "disk full"
    assert log.ok(AgentStateChanged("a1", AgentState.UNHEALTHY, 2.5)).duplicate
    log.ok(AgentStateChanged("a1", AgentState.ACTIVE, 3.0))
    assert log.state.agents["a1"].state is AgentState.ACTIVE
    # "working" without jobs is recorded as idle: the state knows the agent holds nothing.
    log.ok(AgentStateChanged("a1", AgentState.WORKING, 4.0))
    assert log.state.agents["a1"].state is AgentState.IDLE
    for target in (AgentState.DRAINING, AgentState.DEREGISTERED, AgentState.REGISTERING):
        log.rejected(AgentStateChanged("a1", target, 5.0), RejectCode.INVALID_TRANSITION)
    log.rejected(AgentStateChanged("nobody", AgentState.ACTIVE, 5.0), RejectCode.UNKNOWN_AGENT)


def test_unhealthy_agent_keeps_its_jobs_but_gets_no_new_ones(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(submit("j2"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(AgentStateChanged("a1", AgentState.UNHEALTHY, 4.0))
    assert log.state.jobs["j1"].state is JobState.ASSIGNED
    log.rejected(AssignJob("j2", "a1", 1, 5.0), RejectCode.AGENT_UNAVAILABLE)
    log.ok(AgentStateChanged("a1", AgentState.ACTIVE, 6.0))
    assert log.state.agents["a1"].state is AgentState.WORKING


def test_working_and_idle_follow_the_jobs(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    assert log.state.agents["a1"].state is AgentState.WORKING
    log.ok(CompleteAttempt("j1", "a1", 1, 4.0, 10, SHA))
    assert log.state.agents["a1"].state is AgentState.IDLE


def test_drain_waits_for_jobs_then_deregisters(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(submit("j2"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(DrainAgent("a1", 4.0, deadline=34.0))
    agent = log.state.agents["a1"]
    assert agent.state is AgentState.DRAINING and agent.drain_deadline == 34.0
    assert log.ok(DrainAgent("a1", 5.0, deadline=99.0)).duplicate
    assert log.state.agents["a1"].drain_deadline == 34.0
    log.rejected(AssignJob("j2", "a1", 1, 5.0), RejectCode.AGENT_UNAVAILABLE)
    log.ok(JobStarted("j1", "a1", 1, 6.0))
    result = log.ok(CompleteAttempt("j1", "a1", 1, 7.0, 5, SHA))
    assert log.state.agents["a1"].state is AgentState.DEREGISTERED
    assert log.state.agents["a1"].state_reason == "drained"
    assert [a.id for a in result.agents] == ["a1"]
    log.rejected(DrainAgent("a1", 8.0, 9.0), RejectCode.INVALID_TRANSITION)
    log.rejected(DrainAgent("nobody", 8.0, 9.0), RejectCode.UNKNOWN_AGENT)


def test_drain_of_an_empty_agent_deregisters_at_once(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(DrainAgent("a1", 2.0, 32.0))
    assert log.state.agents["a1"].state is AgentState.DEREGISTERED


def test_draining_agent_that_restarts_stays_draining(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(DrainAgent("a1", 4.0, 34.0))
    log.ok(register("a1", at=5.0, holding=(AttemptRef("j1", 1),)))
    assert log.state.agents["a1"].state is AgentState.DRAINING
    # Restarted without the job: the job moves and the empty agent is deregistered.
    log.ok(register("a1", at=6.0))
    assert log.state.agents["a1"].state is AgentState.DEREGISTERED
    assert log.state.jobs["j1"].state is JobState.QUEUED


def test_deregister_requeues_jobs_and_tells_the_agent_to_abort(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    result = log.ok(DeregisterAgent("a1", 4.0, "drain deadline passed"))
    assert result.abort == (AbortOrder("a1", "j1", 1),)
    assert log.state.jobs["j1"].state is JobState.QUEUED
    assert log.state.jobs["j1"].attempt == 2
    assert log.state.agents["a1"].state is AgentState.DEREGISTERED
    assert log.ok(DeregisterAgent("a1", 5.0)).duplicate
    log.rejected(DeregisterAgent("nobody", 5.0), RejectCode.UNKNOWN_AGENT)
    # A deregistered agent registers afresh.
    log.ok(register("a1", at=6.0))
    assert log.state.agents["a1"].state is AgentState.ACTIVE
    assert log.state.agents["a1"].state_reason == "registered"


def test_expired_agent_jobs_go_back_with_the_next_attempt(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(submit("j2", retry=RetryPolicy(max_attempts=1)))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(AssignJob("j2", "a1", 1, 3.0))
    log.ok(JobStarted("j1", "a1", 1, 4.0))
    result = log.ok(ExpireAgent("a1", 100.0, last_heartbeat=10.0))
    j1, j2 = log.state.jobs["j1"], log.state.jobs["j2"]
    assert (j1.state, j1.attempt, j1.agent_id) == (JobState.QUEUED, 2, None)
    assert j1.attempts[0].outcome is AttemptOutcome.LOST and j1.attempts[0].finished_at == 100.0
    # j2 had one attempt allowed: the retry policy is spent.
    assert j2.state is JobState.FAILED and "gave up after 1 of 1 attempts" in (j2.error or "")
    assert result.jobs == (j1, j2)
    assert set(result.abort) == {AbortOrder("a1", "j1", 1), AbortOrder("a1", "j2", 1)}
    assert log.state.agents["a1"].state is AgentState.UNHEALTHY
    assert log.ok(ExpireAgent("a1", 101.0)).duplicate
    log.rejected(ExpireAgent("nobody", 1.0), RejectCode.UNKNOWN_AGENT)


def test_expired_draining_agent_is_deregistered(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(DrainAgent("a1", 4.0, 34.0))
    log.ok(ExpireAgent("a1", 20.0))
    assert log.state.agents["a1"].state is AgentState.DEREGISTERED
    log.rejected(ExpireAgent("a1", 21.0), RejectCode.INVALID_TRANSITION)


# --- jobs -------------------------------------------------------------------------------------


def test_submit_queues_in_priority_then_submission_order(log: Log) -> None:
    log.ok(submit("low", priority=-1))
    log.ok(submit("first"))
    log.ok(submit("urgent", priority=10))
    log.ok(submit("second"))
    assert [j.id for j in log.state.queued()] == ["urgent", "first", "second", "low"]
    job = log.state.jobs["first"]
    assert job.state is JobState.QUEUED and job.attempt == 1 and job.sequence == 2
    assert job.tenant == job.namespace == "default"


def test_submit_is_idempotent_for_the_same_job_and_rejects_a_different_one(log: Log) -> None:
    log.ok(submit("j1"))
    again = log.ok(submit("j1", at=9.0))
    assert again.duplicate and again.jobs == (log.state.jobs["j1"],)
    assert len(log.state.jobs) == 1
    log.rejected(submit("j1", destination="/elsewhere"), RejectCode.DUPLICATE_JOB)


def test_real_uri_is_kept_and_redacted_form_shown() -> None:
    log = Log()
    log.ok(submit("j1", source="sftp://alice:s3cret@files.example/a.bin"))
    job = log.state.jobs["j1"]
    assert job.source == "sftp://alice:s3cret@files.example/a.bin"
    assert "s3cret" not in job.source_display
    assert "s3cret" not in str(job.as_json())
    assert job.as_json()["source_display"] == "sftp://alice:***@files.example/a.bin"


def test_assign_checks_everything(log: Log) -> None:
    log.ok(register("a1", "file", slots=1))
    log.ok(register("ftp-only", "ftp"))
    log.ok(register("labelled", "file", labels={"tier": "gold"},
                    location=AgentLocation("dc2", "z2", "eu")))
    log.ok(submit("j1"))
    log.ok(submit("j2"))
    log.ok(submit("gold", placement=JobPlacement(
        affinity=(LabelRequirement.parse("tier=gold"),))))
    log.ok(submit("not-dc2", placement=JobPlacement(required_site=Site(datacenter="dc1"))))
    log.rejected(AssignJob("nope", "a1", 1, 3.0), RejectCode.UNKNOWN_JOB)
    log.rejected(AssignJob("j1", "nobody", 1, 3.0), RejectCode.UNKNOWN_AGENT)
    log.rejected(AssignJob("j1", "a1", 2, 3.0), RejectCode.WRONG_ATTEMPT)
    log.rejected(AssignJob("j1", "ftp-only", 1, 3.0), RejectCode.UNSUPPORTED_PROTOCOL)
    log.rejected(AssignJob("gold", "a1", 1, 3.0), RejectCode.PLACEMENT_MISMATCH)
    log.rejected(AssignJob("not-dc2", "labelled", 1, 3.0), RejectCode.PLACEMENT_MISMATCH)
    result = log.ok(AssignJob("j1", "a1", 1, 3.0))
    job = log.state.jobs["j1"]
    assert (job.state, job.agent_id, job.attempt) == (JobState.ASSIGNED, "a1", 1)
    assert job.attempts[0].assigned_at == 3.0 and job.attempts[0].outcome is None
    assert result.jobs == (job,) and result.agents == (log.state.agents["a1"],)
    log.rejected(AssignJob("j1", "labelled", 1, 3.0), RejectCode.JOB_NOT_QUEUED)
    log.rejected(AssignJob("j2", "a1", 1, 3.0), RejectCode.AGENT_FULL)
    log.ok(AssignJob("gold", "labelled", 1, 3.0))


def test_started_then_completed(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1", options=JobOptions(checksum=f"sha256:{SHA}", expected_size=7)))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(JobStarted("j1", "a1", 1, 4.0))
    assert log.ok(JobStarted("j1", "a1", 1, 4.5)).duplicate
    job = log.state.jobs["j1"]
    assert job.state is JobState.RUNNING and job.started_at == 4.0
    log.ok(CompleteAttempt("j1", "a1", 1, 5.0, 7, SHA))
    job = log.state.jobs["j1"]
    assert (job.state, job.sha256, job.bytes_transferred, job.finished_at) == (
        JobState.COMPLETED, SHA, 7, 5.0)
    assert job.agent_id is None and job.attempts[0].outcome is AttemptOutcome.COMPLETED
    # The same report resent is a duplicate, not an error; another agent's is stale.
    assert log.ok(CompleteAttempt("j1", "a1", 1, 6.0, 7, SHA)).duplicate
    log.rejected(CompleteAttempt("j1", "a2", 1, 6.0, 7, SHA), RejectCode.STALE_ATTEMPT)
    log.rejected(AssignJob("j1", "a1", 1, 7.0), RejectCode.JOB_FINISHED)
    log.rejected(CancelJob("j1", 8.0), RejectCode.JOB_FINISHED)


def test_late_completion_of_a_moved_attempt_is_rejected(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(register("a2"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(ExpireAgent("a1", 10.0))
    log.ok(AssignJob("j1", "a2", 2, 11.0))
    late = log.rejected(CompleteAttempt("j1", "a1", 1, 12.0, 7, SHA), RejectCode.STALE_ATTEMPT)
    assert "stale attempt" in late.message and "attempt 2 on a2" in late.message
    log.rejected(JobStarted("j1", "a1", 1, 12.0), RejectCode.STALE_ATTEMPT)
    log.rejected(FailAttempt("j1", "a1", 1, 12.0, "late"), RejectCode.STALE_ATTEMPT)
    log.ok(CompleteAttempt("j1", "a2", 2, 13.0, 7, SHA))
    assert log.state.jobs["j1"].state is JobState.COMPLETED
    log.rejected(CompleteAttempt("nope", "a2", 1, 13.0, 7, SHA), RejectCode.UNKNOWN_JOB)


def test_checksum_or_size_mismatch_counts_as_a_failed_attempt(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1", options=JobOptions(checksum=f"sha256:{SHA}")))
    log.ok(submit("j2", options=JobOptions(expected_size=100)))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(AssignJob("j2", "a1", 1, 3.0))
    result = log.ok(CompleteAttempt("j1", "a1", 1, 4.0, 7, "cd" * 32))
    assert result.message.startswith("checksum mismatch")
    assert log.state.jobs["j1"].state is JobState.QUEUED and log.state.jobs["j1"].attempt == 2
    result = log.ok(CompleteAttempt("j2", "a1", 1, 4.0, 99, SHA))
    assert result.message.startswith("size mismatch")


def test_failures_retry_until_the_policy_is_spent(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1", retry=RetryPolicy(max_attempts=2)))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(FailAttempt("j1", "a1", 1, 4.0, "connection reset", retryable=True))
    job = log.state.jobs["j1"]
    assert (job.state, job.attempt) == (JobState.QUEUED, 2)
    assert log.ok(FailAttempt("j1", "a1", 1, 4.5, "connection reset")).duplicate
    log.ok(AssignJob("j1", "a1", 2, 5.0))
    log.ok(FailAttempt("j1", "a1", 2, 6.0, "connection reset"))
    job = log.state.jobs["j1"]
    assert job.state is JobState.FAILED
    assert job.error == "connection reset; gave up after 2 of 2 attempts"
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.FAILED] * 2
    assert log.state.agents["a1"].state is AgentState.IDLE


def test_non_retryable_failure_fails_at_once(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("j1"))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    log.ok(FailAttempt("j1", "a1", 1, 4.0, "permission denied", retryable=False))
    job = log.state.jobs["j1"]
    assert (job.state, job.error, job.attempt) == (JobState.FAILED, "permission denied", 1)


def test_cancel(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(submit("queued"))
    log.ok(submit("running"))
    log.ok(AssignJob("running", "a1", 1, 3.0))
    assert log.ok(CancelJob("queued", 4.0)).abort == ()
    result = log.ok(CancelJob("running", 4.0, "no longer needed"))
    assert result.abort == (AbortOrder("a1", "running", 1),)
    job = log.state.jobs["running"]
    assert job.state is JobState.CANCELLED and job.error == "no longer needed"
    assert job.attempts[0].outcome is AttemptOutcome.CANCELLED
    assert log.state.queue_length == 0 and log.state.load("a1") == 0
    assert log.ok(CancelJob("running", 5.0)).duplicate
    # A cancelled job is never assigned; its old attempt's report is stale.
    log.rejected(AssignJob("queued", "a1", 1, 6.0), RejectCode.JOB_FINISHED)
    log.rejected(CompleteAttempt("running", "a1", 1, 6.0, 1, SHA), RejectCode.STALE_ATTEMPT)
    log.rejected(CancelJob("nope", 6.0), RejectCode.UNKNOWN_JOB)


def test_indexes_answer_by_state_and_agent(log: Log) -> None:
    log.ok(register("a1", slots=5))
    for i in range(5):
        log.ok(submit(f"j{i}"))
    log.ok(AssignJob("j3", "a1", 1, 3.0))
    log.ok(AssignJob("j1", "a1", 1, 3.0))
    assert [j.id for j in log.state.jobs_on_agent("a1")] == ["j1", "j3"]
    assert [j.id for j in log.state.jobs_in_state(JobState.QUEUED)] == ["j0", "j2", "j4"]
    assert log.state.count(JobState.ASSIGNED) == 2 and log.state.load("a1") == 2


def test_undecodable_bytes_raise_and_change_nothing(log: Log) -> None:
    log.ok(register("a1"))
    before = log.state.snapshot()
    with pytest.raises(MalformedCommandError, match="not valid msgpack"):
        log.state.apply(2, b"\xc1")
    with pytest.raises(MalformedCommandError, match="unknown command 'launch-missiles'"):
        log.state.apply(3, b"\x92\xaflaunch-missiles\x80")
    assert log.state.agents == ControllerState().agents | {"a1": log.state.agents["a1"]}
    restored = ControllerState()
    restored.restore(before, 1)
    assert restored.agents == log.state.agents


def test_controllers_added_while_serving_are_recorded_and_forgotten(log: Log) -> None:
    first = log.ok(RecordController("c4", "10.0.0.4:7070", "10.0.0.4:7080"))
    assert first.message == "controller c4 recorded" and not first.duplicate
    assert log.state.controllers == {"c4": ControllerEndpoints("10.0.0.4:7070", "10.0.0.4:7080")}
    assert log.ok(RecordController("c4", "10.0.0.4:7070", "10.0.0.4:7080")).duplicate
    # Recorded again: replaced as a whole (an address not given is not kept).
    log.ok(RecordController("c4", http="10.0.0.9:7080"))
    log.ok(RecordController("c5", agents="10.0.0.5:7070"))
    assert log.state.controllers == {"c4": ControllerEndpoints("", "10.0.0.9:7080"),
                                     "c5": ControllerEndpoints("10.0.0.5:7070", "")}
    # Inside a batch, as the group commit proposes it.
    batch = log.ok(Batch((ForgetController("c5"), RecordController("c6", "h:1", "h:2"))))
    assert [r.message for r in batch.value] == ["controller c5 forgotten",
                                                "controller c6 recorded"]
    assert sorted(log.state.controllers) == ["c4", "c6"]
    assert log.ok(ForgetController("c5")).duplicate  # nothing left to forget
    assert not log.state.agents and not log.state.jobs


def test_recorded_controllers_are_deterministic_and_in_the_snapshot(log: Log) -> None:
    commands: list[Command] = [RecordController("c5", "h5:1", "h5:2"),
                               RecordController("c4", "h4:1"), ForgetController("c5"),
                               RecordController("c7", http="h7:2"), register("a1")]
    other = Log()
    for command in commands:
        log.ok(command)
        other.ok(command)
    assert log.state.snapshot() == other.state.snapshot()
    restored = ControllerState()
    restored.restore(log.state.snapshot(), log.index)
    assert restored.controllers == log.state.controllers == {
        "c4": ControllerEndpoints("h4:1", ""), "c7": ControllerEndpoints("", "h7:2")}
    assert restored.snapshot() == log.state.snapshot()
    # A restore replaces the records too.
    restored.restore(ControllerState().snapshot(), 1)
    assert not restored.controllers


def test_a_snapshot_written_before_controllers_were_recorded_restores(log: Log) -> None:
    log.ok(register("a1"))
    log.ok(RecordController("c4", "h4:1", "h4:2"))
    plain = msgpack.unpackb(log.state.snapshot(), raw=False)
    del plain["controllers"]
    older = msgpack.packb(plain, use_bin_type=True)
    restored = ControllerState()
    restored.restore(older, 7)
    assert not restored.controllers and "a1" in restored.agents
    assert restored.applied_index == 7


@pytest.mark.parametrize("section", [["c4"], {"c4": "h:1"}, {"c4": ["h:1"]}, {"c4": [1, 2]}])
def test_a_malformed_controllers_section_is_refused(log: Log, section: Any) -> None:
    log.ok(register("a1"))
    plain = msgpack.unpackb(log.state.snapshot(), raw=False)
    plain["controllers"] = section
    with pytest.raises(SnapshotFormatError, match="controllers"):
        log.state.restore(msgpack.packb(plain, use_bin_type=True), 9)
    assert "a1" in log.state.agents  # the state is kept
