"""The rollback action: partial files left by a real failed engine transfer, agent staging
files of a step's job, completed destinations under deleteAll; nothing else is touched."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from quorus.core.agent.attempt import staging_location
from quorus.core.engine import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.engine.resume import PartialFile
from quorus.core.protocol import Capabilities, TransferProtocol
from quorus.core.protocols.memory import MemoryProtocol, memory_store
from quorus.core.testing.faults import FaultyProtocol
from quorus.core.testing.fixtures import anyio_backend, payload_bytes
from quorus.core.uri import Location, parse_location
from quorus.workflow.actions import (
    ActionContext,
    engine_protocol_opener,
    run_actions,
    validate_action,
)
from quorus.workflow.actions.rollback import staging_pattern
from quorus.workflow.summary import (
    ActionOutcome,
    ExecutionStatus,
    ExecutionSummary,
    StepOutcome,
    StepStatus,
)

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio


async def failed_transfer(destination: Path) -> None:
    """Run the engine on a source whose reads break after 300 KiB, once, without retry:
    it leaves the partial file and its record beside ``destination``."""
    store = f"rollback-{uuid.uuid4().hex[:8]}"
    memory_store(store).put("/src.bin", payload_bytes(1024 * 1024))
    source = FaultyProtocol(MemoryProtocol({"chunk_size": 64 * 1024}),
                            after_bytes=300 * 1024, times=1)
    async with TransferEngine(protocols={"memory": source}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"memory://{store}/src.bin", str(destination), retry=RetryPolicy(max_attempts=1)))
    assert result.status is TransferStatus.FAILED


def partial_of(path: Path) -> tuple[Path, Path]:
    partial = PartialFile.beside(parse_location(str(path)))
    return Path(partial.data.path), Path(partial.record.path)


async def rollback(steps: tuple[StepOutcome, ...], strategy: str | None = None, *,
                   dry_run: bool = False, destinations: dict[str, str] | None = None,
                   ) -> ActionOutcome:
    spec: dict[str, Any] = {"action": "rollback"}
    if strategy is not None:
        spec["strategy"] = strategy
    summary = ExecutionSummary("e-9", "load", ExecutionStatus.FAILED, steps=steps)
    context = ActionContext(dry_run=dry_run,
                            destinations=MappingProxyType(destinations or {}))
    [outcome] = await run_actions([spec], summary, context)
    return outcome


@pytest.mark.anyio
async def test_delete_partial_removes_what_a_failed_engine_transfer_left(tmp_path: Path) -> None:
    destination = tmp_path / "out" / "data.bin"
    await failed_transfer(destination)
    data, record = partial_of(destination)
    assert data.stat().st_size > 0 and record.exists()  # what the engine left
    bystanders = [tmp_path / "out" / "keep.txt", *partial_of(tmp_path / "out" / "other.bin")]
    for path in bystanders:
        path.write_text("not ours")

    outcome = await rollback((StepOutcome("g/data", StepStatus.FAILED, destination=str(
        destination), error="connection reset by peer (injected)"),))
    assert outcome.ok, outcome.detail
    assert (outcome.action, outcome.target) == ("rollback", "deletePartial")
    assert not data.exists() and not record.exists()
    assert all(path.read_text() == "not ours" for path in bystanders)
    assert outcome.detail == (f"removed 2: partial file of g/data {data}; "
                              f"partial record of g/data {record}")


@pytest.mark.anyio
async def test_staging_files_of_the_steps_job_go_and_other_jobs_stay(tmp_path: Path) -> None:
    destination = parse_location(str(tmp_path / "data.bin"))
    ours: list[Path] = []
    for attempt in (1, 2):
        staging = staging_location(destination, "wf-e9-g/data-1", attempt)
        ours.append(Path(staging.path))
        ours.extend(Path(p.path) for p in (PartialFile.beside(staging).data,
                                           PartialFile.beside(staging).record))
    theirs = [Path(staging_location(destination, "wf-e8-g/data-1", 1).path),
              Path(staging_location(parse_location(str(tmp_path / "data.bin2")),
                                    "wf-e9-g/data-1", 1).path)]
    for path in [*ours, *theirs]:
        path.write_bytes(b"partial")

    outcome = await rollback((StepOutcome("g/data", StepStatus.CANCELLED,
                                          destination=destination.path,
                                          job_id="wf-e9-g/data-1"),))
    assert outcome.ok, outcome.detail
    assert [p for p in ours if p.exists()] == []
    assert all(p.exists() for p in theirs)
    assert outcome.detail.startswith("removed 6: staging file of g/data")


@pytest.mark.parametrize("job_id", ["wf-e1-g-a-1", "wf-e1-g/a-1", "j" * 100])
def test_staging_pattern_matches_the_agents_names_for_every_attempt(job_id: str) -> None:
    for name in ("data.bin", "n" * 200):
        destination = parse_location(f"/srv/{name}")
        pattern = staging_pattern(destination, job_id)
        for attempt in (1, 12):
            staging = staging_location(destination, job_id, attempt)
            partial = PartialFile.beside(staging)
            for location in (staging, partial.data, partial.record):
                assert pattern.match(location.name), location.name
        assert not pattern.match(PartialFile.beside(destination).data.name)
        assert not pattern.match(staging_location(destination, job_id + "x", 1).name)


@pytest.mark.anyio
async def test_delete_all_also_removes_completed_destinations(tmp_path: Path) -> None:
    done = tmp_path / "done.bin"
    done.write_bytes(b"complete")
    skipped = tmp_path / "skipped.bin"
    skipped.write_bytes(b"was there before")
    failed = tmp_path / "failed.bin"
    failed_partial, failed_record = partial_of(failed)
    failed_partial.write_bytes(b"half")
    failed_record.write_text("{}")
    unrelated = tmp_path / "unrelated.bin"
    unrelated.write_bytes(b"x")
    steps = (
        StepOutcome("g/done", StepStatus.COMPLETED, destination=str(done)),
        StepOutcome("g/failed", StepStatus.FAILED, destination=str(failed)),
        StepOutcome("g/skipped", StepStatus.SKIPPED, destination=str(skipped)),
    )

    partial_only = await rollback(steps)
    assert partial_only.ok and done.exists() and not failed_partial.exists()
    outcome = await rollback(steps, "deleteAll")
    assert outcome.ok, outcome.detail
    assert not done.exists()
    assert skipped.exists() and unrelated.exists()
    assert outcome.detail == f"removed 1: destination of g/done {done}"


@pytest.mark.anyio
async def test_real_destinations_from_the_context_replace_redacted_ones() -> None:
    host = f"rollback-{uuid.uuid4().hex[:8]}"
    store = memory_store(host)
    real = parse_location(f"memory://{host}/in/data.bin")
    partial = PartialFile.beside(real)
    store.put(partial.data.path, b"half")
    store.put(partial.record.path, b"{}")
    store.put("/in/data.bin.keep", b"x")
    outcome = await rollback(
        (StepOutcome("g/data", StepStatus.FAILED, destination="memory://***@redacted/x"),),
        destinations={"g/data": real.url()})
    assert outcome.ok, outcome.detail
    assert sorted(store.files) == ["/in/data.bin.keep"]


@pytest.mark.anyio
async def test_nothing_left_behind_is_not_an_error(tmp_path: Path) -> None:
    outcome = await rollback((
        StepOutcome("g/a", StepStatus.FAILED, destination=str(tmp_path / "a.bin"),
                    job_id="wf-1"),
        StepOutcome("g/b", StepStatus.FAILED, destination=str(tmp_path / "gone" / "b.bin"),
                    job_id="wf-2"),
        StepOutcome("g/c", StepStatus.FAILED),  # never got a destination
    ))
    assert outcome.ok
    assert outcome.detail == "nothing to remove"


@pytest.mark.anyio
async def test_a_dry_run_lists_what_would_go_and_removes_nothing(tmp_path: Path) -> None:
    destination = tmp_path / "data.bin"
    await failed_transfer(destination)
    data, record = partial_of(destination)
    outcome = await rollback((StepOutcome("g/data", StepStatus.FAILED,
                                          destination=str(destination)),), dry_run=True)
    assert outcome.ok
    assert outcome.detail == (f"would remove 2: partial file of g/data {data}; "
                              f"partial record of g/data {record}")
    assert data.exists() and record.exists()


@pytest.mark.anyio
async def test_an_unknown_strategy_is_a_failed_outcome() -> None:
    outcome = await rollback((), "deleteEverything")
    assert not outcome.ok
    assert "unknown strategy 'deleteEverything': use deletePartial or deleteAll" in (
        outcome.detail)


@pytest.mark.parametrize(("spec", "problems"), [
    ({"action": "rollback"}, 0),
    ({"action": "rollback", "strategy": "deleteAll"}, 0),
    ({"action": "rollback", "strategy": "${ROLLBACK}"}, 0),
    ({"action": "rollback", "strategy": "undo"}, 1),
])
def test_validate_rollback(spec: dict[str, Any], problems: int) -> None:
    assert len(validate_action(spec)) == problems


@pytest.mark.anyio
async def test_the_engines_protocols_with_their_credentials_can_be_lent() -> None:
    host = f"rollback-token-{uuid.uuid4().hex[:8]}"
    store = memory_store(host, required_token="t0ken")
    destination = parse_location(f"memory://{host}/data.bin")
    store.put(PartialFile.beside(destination).data.path, b"half")
    summary = ExecutionSummary("e-9", "load", ExecutionStatus.FAILED, steps=(
        StepOutcome("g/data", StepStatus.FAILED, destination=destination.url()),))
    spec = [{"action": "rollback"}]

    [refused] = await run_actions(spec, summary, ActionContext())
    assert not refused.ok and "requires a token" in refused.detail
    async with TransferEngine(protocol_options={"memory": {"token": "t0ken"}}) as engine:
        [outcome] = await run_actions(
            spec, summary, ActionContext(open_protocol=engine_protocol_opener(engine)))
    assert outcome.ok, outcome.detail
    assert store.files == {}


class InPlaceMemory(MemoryProtocol):
    """A destination written in place (no rename), like a plain HTTP PUT."""

    def capabilities(self, location: Location) -> Capabilities:
        return replace(super().capabilities(location), rename=False)


@pytest.mark.anyio
async def test_a_destination_written_in_place_has_nothing_beside_it() -> None:
    host = f"rollback-inplace-{uuid.uuid4().hex[:8]}"
    store = memory_store(host)
    destination = parse_location(f"memory://{host}/data.bin")
    lookalike = PartialFile.beside(destination).data.path
    store.put(lookalike, b"someone else's file")
    store.put(destination.path, b"complete")

    @contextlib.asynccontextmanager
    async def open_protocol(scheme: str) -> AsyncIterator[TransferProtocol]:
        yield InPlaceMemory()

    summary = ExecutionSummary("e-9", "load", ExecutionStatus.FAILED, steps=(
        StepOutcome("g/failed", StepStatus.FAILED, destination=destination.url(), job_id="j"),
        StepOutcome("g/done", StepStatus.COMPLETED, destination=destination.url()),
    ))
    [outcome] = await run_actions([{"action": "rollback", "strategy": "deleteAll"}], summary,
                                  ActionContext(open_protocol=open_protocol))
    assert outcome.ok, outcome.detail
    assert sorted(store.files) == [lookalike]
