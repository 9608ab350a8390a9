"""Property tests of the controller state machine: random command sequences (many of them
rejected, as in real life with late reports and races) applied twice give the same results;
a snapshot taken anywhere restores into a state that answers every further command the same;
the indexes always agree with the records; every command survives encode/decode."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.core.controller import (
    AgentCapabilities,
    AgentLocation,
    AgentState,
    AgentStateChanged,
    AssignJob,
    AttemptRef,
    CancelJob,
    Command,
    CompleteAttempt,
    ControllerState,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    FailAttempt,
    JobOptions,
    JobPlacement,
    JobStarted,
    LabelRequirement,
    RegisterAgent,
    RetryPolicy,
    Site,
    SubmitJob,
    decode,
)
from quorus.core.controller.scheduler import schedule

AGENTS = ["a0", "a1", "a2", "a3"]
JOBS = [f"j{i}" for i in range(8)]
SCHEMES = ["file", "sftp", "smb"]

agent_ids = st.sampled_from(AGENTS)
job_ids = st.sampled_from(JOBS)
attempts = st.integers(1, 4)
times = st.integers(0, 1000).map(float)


@st.composite
def registrations(draw: st.DrawFn) -> RegisterAgent:
    return RegisterAgent(
        draw(agent_ids),
        draw(times),
        capabilities=AgentCapabilities(
            tuple(draw(st.lists(st.sampled_from(SCHEMES), min_size=1, max_size=3, unique=True))),
            draw(st.integers(1, 3)),
        ),
        location=AgentLocation(zone=draw(st.sampled_from([None, "z1", "z2"]))),
        labels=draw(st.sampled_from([{}, {"gpu": "true"}, {"tier": "gold"}])),
        holding=tuple(draw(st.lists(st.builds(AttemptRef, job_ids, attempts), max_size=2))),
    )


@st.composite
def submissions(draw: st.DrawFn) -> SubmitJob:
    source = draw(st.sampled_from(["/in/a", "sftp://h/a", "smb://h/share/a"]))
    destination = draw(st.sampled_from(["/out/a", "sftp://h/b", "smb://h/share/b"]))
    return SubmitJob.new(
        source, destination, job_id=draw(job_ids), at=draw(times),
        priority=draw(st.integers(-2, 2)),
        retry=RetryPolicy(draw(st.integers(1, 3))),
        options=JobOptions(checksum=draw(st.sampled_from([None, "sha256:" + "ab" * 32]))),
        placement=draw(st.sampled_from([
            JobPlacement(),
            JobPlacement(affinity=(LabelRequirement.parse("gpu=true"),)),
            JobPlacement(anti_affinity=(LabelRequirement.parse("tier"),)),
            JobPlacement(required_site=Site(zone="z1")),
        ])),
    )


commands: st.SearchStrategy[Command] = st.one_of(
    registrations(),
    submissions(),
    st.builds(AssignJob, job_ids, agent_ids, attempts, times),
    st.builds(AssignJob, job_ids, agent_ids, attempts, times),  # weighted: assignments matter
    st.builds(JobStarted, job_ids, agent_ids, attempts, times),
    st.builds(CompleteAttempt, job_ids, agent_ids, attempts, times, st.integers(0, 100),
              st.sampled_from(["ab" * 32, "cd" * 32])),
    st.builds(FailAttempt, job_ids, agent_ids, attempts, times, st.just("boom"), st.booleans()),
    st.builds(CancelJob, job_ids, times),
    st.builds(AgentStateChanged, agent_ids,
              st.sampled_from([AgentState.ACTIVE, AgentState.UNHEALTHY, AgentState.IDLE]), times),
    st.builds(DrainAgent, agent_ids, times, times),
    st.builds(DeregisterAgent, agent_ids, times),
    st.builds(ExpireAgent, agent_ids, times),
)


def apply_all(state: ControllerState, cmds: list[Command], first_index: int = 1) -> list[Any]:
    results = []
    for offset, command in enumerate(cmds):
        results.append(state.apply(first_index + offset, command.encode()))
        state.check_indexes()
    return results


def scheduled(state: ControllerState) -> list[Command]:
    """The scheduler's plan as commands, so sequences also contain sensible assignments."""
    return [a.command(500.0) for a in schedule(state).assignments]


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=60))
def test_the_same_log_gives_the_same_results_and_state(cmds: list[Command]) -> None:
    one, two = ControllerState(), ControllerState()
    assert apply_all(one, cmds) == apply_all(two, cmds)
    assert one.snapshot() == two.snapshot()
    assert list(one.queued()) == list(two.queued())


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=40), st.lists(commands, max_size=40))
def test_snapshot_restores_exactly(before: list[Command], after: list[Command]) -> None:
    live = ControllerState()
    apply_all(live, before)
    # Let the scheduler place what it can, so snapshots hold assigned and running jobs.
    placed = scheduled(live)
    apply_all(live, placed, len(before) + 1)
    index = len(before) + len(placed)
    restored = ControllerState()
    restored.restore(live.snapshot(), index)
    restored.check_indexes()
    assert restored.snapshot() == live.snapshot()
    assert restored.agents == live.agents and restored.jobs == live.jobs
    assert list(restored.queued()) == list(live.queued())
    assert schedule(restored) == schedule(live)
    # Identical answers to everything that follows.
    assert apply_all(restored, after, index + 1) == apply_all(live, after, index + 1)
    assert restored.snapshot() == live.snapshot()


@settings(max_examples=300, deadline=None)
@given(commands)
def test_every_command_survives_encode_and_decode(command: Command) -> None:
    assert decode(command.encode()) == command


@settings(max_examples=100, deadline=None)
@given(st.lists(commands, max_size=60))
def test_a_job_completes_at_most_once_and_attempts_only_grow(cmds: list[Command]) -> None:
    state = ControllerState()
    completions: dict[str, int] = {}
    last_attempt: dict[str, int] = {}
    half = len(cmds) // 2
    pending = list(reversed(cmds))
    index = 0
    while pending:
        command = pending.pop()
        index += 1
        if index == half:  # place queued jobs midway, so later reports find them on agents
            pending.extend(reversed(scheduled(state)))
        result = state.apply(index, command.encode())
        if isinstance(command, CompleteAttempt) and result.ok and not result.duplicate:
            job = state.jobs[command.job_id]
            if job.sha256 == command.sha256 and job.state.terminal:
                completions[command.job_id] = completions.get(command.job_id, 0) + 1
        for job in state.jobs.values():
            assert job.attempt >= last_attempt.get(job.id, 1)
            last_attempt[job.id] = job.attempt
            assert job.attempt <= job.retry.max_attempts
            numbers = [a.number for a in job.attempts]
            assert numbers == sorted(set(numbers))
    assert all(n == 1 for n in completions.values())
