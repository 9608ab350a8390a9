"""Group commit on the controller: the ``batch`` command applies its commands exactly as if
each came alone (rules, admission, observation), :class:`GroupCommit` gathers concurrent
proposals into few consensus writes without reordering them, and a real controller records
an attempt's start before its completion when both arrive in one read."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import msgpack
import pytest
from quorus.core.agentproto import (
    AgentCapabilities,
    Completed,
    Heartbeat,
    HeartbeatAck,
    Progress,
    Register,
    Registered,
    ResultAck,
    from_wire,
    to_wire,
)
from quorus.core.agentproto.records import AgentStatus
from quorus.core.consensus import NotLeader
from quorus.core.controller import (
    Applied,
    AssignJob,
    Command,
    CompleteAttempt,
    ControllerState,
    JobStarted,
    MalformedCommandError,
    RegisterAgent,
    Rejected,
    SubmitJob,
)
from quorus.core.controller.commands import MAX_BATCH, Batch, decode, encode_batch
from quorus.core.controller.groupcommit import GroupCommit
from quorus.core.controller.model import AgentCapabilities as RecordCapabilities
from quorus.core.controller.model import JobOptions, JobState
from quorus.core.controller.results import RejectCode
from quorus.core.wire import FramedStream, Hello

pytestmark = pytest.mark.anyio

SHA = hashlib.sha256(b"x").hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Note(Command):
    NAME: ClassVar[str] = "note"
    text: str


class Recorder:
    """A state module that sees every built-in command: admits all but jobs of tenant
    ``blocked``, records what it admitted, observed and was told was refused."""

    name = "recorder"
    command_types: Sequence[type[Command]] = (Note,)

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def apply(self, command: Command, index: int, state: ControllerState) -> Any:
        return None

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None:
        self.calls.append(("admit", command.NAME, index))
        if getattr(command, "tenant", None) == "blocked":
            return Rejected(command.NAME, index, RejectCode.ADMISSION_DENIED, "blocked")
        return None

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None:
        self.calls.append(("observe", command.NAME, index))

    def refused(self, command: Command, refusal: Rejected, index: int,
                state: ControllerState) -> None:
        self.calls.append(("refused", command.NAME, index))

    def snapshot(self) -> Any:
        return None

    def restore(self, data: Any) -> None:
        pass


def commands() -> list[Command]:
    caps = RecordCapabilities(protocols=("file",), max_concurrent=2)
    return [
        RegisterAgent("a1", 1.0, capabilities=caps),
        SubmitJob.new("/in/1", "/out/1", job_id="j1", at=2.0,
                      options=JobOptions(checksum=f"sha256:{SHA}")),
        SubmitJob.new("/in/2", "/out/2", job_id="j2", at=2.0, tenant="blocked"),
        AssignJob("j1", "a1", 1, 3.0),
        JobStarted("j1", "a1", 1, 4.0),
        CompleteAttempt("j1", "a1", 2, 5.0, 1, SHA),  # a stale attempt: rejected
        CompleteAttempt("j1", "a1", 1, 5.0, 1, SHA),
        CompleteAttempt("j1", "a1", 1, 5.5, 1, SHA),  # repeated: a duplicate
    ]


def test_a_batch_applies_each_command_as_if_alone() -> None:
    alone_module, batched_module = Recorder(), Recorder()
    alone, batched = ControllerState([alone_module]), ControllerState([batched_module])
    singles = [alone.apply(7, c.encode()) for c in commands()]
    result = batched.apply(7, Batch(tuple(commands())).encode())
    assert isinstance(result, Applied) and result.command == "batch"
    assert list(result.value) == singles
    assert [type(r).__name__ for r in singles] == [
        "Applied", "Applied", "Rejected", "Applied", "Applied", "Rejected", "Applied", "Applied"]
    assert singles[2].code is RejectCode.ADMISSION_DENIED
    assert singles[5].code is RejectCode.STALE_ATTEMPT and singles[7].duplicate
    assert batched.snapshot() == alone.snapshot()
    # The module saw each inner command exactly as it would alone, and never the batch.
    assert batched_module.calls == alone_module.calls
    assert not any(name == "batch" for _, name, _ in batched_module.calls)
    assert ("refused", "submit-job", 7) in batched_module.calls
    job = batched.job("j1")
    assert job is not None and job.state is JobState.COMPLETED and job.started_at == 4.0


def test_batch_bytes_round_trip_and_bad_batches_are_refused() -> None:
    batch = Batch((AssignJob("j", "a", 1, 1.0), JobStarted("j", "a", 1, 2.0)))
    assert decode(batch.encode()) == batch
    assert batch.encode() == encode_batch([c.encode() for c in batch.commands])
    with pytest.raises(ValueError, match="built-in commands only"):
        Batch((Note("x"),))
    with pytest.raises(ValueError, match="built-in commands only"):
        Batch((batch,))
    with pytest.raises(ValueError, match=f"1 to {MAX_BATCH} commands"):
        Batch(())

    def packed(value: Any) -> bytes:
        data: bytes = msgpack.packb(value, use_bin_type=True)
        return data

    for value, message in [
        (["batch", {"commands": "x"}], "expected {commands"),
        (["batch", {"commands": [], "more": 1}], "expected {commands"),
        (["batch", {"commands": [["batch", {"commands": []}]]}], "'batch' is not a built-in"),
        (["batch", {"commands": [["note", {"text": "x"}]]}], "'note' is not a built-in"),
        (["batch", {"commands": [["assign-job"]]}], r"commands\[0\]: a command is"),
        (["batch", {"commands": [["assign-job", {"job_id": "j"}]]}], "malformed batch"),
        (["batch", {"commands": []}], "1 to 1000 commands"),
    ]:
        with pytest.raises(MalformedCommandError, match=message):
            decode(packed(value))


class FakeBackend:
    """Applies proposed bytes to a state, recording each, and how many were in flight."""

    def __init__(self) -> None:
        self.state = ControllerState()
        self.proposed: list[bytes] = []
        self.index = 0
        self.fail: Exception | None = None
        self.gate = anyio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0

    async def propose(self, data: bytes) -> Any:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            await anyio.sleep(0.01)
        finally:
            self.in_flight -= 1
        if self.fail is not None:
            raise self.fail
        self.proposed.append(data)
        self.index += 1
        return self.state.apply(self.index, data)


def submission(i: int) -> SubmitJob:
    return SubmitJob.new(f"/in/{i}", f"/out/{i}", job_id=f"j{i}", at=float(i))


async def test_concurrent_proposals_share_few_consensus_writes_in_order() -> None:
    backend = FakeBackend()
    commit = GroupCommit(backend.propose, max_commands=50)
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        results[i] = await commit.propose(submission(i))

    async with anyio.create_task_group() as tg:
        await tg.start(commit.run)
        async with anyio.create_task_group() as proposers:
            for i in range(120):
                proposers.start_soon(one, i)
                await anyio.lowlevel.checkpoint()
        outcomes = await commit.propose_all([submission(500), submission(500).__class__.new(
            "/other", "/x", job_id="j500", at=1.0)])
        tg.cancel_scope.cancel()
    assert all(isinstance(r, Applied) and r.jobs[0].id == f"j{i}" for i, r in results.items())
    assert commit.commands == 122 and commit.proposals < 20
    # Every command's wait to be proposed, and every proposal's commit, is measured.
    assert commit.waited.observations == 122
    assert commit.committed.observations == commit.proposals
    assert 1 < backend.most_in_flight <= commit.depth
    assert any(decode(data).NAME == "batch" for data in backend.proposed)
    assert isinstance(outcomes[0], Applied)
    assert isinstance(outcomes[1], Rejected) and outcomes[1].code is RejectCode.DUPLICATE_JOB
    # Applied in the order handed in: sequence numbers follow the proposals.
    ordered = sorted(backend.state.jobs.values(), key=lambda j: j.sequence)
    assert len(ordered) == 121
    proposed_order: list[str] = []
    for data in backend.proposed:
        command = decode(data)
        inner = command.commands if isinstance(command, Batch) else (command,)
        proposed_order += [c.job_id for c in inner if isinstance(c, SubmitJob)]
    assert [j.id for j in ordered] == proposed_order[:121]


async def test_errors_reach_every_proposer_and_module_commands_go_alone() -> None:
    backend = FakeBackend()
    commit = GroupCommit(backend.propose)
    async with anyio.create_task_group() as tg:
        await tg.start(commit.run)
        backend.fail = NotLeader("c2", maybe_committed=True)
        outcomes = await commit.propose_all([submission(1), submission(2)])
        assert all(isinstance(o, NotLeader) and o.maybe_committed for o in outcomes)
        with pytest.raises(NotLeader):
            await commit.propose(submission(3))
        backend.fail = None
        backend.proposed.clear()
        # A module's command is never put in a batch (the backend here has no such module).
        outcomes = await commit.propose_all([submission(4), Note("hello"), submission(5)])
        tg.cancel_scope.cancel()
    assert [decode(d).NAME for d in backend.proposed if not d.startswith(b"\x92\xa4note")] == [
        "submit-job", "submit-job"]
    assert isinstance(outcomes[1], MalformedCommandError)
    assert isinstance(outcomes[0], Applied) and isinstance(outcomes[2], Applied)


async def test_a_cancelled_proposer_withdraws_what_was_not_taken_and_soon_reports() -> None:
    backend = FakeBackend()
    commit = GroupCommit(backend.propose, depth=1)  # one batch in flight: the next waits
    seen: list[Any] = []
    reported = anyio.Event()

    def report(outcome: Any) -> None:
        seen.append(outcome)
        reported.set()

    async with anyio.create_task_group() as tg:
        await tg.start(commit.run)
        backend.gate = anyio.Event()  # the first proposal waits here
        tg.start_soon(commit.propose, submission(1))
        await anyio.sleep(0.05)
        with anyio.move_on_after(0.05):
            await commit.propose(submission(2))  # queued behind the first, then cancelled
        commit.propose_soon(submission(3), report)
        backend.gate.set()
        with anyio.fail_after(5):
            await reported.wait()
        tg.cancel_scope.cancel()
    assert isinstance(seen[0], Applied) and seen[0].jobs[0].id == "j3"
    assert set(backend.state.jobs) == {"j1", "j3"}


async def test_not_running_proposes_directly() -> None:
    backend = FakeBackend()
    commit = GroupCommit(backend.propose)
    assert isinstance(await commit.propose(submission(1)), Applied)
    outcomes = await commit.propose_all([submission(2), Note("x")])
    assert isinstance(outcomes[0], Applied) and isinstance(outcomes[1], MalformedCommandError)
    assert commit.proposals == 3
    with pytest.raises(RuntimeError, match="needs the group commit running"):
        commit.propose_soon(submission(3), print)
    with pytest.raises(ValueError, match="depth must be at least 1"):
        GroupCommit(backend.propose, depth=0)
    with pytest.raises(ValueError, match="max_commands must be 1 to 1000"):
        GroupCommit(backend.propose, max_commands=1001)


# -- on a real controller ------------------------------------------------------------------------


async def test_start_and_completion_in_one_read_are_recorded_in_order(tmp_path: Path) -> None:
    """An agent that finishes at once sends its final progress and its result together: the
    controller records the start, then the completion, and heartbeats in the same read are
    acknowledged in one write."""
    from quorus.core.controller.server import ControllerServer
    from quorus.core.controller.settings import ControllerSettings
    from quorus.core.testing.fixtures import free_port

    settings = ControllerSettings.from_mapping({
        "node_id": "c1", "data_dir": str(tmp_path), "token": "secret-token",
        "listen_agents": f"127.0.0.1:{free_port()}", "listen_http": f"127.0.0.1:{free_port()}",
        "heartbeat_interval": 5.0,
    })
    server = ControllerServer(settings, extensions=[])
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        with anyio.fail_after(10):
            while not server.leading:  # noqa: ASYNC110 - leadership has no event to wait on
                await anyio.sleep(0.02)
        host, port = settings.listen_agents.rsplit(":", 1)
        framed = FramedStream(await anyio.connect_tcp(host, int(port)))
        await framed.send(Hello("quorus-agent", (1,), "agent-1", "token",
                                {"token": "secret-token"}).to_wire())
        assert isinstance(from_wire(await framed.receive()), Hello)
        await framed.send(to_wire(Register("agent-1", "h", "1", AgentCapabilities(("file",), 2))))
        assert isinstance(from_wire(await framed.receive()), Registered)
        job = await server.service.submit_job("/in/a", "/out/a", job_id="job-a",
                                              options=JobOptions(checksum=f"sha256:{SHA}"))
        assign = from_wire(await framed.receive())
        assert getattr(assign, "job_id", None) == "job-a"
        heartbeat = Heartbeat("agent-1", 1.0, 1, AgentStatus.ACTIVE, (), 2)
        writes = server.links["agent-1"].framed.writes
        await framed.send_many([
            to_wire(heartbeat), to_wire(dataclasses.replace(heartbeat, sequence=2)),
            to_wire(Progress(job.id, 1, 1, 1, 1.0)),
            to_wire(Completed(job.id, 1, 1, SHA, 0.1)),
        ])
        answers = [from_wire(await framed.receive()) for _ in range(3)]
        assert answers[:2] == [HeartbeatAck(1), HeartbeatAck(2)]
        assert answers[2] == ResultAck(job.id, 1, True, "")
        # The two acknowledgements went out in one write, the result's answer in another.
        assert server.links["agent-1"].framed.writes - writes == 2
        record = server.state.job(job.id)
        assert record is not None and record.state is JobState.COMPLETED
        assert record.started_at is not None and record.attempts[0].started_at is not None
        # A start reported alone is proposed without stopping the link; the result that
        # follows in a later read is applied after it.
        second = await server.service.submit_job("/in/b", "/out/b", job_id="job-b")
        assert getattr(from_wire(await framed.receive()), "job_id", None) == "job-b"
        await framed.send(to_wire(Progress(second.id, 1, 1, 2, 1.0)))
        await anyio.sleep(0.05)  # another read
        await framed.send(to_wire(Completed(second.id, 1, 2, SHA, 0.1)))
        assert from_wire(await framed.receive()) == ResultAck(second.id, 1, True, "")
        done = server.state.job(second.id)
        assert done is not None and done.state is JobState.COMPLETED
        assert done.started_at is not None
        report = server.soft.reports["agent-1"]
        assert report.sequence == 2 and report.free_slots == 2 and "agent-1" in server.soft.reports
        assert server.group_commit.commands > server.group_commit.proposals - 1
        await framed.aclose()
        server.stop()
