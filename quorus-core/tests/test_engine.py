"""The transfer engine: verification, atomic placement, overwrite policies, resume, retry,
cancellation, concurrency and bounded memory."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import anyio
import pluggy
import pytest
from quorus.core import hookimpl
from quorus.core.engine import (
    OverwritePolicy,
    RetryPolicy,
    TransferEngine,
    TransferProgress,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.errors import PermissionDeniedError, TransientError
from quorus.core.hooks import new_plugin_manager
from quorus.core.protocols.file import FileProtocol
from quorus.core.protocols.memory import MemoryProtocol, MemoryStore, memory_store
from quorus.core.testing import payload_bytes
from quorus.core.testing.faults import FaultyProtocol

pytestmark = pytest.mark.anyio

NO_WAIT = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "quorus-partial" in p.name)


@pytest.fixture
def store() -> tuple[str, MemoryStore]:
    name = f"engine-{uuid.uuid4().hex}"
    return name, memory_store(name)


async def test_copies_a_file_verified_and_atomically(tmp_path: Path) -> None:
    data = payload_bytes(5 * 1024 * 1024 + 3)
    (tmp_path / "src.bin").write_bytes(data)
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src.bin"), str(tmp_path / "out" / "dst.bin"),
            checksum=f"sha256:{sha(data)}", mode=0o640))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert (result.bytes, result.bytes_transferred, result.sha256, result.attempts) == (
        len(data), len(data), sha(data), 1)
    assert (tmp_path / "out" / "dst.bin").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "out" / "dst.bin").stat().st_mode) == 0o640
    assert leftovers(tmp_path / "out") == []


async def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "empty"), str(tmp_path / "copy")))
    assert result.ok and result.sha256 == sha(b"")
    assert (tmp_path / "copy").read_bytes() == b""


async def test_checksum_mismatch_leaves_destination_untouched(tmp_path: Path) -> None:
    (tmp_path / "src.bin").write_bytes(b"new content")
    (tmp_path / "dst.bin").write_bytes(b"previous content")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src.bin"), str(tmp_path / "dst.bin"), checksum="sha256:" + "1" * 64,
            retry=NO_WAIT))
    assert result.status is TransferStatus.FAILED
    assert result.error_type == "ChecksumMismatchError"
    assert result.attempts == 1
    assert "expected sha256:" + "1" * 64 in (result.error or "")
    assert (tmp_path / "dst.bin").read_bytes() == b"previous content"
    assert leftovers(tmp_path) == []


async def test_size_outside_expected_range_fails_before_moving_data(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 100)
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "small"), str(tmp_path / "out"), size="1KB..5GB"))
    assert result.error_type == "SizeMismatchError"
    assert "below the minimum of 1000" in (result.error or "")
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


async def test_overwrite_fail_refuses_and_keeps_destination(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "a"), str(tmp_path / "b"), overwrite=OverwritePolicy.FAIL))
    assert result.error_type == "DestinationExistsError"
    assert "overwrite policy 'fail'" in (result.error or "")
    assert (tmp_path / "b").read_bytes() == b"b"


async def test_skip_same_skips_identical_and_replaces_different(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"same bytes")
    (tmp_path / "same").write_bytes(b"same bytes")
    (tmp_path / "other").write_bytes(b"other bytes")
    before = (tmp_path / "same").stat().st_mtime_ns
    async with TransferEngine() as engine:
        skipped = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src"), str(tmp_path / "same"), overwrite=OverwritePolicy.SKIP_SAME))
        replaced = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src"), str(tmp_path / "other"), overwrite=OverwritePolicy.SKIP_SAME))
        with_checksum = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src"), str(tmp_path / "same"), overwrite=OverwritePolicy.SKIP_SAME,
            checksum=f"sha256:{sha(b'same bytes')}"))
    assert skipped.status is TransferStatus.SKIPPED and skipped.bytes_transferred == 0
    assert skipped.sha256 == sha(b"same bytes")
    assert (tmp_path / "same").stat().st_mtime_ns == before
    assert replaced.status is TransferStatus.COMPLETED
    assert (tmp_path / "other").read_bytes() == b"same bytes"
    assert with_checksum.status is TransferStatus.SKIPPED


async def test_bad_locations_fail_at_once_with_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    cases = [
        (tmp_path / "missing", tmp_path / "x", "NotFoundError", "no such file"),
        (tmp_path / "dir", tmp_path / "x", "NotAFileError", "is a directory"),
        (tmp_path / "file", tmp_path / "dir", "NotAFileError", "destination"),
        (tmp_path / "file", tmp_path / "file" / "below", "NotAFileError", "a file is in the way"),
    ]
    async with TransferEngine() as engine:
        for source, destination, error_type, fragment in cases:
            result = await engine.transfer(TransferRequest.create(
                str(source), str(destination), retry=NO_WAIT))
            assert result.status is TransferStatus.FAILED
            assert (result.error_type, result.attempts) == (error_type, 1), result.error
            assert fragment in (result.error or "")


async def test_missing_parent_without_create_directories(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src"), str(tmp_path / "no" / "such" / "dst"),
            create_directories=False))
    assert result.error_type == "NotFoundError"
    assert not (tmp_path / "no").exists()


async def test_connection_drop_is_retried_and_resumed(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    data = payload_bytes(3 * 1024 * 1024 + 17, seed=3)
    memory.put("/src.bin", data)
    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=1024 * 1024 + 5, times=1)
    async with TransferEngine(protocols={"memory": faulty}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"memory://{name}/src.bin", str(tmp_path / "dst.bin"), retry=NO_WAIT,
            checksum=f"sha256:{sha(data)}"))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert 0 < result.resumed_from <= 1024 * 1024 + 5
    assert result.bytes_transferred == len(data) - result.resumed_from
    assert (tmp_path / "dst.bin").read_bytes() == data
    assert leftovers(tmp_path) == []


async def test_exhausted_retries_keep_the_partial_for_a_later_run(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    data = payload_bytes(2 * 1024 * 1024, seed=4)
    memory.put("/src.bin", data)
    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=600_000, times=3)
    request = TransferRequest.create(
        f"memory://{name}/src.bin", str(tmp_path / "dst.bin"), retry=NO_WAIT)
    async with TransferEngine(protocols={"memory": faulty}) as engine:
        failed = await engine.transfer(request)
        assert (failed.status, failed.attempts, failed.error_type) == (
            TransferStatus.FAILED, 3, "TransientError")
        assert not (tmp_path / "dst.bin").exists()
        assert leftovers(tmp_path) == [".dst.bin.quorus-partial", ".dst.bin.quorus-partial.json"]
        rerun = await engine.transfer(request)
    assert rerun.status is TransferStatus.COMPLETED
    assert rerun.resumed_from > 0
    assert (tmp_path / "dst.bin").read_bytes() == data


async def test_non_retryable_failure_is_not_retried(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    memory.put("/src.bin", b"x" * 1000)
    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=10, times=5,
                            make_error=lambda: PermissionDeniedError("access revoked"))
    async with TransferEngine(protocols={"memory": faulty}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"memory://{name}/src.bin", str(tmp_path / "dst.bin"), retry=NO_WAIT))
    assert (result.status, result.attempts, result.error) == (
        TransferStatus.FAILED, 1, "access revoked")


async def test_source_changed_between_attempts_starts_over(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    old, new = payload_bytes(2_000_000, seed=5), payload_bytes(2_100_000, seed=6)
    memory.put("/src.bin", old)

    def change_source() -> TransientError:
        memory.put("/src.bin", new)
        return TransientError("connection reset")

    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=700_000, times=1, make_error=change_source)
    async with TransferEngine(protocols={"memory": faulty}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"memory://{name}/src.bin", str(tmp_path / "dst.bin"), retry=NO_WAIT))
    assert result.status is TransferStatus.COMPLETED
    assert result.attempts == 2
    assert result.resumed_from == 0
    assert result.sha256 == sha(new)
    assert (tmp_path / "dst.bin").read_bytes() == new


async def test_no_resume_starts_over(tmp_path: Path, store: tuple[str, MemoryStore]) -> None:
    name, memory = store
    data = payload_bytes(1_500_000, seed=7)
    memory.put("/src.bin", data)
    faulty = FaultyProtocol(MemoryProtocol(), after_bytes=500_000, times=1)
    async with TransferEngine(protocols={"memory": faulty}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"memory://{name}/src.bin", str(tmp_path / "dst.bin"), retry=NO_WAIT, resume=False))
    assert (result.status, result.attempts, result.resumed_from) == (
        TransferStatus.COMPLETED, 2, 0)
    assert result.bytes_transferred == len(data)


async def test_stale_partial_of_another_source_is_discarded(tmp_path: Path) -> None:
    (tmp_path / "src.bin").write_bytes(b"A" * 5000)
    (tmp_path / ".dst.bin.quorus-partial").write_bytes(b"B" * 2000)
    (tmp_path / ".dst.bin.quorus-partial.json").write_text('{"source": "elsewhere"}')
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src.bin"), str(tmp_path / "dst.bin")))
    assert result.ok and result.resumed_from == 0
    assert (tmp_path / "dst.bin").read_bytes() == b"A" * 5000
    assert leftovers(tmp_path) == []


async def test_cancellation_keeps_partial_and_reports_cancelled(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    data = payload_bytes(4 * 1024 * 1024, seed=8)
    memory.put("/src.bin", data)
    finished: list[TransferResult] = []

    class Recorder:
        @hookimpl
        def quorus_transfer_finished(self, request: TransferRequest, result: TransferResult) -> None:
            finished.append(result)

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Recorder())
    with anyio.CancelScope() as scope:

        def cancel_midway(progress: TransferProgress) -> None:
            if progress.bytes_done >= 1024 * 1024:
                scope.cancel()

        async with TransferEngine(plugins=pm) as engine:
            await engine.transfer(
                TransferRequest.create(f"memory://{name}/src.bin", str(tmp_path / "dst.bin"),
                                       bandwidth_limit=8 * 1024 * 1024),
                on_progress=cancel_midway,
            )
    assert scope.cancelled_caught
    assert [r.status for r in finished] == [TransferStatus.CANCELLED]
    assert not (tmp_path / "dst.bin").exists()
    assert (tmp_path / ".dst.bin.quorus-partial").stat().st_size >= 1024 * 1024

    async with TransferEngine() as engine:
        rerun = await engine.transfer(TransferRequest.create(
            f"memory://{name}/src.bin", str(tmp_path / "dst.bin")))
    assert rerun.ok and rerun.resumed_from >= 1024 * 1024
    assert (tmp_path / "dst.bin").read_bytes() == data


async def test_concurrency_limit_across_transfers(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    for i in range(6):
        memory.put(f"/f{i}", payload_bytes(600_000, seed=i))
    faulty = FaultyProtocol(MemoryProtocol({"chunk_size": 64 * 1024}), times=0)
    async with TransferEngine(protocols={"memory": faulty}, max_concurrent=2) as engine:
        results = await engine.transfer_many(
            TransferRequest.create(f"memory://{name}/f{i}", str(tmp_path / f"out{i}"),
                                   bandwidth_limit=6 * 1024 * 1024)
            for i in range(6)
        )
    assert [r.status for r in results] == [TransferStatus.COMPLETED] * 6
    assert [r.source for r in results] == [f"memory://{name}/f{i}" for i in range(6)]
    assert faulty.max_open_streams == 2


async def test_hooks_see_the_lifecycle(tmp_path: Path) -> None:
    events: list[tuple[str, Any]] = []

    class Recorder:
        @hookimpl
        def quorus_transfer_started(self, request: TransferRequest, attempt: int, offset: int) -> None:
            events.append(("started", (attempt, offset)))

        @hookimpl
        def quorus_transfer_progress(self, request: TransferRequest, progress: TransferProgress) -> None:
            events.append(("progress", progress.bytes_done))

        @hookimpl
        def quorus_transfer_finished(self, request: TransferRequest, result: TransferResult) -> None:
            events.append(("finished", result.status))

        @hookimpl
        def quorus_metric(self, name: str, kind: str, value: float, labels: dict[str, str]) -> None:
            events.append(("metric", (name, kind, value, labels["status"])))

    pm: pluggy.PluginManager = new_plugin_manager(load_entry_points=False)
    pm.register(Recorder())
    (tmp_path / "src").write_bytes(b"z" * 3000)
    async with TransferEngine(plugins=pm) as engine:
        await engine.transfer(TransferRequest.create(str(tmp_path / "src"), str(tmp_path / "dst")))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "started" and events[0][1] == (1, 0)
    assert ("progress", 3000) in events
    assert ("finished", TransferStatus.COMPLETED) in events
    assert ("metric", ("transfer.bytes", "counter", 3000.0, "completed")) in events
    assert kinds.index("finished") > kinds.index("started")


async def test_progress_reports_totals_and_rate(tmp_path: Path) -> None:
    data = payload_bytes(3 * 1024 * 1024)
    (tmp_path / "src").write_bytes(data)
    seen: list[TransferProgress] = []
    async with TransferEngine() as engine:
        await engine.transfer(
            TransferRequest.create(str(tmp_path / "src"), str(tmp_path / "dst")),
            on_progress=seen.append,
        )
    assert seen[-1].bytes_done == seen[-1].total == len(data)
    assert seen[-1].fraction == 1.0
    assert all(p.rate >= 0 for p in seen)
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)


async def test_memory_stays_bounded_for_large_files(tmp_path: Path) -> None:
    size = 96 * 1024 * 1024
    with open(tmp_path / "big", "wb") as f:
        f.truncate(size)  # a sparse file: reading it costs no disk
    tracemalloc.start()
    try:
        async with TransferEngine() as engine:
            result = await engine.transfer(TransferRequest.create(
                str(tmp_path / "big"), str(tmp_path / "copy")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok and result.bytes == size
    assert peak < 24 * 1024 * 1024, f"peak traced memory {peak} bytes for a {size}-byte file"


async def test_destination_on_another_protocol(store: tuple[str, MemoryStore], tmp_path: Path) -> None:
    name, memory = store
    (tmp_path / "src").write_bytes(b"to memory")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            str(tmp_path / "src"), f"memory://{name}/deep/dir/dst"))
    assert result.ok
    assert memory.get("/deep/dir/dst") == b"to memory"
    assert not any("quorus-partial" in p for p in memory.files)


def test_engine_requires_positive_concurrency() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TransferEngine(max_concurrent=0)


def test_file_protocol_is_used_for_paths() -> None:
    engine = TransferEngine()
    from quorus.core.uri import parse_location

    assert isinstance(engine.protocol(parse_location("/tmp/x")), FileProtocol)
    assert os.path.isabs(parse_location("x").path)


async def test_two_transfers_to_one_destination_never_share_the_partial(
    tmp_path: Path, store: tuple[str, MemoryStore]
) -> None:
    name, memory = store
    first, second = payload_bytes(3 * 1024 * 1024, seed=21), payload_bytes(3 * 1024 * 1024, seed=22)
    memory.put("/first", first)
    memory.put("/second", second)
    once = RetryPolicy(max_attempts=1)
    async with TransferEngine() as engine:
        results = await engine.transfer_many([
            TransferRequest.create(f"memory://{name}/first", str(tmp_path / "dst"), retry=once,
                                   bandwidth_limit=8 * 1024 * 1024),
            TransferRequest.create(f"memory://{name}/second", str(tmp_path / "dst"), retry=once,
                                   bandwidth_limit=8 * 1024 * 1024),
        ])
    statuses = sorted((r.status.value, r.error_type or "") for r in results)
    assert statuses == [("completed", ""), ("failed", "DestinationBusyError")]
    winner = next(r for r in results if r.ok)
    assert (tmp_path / "dst").read_bytes() == (first if winner.source.endswith("first") else second)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("backoff", "expected"), [
    ("exponential", [1.0, 2.0, 4.0, 8.0, 10.0]),
    ("linear", [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("fixed", [1.0, 1.0, 1.0, 1.0, 1.0]),
])
def test_retry_backoff_shapes(backoff: str, expected: list[float]) -> None:
    policy = RetryPolicy.from_config({"maxAttempts": 6, "initialDelay": "1s", "maxDelay": "10s",
                                      "backoff": backoff, "jitter": 0})
    assert [policy.delay(n) for n in range(1, 6)] == expected


def test_unknown_retry_backoff_is_refused() -> None:
    from quorus.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="expected exponential, linear, fixed"):
        RetryPolicy.from_config({"backoff": "random"})


async def test_a_faulty_wrapper_keeps_its_protocols_location_check_and_lock(
    tmp_path: Path,
) -> None:
    from quorus.core.errors import DestinationBusyError, InvalidURIError
    from quorus.core.uri import Location, parse_location

    class Checked(FileProtocol):
        def check_location(self, location: Location) -> None:
            if location.name.startswith("forbidden"):
                raise InvalidURIError(f"{location}: forbidden here")

    inner = Checked()
    faulty = FaultyProtocol(inner)
    with pytest.raises(InvalidURIError, match="forbidden here"):
        faulty.check_location(parse_location(str(tmp_path / "forbidden.bin")))
    faulty.check_location(parse_location(str(tmp_path / "fine.bin")))
    record = parse_location(str(tmp_path / "f.partial.json"))
    async with faulty.lock(record):
        with pytest.raises(DestinationBusyError):
            async with inner.lock(record):
                pass
