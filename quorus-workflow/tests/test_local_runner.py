"""The local runner on real files and in-memory stores, under asyncio and trio: copies with
checksums, failures that skip dependents, retries, step timeouts, cancellation, progress
events and the actions that run after the end."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from quorus.core.protocol import ReadStream, TransferProtocol
from quorus.core.protocols.memory import MemoryProtocol, memory_store
from quorus.core.testing.faults import FaultyProtocol
from quorus.core.testing.fixtures import anyio_backend
from quorus.core.uri import Location
from quorus.workflow.actions import ActionContext
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import load_text
from quorus.workflow.local import LocalRunner, StepEvent
from quorus.workflow.prepare import prepare
from quorus.workflow.summary import (
    ActionOutcome,
    ExecutionStatus,
    ExecutionSummary,
    StepStatus,
)

__all__ = ["anyio_backend"]  # every async test runs under asyncio and trio

pytestmark = pytest.mark.anyio
NO_WAIT = {"maxAttempts": 3, "initialDelay": "1ms", "maxDelay": "1ms"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def group_file(transfers: list[dict[str, Any]], *, strategy: str = "sequential",
               extra: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {"execution": {"strategy": strategy, "maxConcurrency": 4},
                            "transfers": transfers}
    spec.update(extra or {})
    return yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferGroup",
                           "metadata": {"name": "job"}, "spec": spec}, sort_keys=False)


def runner(text: str, **kw: Any) -> LocalRunner:
    prepared = prepare(load_text(text, "job.yaml"))
    binder = Binder(prepared.workflow, RunContext(started_at=time.time(), execution_id="t"))
    return LocalRunner(prepared.plan, binder, execution_id="t", **kw)


class _StalledRead(ReadStream):
    def __init__(self, inner: ReadStream, owner: StallingProtocol) -> None:
        self._inner = inner
        self._owner = owner
        self.info = inner.info

    async def read(self) -> bytes:
        self._owner.stalled.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._inner.aclose()


class StallingProtocol(FaultyProtocol):
    """A source that opens, then never delivers a byte."""

    def __init__(self, inner: TransferProtocol) -> None:
        super().__init__(inner, times=0)
        self.stalled = anyio.Event()

    async def open_read(self, location: Location, offset: int = 0,
                        length: int | None = None) -> ReadStream:
        return _StalledRead(await self.inner.open_read(location, offset, length), self)


async def test_a_multi_step_workflow_copies_files_and_verifies_checksums(tmp_path: Path
                                                                         ) -> None:
    first, second = b"alpha" * 1000, b"beta" * 3000
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.bin").write_bytes(first)
    (tmp_path / "in" / "b.bin").write_bytes(second)
    text = group_file([
        {"name": "a", "source": {"path": str(tmp_path / "in" / "a.bin")},
         "destination": {"path": str(tmp_path / "out" / "a.bin")},
         "validation": {"checksum": {"algorithm": "SHA-256", "value": sha(first)}}},
        {"name": "b", "dependsOn": ["a"], "source": {"path": str(tmp_path / "in" / "b.bin")},
         "destination": {"path": str(tmp_path / "out" / "nested" / "b.bin")}},
        {"name": "a-again", "dependsOn": ["a"], "condition": "${a.bytes} == 5000",
         "source": {"path": str(tmp_path / "out" / "a.bin")},
         "destination": {"path": str(tmp_path / "out" / "${a.result.checksum}.bin")}},
    ], strategy="parallel")
    summary = await runner(text).run()
    assert summary.status is ExecutionStatus.COMPLETED, summary.to_json()
    assert (tmp_path / "out" / "a.bin").read_bytes() == first
    assert (tmp_path / "out" / "nested" / "b.bin").read_bytes() == second
    assert (tmp_path / "out" / f"{sha(first)}.bin").read_bytes() == first
    a, b = summary.step("job/a"), summary.step("job/b")
    assert a is not None and b is not None
    assert (a.sha256, a.bytes, b.sha256, b.bytes) == (sha(first), 5000, sha(second), 12000)
    assert summary.bytes == 5000 + 12000 + 5000


async def test_a_wrong_checksum_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    text = group_file([{"name": "a", "source": {"path": str(tmp_path / "a")},
                        "destination": {"path": str(tmp_path / "b")}, "retry": NO_WAIT,
                        "validation": {"checksum": {"algorithm": "SHA-256",
                                                    "value": "0" * 64}}}])
    summary = await runner(text).run()
    assert summary.status is ExecutionStatus.FAILED
    step = summary.step("job/a")
    assert step is not None and step.status is StepStatus.FAILED
    assert not (tmp_path / "b").exists()


async def test_validation_defaults_check_every_transfer_unless_it_says_otherwise(
        tmp_path: Path) -> None:
    data = b"x" * 3000
    (tmp_path / "in.bin").write_bytes(data)
    defaults = {"validation": {"expectedSize": {"max": "10B"},
                               "checksum": {"algorithm": "SHA-256", "value": "0" * 64}}}
    text = group_file([
        {"name": "plain", "source": {"path": str(tmp_path / "in.bin")},
         "destination": {"path": str(tmp_path / "out" / "plain.bin")}, "retry": NO_WAIT},
        {"name": "own", "source": {"path": str(tmp_path / "in.bin")},
         "destination": {"path": str(tmp_path / "out" / "own.bin")}, "retry": NO_WAIT,
         "validation": {"expectedSize": {"max": "3KB"},
                        "checksum": {"algorithm": "SHA-256", "value": sha(data)}}},
    ], strategy="parallel", extra={"defaults": defaults})
    summary = await runner(text).run()
    assert summary.status is ExecutionStatus.FAILED
    plain, own = summary.step("job/plain"), summary.step("job/own")
    assert plain is not None and own is not None
    assert plain.status is StepStatus.FAILED
    assert "3000 bytes, above the maximum of 10" in (plain.error or "")
    assert not (tmp_path / "out" / "plain.bin").exists()
    assert own.status is StepStatus.COMPLETED, own.error
    assert (tmp_path / "out" / "own.bin").read_bytes() == data


async def test_a_source_without_its_expected_size_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"x" * 3000)
    text = group_file([
        {"name": "wrong", "source": {"path": str(tmp_path / "in.bin")},
         "destination": {"path": str(tmp_path / "out" / "wrong.bin")}, "retry": NO_WAIT,
         "expectedSize": "5KB"},
        {"name": "right", "source": {"path": str(tmp_path / "in.bin")},
         "destination": {"path": str(tmp_path / "out" / "right.bin")}, "retry": NO_WAIT,
         "expectedSize": 3000},
    ], strategy="parallel")
    summary = await runner(text).run()
    assert summary.status is ExecutionStatus.FAILED
    wrong, right = summary.step("job/wrong"), summary.step("job/right")
    assert wrong is not None and right is not None
    assert wrong.status is StepStatus.FAILED
    assert "is 3000 bytes, expected exactly 5000" in (wrong.error or "")
    assert not (tmp_path / "out" / "wrong.bin").exists()
    assert right.status is StepStatus.COMPLETED and right.bytes == 3000, right.error


async def test_a_missing_source_fails_the_run_and_skips_dependents(tmp_path: Path) -> None:
    text = group_file([
        {"name": "gone", "source": {"path": str(tmp_path / "missing")},
         "destination": {"path": str(tmp_path / "out1")}, "retry": NO_WAIT},
        {"name": "after", "dependsOn": ["gone"], "source": {"path": str(tmp_path / "x")},
         "destination": {"path": str(tmp_path / "out2")}},
    ], extra={"execution": {"strategy": "parallel", "continueOnError": True}})
    summary = await runner(text).run()
    gone, after = summary.step("job/gone"), summary.step("job/after")
    assert gone is not None and after is not None
    assert gone.status is StepStatus.FAILED and "missing" in (gone.error or "")
    assert after.status is StepStatus.SKIPPED
    assert after.reason == "'gone' did not complete (failed)"
    assert summary.status is ExecutionStatus.COMPLETED  # continueOnError
    strict = await runner(text.replace("continueOnError: true",
                                       "continueOnError: false")).run()
    assert strict.status is ExecutionStatus.FAILED
    assert "step 'gone' of group 'job' failed" in (strict.error or "")


async def test_a_dropped_connection_is_retried(tmp_path: Path) -> None:
    store = f"wf-{uuid.uuid4().hex}"
    data = bytes(range(256)) * 400
    memory_store(store).put("/src.bin", data)
    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=1000, times=1)
    text = group_file([{"name": "pull", "source": {"uri": f"memory://{store}/src.bin"},
                        "destination": {"path": str(tmp_path / "dst.bin")},
                        "retry": NO_WAIT}])
    summary = await runner(text, protocols={"memory": faulty}).run()
    step = summary.step("job/pull")
    assert step is not None
    assert (step.status, step.attempts, step.sha256) == (StepStatus.COMPLETED, 2, sha(data))
    assert faulty.opened_reads == 2
    assert (tmp_path / "dst.bin").read_bytes() == data


async def test_a_step_timeout_aborts_a_stalled_transfer(tmp_path: Path) -> None:
    store = f"wf-{uuid.uuid4().hex}"
    memory_store(store).put("/slow.bin", b"x" * 10)
    text = group_file([
        {"name": "slow", "timeout": "200ms", "source": {"uri": f"memory://{store}/slow.bin"},
         "destination": {"path": str(tmp_path / "slow.bin")}, "retry": NO_WAIT},
        {"name": "next", "source": {"uri": f"memory://{store}/slow.bin"},
         "destination": {"path": str(tmp_path / "next.bin")}},
    ])
    stalling = StallingProtocol(MemoryProtocol())
    summary = await runner(text, protocols={"memory": stalling}).run()
    slow, following = summary.step("job/slow"), summary.step("job/next")
    assert slow is not None and following is not None
    assert (slow.status, slow.error) == (StepStatus.FAILED, "timed out after 0.2 s")
    assert following.status is StepStatus.SKIPPED
    assert summary.status is ExecutionStatus.FAILED
    assert not (tmp_path / "slow.bin").exists()


async def test_cancel_while_running_stops_the_transfer_and_the_rest(tmp_path: Path) -> None:
    store = f"wf-{uuid.uuid4().hex}"
    memory_store(store).put("/f", b"x")
    text = group_file([
        {"name": f"s{i}", "source": {"uri": f"memory://{store}/f"},
         "destination": {"path": str(tmp_path / f"s{i}")}} for i in range(3)])
    stalling = StallingProtocol(MemoryProtocol())
    run = runner(text, protocols={"memory": stalling})
    result: list[ExecutionSummary] = []

    async def go() -> None:
        result.append(await run.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await stalling.stalled.wait()
        run.execution.cancel("stopped by the operator")
    summary = result[0]
    assert summary.status is ExecutionStatus.CANCELLED
    assert summary.error == "stopped by the operator"
    assert [s.status for s in summary.steps] == [StepStatus.CANCELLED] * 3
    first = summary.step("job/s0")
    assert first is not None and first.reason == "stopped by the operator"


async def test_runner_cancel_wakes_the_loop_at_once(tmp_path: Path) -> None:
    store = f"wf-{uuid.uuid4().hex}"
    memory_store(store).put("/f", b"x")
    text = group_file([{"name": "s", "source": {"uri": f"memory://{store}/f"},
                        "destination": {"path": str(tmp_path / "s")}}])
    stalling = StallingProtocol(MemoryProtocol())
    run = runner(text, protocols={"memory": stalling})
    result: list[ExecutionSummary] = []

    async def go() -> None:
        result.append(await run.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await stalling.stalled.wait()
        run.cancel("stop")
    assert result[0].status is ExecutionStatus.CANCELLED


async def test_events_report_each_step_and_the_end(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1234")
    events: list[StepEvent] = []
    text = group_file([
        {"name": "one", "source": {"path": str(tmp_path / "a")},
         "destination": {"path": str(tmp_path / "b")}},
        {"name": "two", "source": {"path": str(tmp_path / "b")},
         "destination": {"path": str(tmp_path / "c")}, "condition": "${one.bytes} > 100"},
    ])
    await runner(text, on_event=events.append).run()
    changes = [(e.step, e.status) for e in events if not (e.status == "running" and e.bytes)]
    assert changes == [("job/one", "running"), ("job/one", "completed"),
                       ("job/two", "skipped"), ("", "completed")]
    skipped = next(e for e in events if e.status == "skipped")
    assert skipped.detail == "condition ${one.bytes} > 100 was false (one.bytes=4)"
    assert events[-1].bytes == 4


class RecordingAction:
    """An action that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Mapping[str, Any], ExecutionSummary]] = []

    async def __call__(self, spec: Mapping[str, Any], summary: ExecutionSummary,
                       context: ActionContext) -> ActionOutcome:
        self.calls.append((spec, summary))
        return ActionOutcome("record", str(spec.get("target", "")), True, "recorded")


ACTIONS = {"onSuccess": [{"action": "record", "target": "on-success"}],
           "onFailure": [{"action": "record", "target": "failed: ${error.message}"}]}


async def test_on_success_actions_run_after_a_completed_run(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    action = RecordingAction()
    text = group_file([{"name": "ok", "source": {"path": str(tmp_path / "a")},
                        "destination": {"path": str(tmp_path / "b")}}], extra=ACTIONS)
    summary = await runner(text, actions={"record": action},
                           action_context=ActionContext()).run()
    assert [spec["target"] for spec, _ in action.calls] == ["on-success"]
    assert action.calls[0][1].status is ExecutionStatus.COMPLETED
    assert [(a.action, a.target, a.ok) for a in summary.actions] == [
        ("record", "on-success", True)]


async def test_on_failure_actions_see_the_error_message(tmp_path: Path) -> None:
    action = RecordingAction()
    text = group_file([{"name": "bad", "source": {"path": str(tmp_path / "missing")},
                        "destination": {"path": str(tmp_path / "b")}, "retry": NO_WAIT}],
                      extra=ACTIONS)
    summary = await runner(text, actions={"record": action},
                           action_context=ActionContext()).run()
    assert summary.status is ExecutionStatus.FAILED
    assert len(action.calls) == 1
    target = str(action.calls[0][0]["target"])
    assert target == f"failed: {summary.error}"
    assert "step 'bad' of group 'job' failed" in target
    assert summary.actions[0].target == target


async def test_no_actions_run_without_an_action_context(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x")
    action = RecordingAction()
    text = group_file([{"name": "ok", "source": {"path": str(tmp_path / "a")},
                        "destination": {"path": str(tmp_path / "b")}}], extra=ACTIONS)
    summary = await runner(text, actions={"record": action}).run()
    assert action.calls == [] and summary.actions == ()
