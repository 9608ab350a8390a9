"""The leader's per-message paths, made cheap without changing what they do: frames from
concurrent senders coalesce into few writes and never interleave, whole frames decode the same
however the bytes are split, message decoding names the same field on errors, heartbeats are
read back as the same report, and a scheduling round stops once the fleet is full while every
queued job can still say why it waits."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import msgpack
import pytest
from anyio.abc import ByteStream
from quorus.core.agentproto import (
    Heartbeat,
    MessageDecodeError,
    from_wire,
    to_wire,
)
from quorus.core.agentproto.records import AgentMetrics, AgentStatus, JobAttempt
from quorus.core.controller import ControllerState, RegisterAgent, SubmitJob
from quorus.core.controller.model import AgentCapabilities, JobState
from quorus.core.controller.scheduler import AgentCapacity, schedule
from quorus.core.controller.softstate import AgentReport, AgentReports
from quorus.core.wire import FramedStream, FrameTooLargeError, MalformedFrameError
from quorus.core.wire.framing import FrameDecoder, encode_frame, encode_frames


class SlowStream(ByteStream):
    """An in-memory byte stream whose writes take a moment (so senders pile up)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.written: list[bytes] = []
        self.fail_after = fail_after

    async def send(self, item: bytes) -> None:
        await anyio.sleep(0.005)
        if self.fail_after is not None and len(self.written) >= self.fail_after:
            raise anyio.BrokenResourceError("the peer went away")
        self.written.append(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_concurrent_sends_coalesce_and_never_interleave() -> None:
    stream = SlowStream()
    framed = FramedStream(stream)

    async def sender(name: str) -> None:
        for i in range(20):
            await framed.send({"from": name, "n": i})

    async with anyio.create_task_group() as tg:
        for name in "abcdefgh":
            tg.start_soon(sender, name)
    decoder = FrameDecoder()
    got = decoder.feed(b"".join(stream.written))
    assert len(got) == 160 and decoder.at_frame_boundary()
    for name in "abcdefgh":  # each sender's frames whole and in its order
        assert [m["n"] for m in got if m["from"] == name] == list(range(20))
    assert framed.writes == len(stream.written) < 160 / 2


@pytest.mark.anyio
async def test_a_failed_write_reaches_the_senders_queued_behind_it() -> None:
    framed = FramedStream(SlowStream(fail_after=1))
    errors: list[BaseException] = []

    async def sender(i: int) -> None:
        try:
            await framed.send({"n": i})
        except anyio.BrokenResourceError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(sender, i)
    assert len(errors) == 4  # the first write went through; the rest shared the failed one
    with pytest.raises(anyio.BrokenResourceError):
        await framed.send_many([{"n": 9}, {"n": 10}])


class Loopback(ByteStream):
    """Bytes written come back to be read, one write per read."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.chunks.append(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_frames_of_one_read_are_taken_without_waiting() -> None:
    framed = FramedStream(Loopback())
    await framed.send_many([{"n": 1}, {"n": 2}, {"n": 3}])
    await framed.send_many([])
    await framed.send({"n": 4})
    assert framed.receive_ready() == []
    assert await framed.receive() == {"n": 1}
    assert framed.receive_ready() == [{"n": 2}, {"n": 3}]
    assert framed.receive_ready() == []
    assert await framed.receive() == {"n": 4}
    assert framed.writes == 2


def test_frames_decode_the_same_however_the_bytes_are_split() -> None:
    messages = [{"n": i, "pad": "x" * (i * 37 % 300)} for i in range(40)]
    data = encode_frames(messages)
    assert data == b"".join(encode_frame(m) for m in messages)
    rng = random.Random(7)
    for _ in range(50):
        decoder = FrameDecoder()
        got: list[object] = []
        at = 0
        while at < len(data):
            step = rng.choice([1, 3, 4, 5, 64, 500, 5000])
            got += decoder.feed(data[at:at + step])
            at += step
        assert got == messages and decoder.at_frame_boundary()
    assert FrameDecoder().feed(data) == messages


def test_decoder_errors_are_the_same_on_the_fast_path() -> None:
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(FrameTooLargeError, match="frame of 101 bytes"):
        decoder.feed(encode_frame({"a": 1}) + (101).to_bytes(4, "big") + b"x" * 101)
    with pytest.raises(FrameTooLargeError):  # refuses everything after an error
        decoder.feed(encode_frame({"a": 1}))
    body = msgpack.packb(1) + msgpack.packb(2)
    with pytest.raises(MalformedFrameError, match="more than one msgpack value"):
        FrameDecoder().feed(len(body).to_bytes(4, "big") + body)
    with pytest.raises(MalformedFrameError, match="cannot encode"):
        encode_frame({"a": object()})
    assert FrameDecoder().feed(encode_frame({"after": "an encoding error"})) == [
        {"after": "an encoding error"}]


def heartbeat_wire(**changes: object) -> dict[str, object]:
    wire = to_wire(Heartbeat("a1", 1.0, 3, AgentStatus.ACTIVE, (JobAttempt("j", 1),), 2))
    wire.update(changes)
    return wire


@pytest.mark.parametrize(("changes", "message"), [
    ({"sequence": True}, "Heartbeat.sequence: expected an integer, got True"),
    ({"sequence": 0}, "Heartbeat: sequence must be 1 or more, got 0"),
    ({"status": "sleepy"}, "Heartbeat.status: expected one of 'active', 'busy'"),
    ({"status": ["active"]}, "Heartbeat.status: expected one of"),
    ({"current_jobs": [{"job_id": "j", "attempt": 1}, {"job_id": "j", "attempt": "2"}]},
     r"Heartbeat.current_jobs\[1\].attempt: expected an integer, got '2'"),
    ({"current_jobs": "j"}, "Heartbeat.current_jobs: expected a list, got 'j'"),
    ({"metrics": {**to_wire(Heartbeat("a", 1.0, 1, AgentStatus.ACTIVE, (), 1))["metrics"],
                  "cpu": {"usage_percent": "high", "load_average": []}}},
     "Heartbeat.metrics.cpu.usage_percent: expected a number, got 'high'"),
    ({"metrics": None}, "Heartbeat.metrics: expected a map, got None"),
    ({"extra": 1}, "Heartbeat: unknown field 'extra'"),
    ({"timestamp": "soon"}, "Heartbeat.timestamp: expected a number, got 'soon'"),
])
def test_decode_errors_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(MessageDecodeError, match=message):
        from_wire(heartbeat_wire(**changes))


def test_unknown_fields_are_named_before_missing_ones() -> None:
    wire = heartbeat_wire()
    del wire["available_capacity"]
    assert from_wire(heartbeat_wire(timestamp=1)) == from_wire(heartbeat_wire(timestamp=1.0))
    with pytest.raises(MessageDecodeError, match="missing field 'available_capacity'"):
        from_wire(wire)
    wire["surprise"] = 1  # same number of keys as a whole heartbeat
    with pytest.raises(MessageDecodeError, match="unknown field 'surprise'"):
        from_wire(wire)


def test_heartbeats_are_read_back_as_the_same_report() -> None:
    heartbeat = Heartbeat("a1", 1.0, 3, AgentStatus.BUSY, (JobAttempt("j", 1),), 0,
                          AgentMetrics())
    reports = AgentReports()
    reports.record("a1", heartbeat, 10.0)
    assert reports["a1"] == AgentReport.of(heartbeat, 10.0)
    assert reports.get("a2") is None and "a1" in reports and list(reports) == ["a1"]
    reports.discard("a1")
    reports.discard("a1")
    assert len(reports) == 0


def test_a_round_stops_when_the_fleet_is_full_and_waiting_jobs_still_say_why() -> None:
    state = ControllerState()
    index = 0

    def apply(command: object) -> None:
        nonlocal index
        index += 1
        state.apply(index, command.encode())  # type: ignore[attr-defined]

    for i in range(3):
        apply(RegisterAgent(f"a{i}", 1.0, capabilities=AgentCapabilities(("file",), 2)))
    for i in range(200):
        apply(SubmitJob.new(f"/in/{i}", f"/out/{i}", job_id=f"j{i:03}", at=2.0))
    apply(SubmitJob.new("sftp://h/x", "/out/x", job_id="sftp-job", at=3.0))
    plan = schedule(state, {f"a{i}": AgentCapacity() for i in range(3)})
    assert [a.job_id for a in plan.assignments] == [f"j{i:03}" for i in range(6)]
    waiting = plan.waiting
    assert len(waiting) == 195
    assert waiting["j100"] == "all 3 agents that support file are full"
    assert waiting["sftp-job"] == "no agent supports sftp"
    assert "j000" not in waiting and "nope" not in waiting
    with pytest.raises(KeyError):
        waiting["j000"]
    assert list(waiting)[:2] == ["j006", "j007"] and len(list(waiting)) == 195
    assert dict(waiting) == {j.id: waiting[j.id] for j in state.queued()
                             if j.id not in {a.job_id for a in plan.assignments}}
    # A job that left the queue since is no longer listed.
    apply(RegisterAgent("a9", 1.0, capabilities=AgentCapabilities(("file",), 1)))
    from quorus.core.controller import AssignJob

    apply(AssignJob("j199", "a9", 1, 4.0))
    job = state.job("j199")
    assert job is not None and job.state is JobState.ASSIGNED and "j199" not in waiting
    # With the round's limit reached (slots left), the unexamined jobs are not listed.
    limited = schedule(state, None, max_assignments=2)
    assert len(limited.assignments) == 2 and len(limited.waiting) == 0
