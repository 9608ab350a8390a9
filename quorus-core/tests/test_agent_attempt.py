"""One attempt of an assigned job with the real transfer engine and file protocol: the
attempt-scoped staging name, the overwrite policy applied at the final rename, two attempts
of one job at once on one destination, aborts and failures leaving nothing behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest
from quorus.core.agent.attempt import (
    AttemptFailedWith,
    AttemptSucceeded,
    is_retryable,
    protocol_options,
    run_attempt,
    staging_location,
)
from quorus.core.agentproto import Assign, TransferOptions
from quorus.core.engine import OverwritePolicy, TransferEngine, TransferProgress
from quorus.core.errors import ConfigurationError
from quorus.core.testing.fixtures import payload_bytes
from quorus.core.uri import parse_location

pytestmark = pytest.mark.anyio

SIZE = 384 * 1024


def _source(tmp_path: Path, size: int = SIZE) -> tuple[Path, str]:
    data = payload_bytes(size, seed=7)
    path = tmp_path / "in.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _assign(src: Path, dst: Path, attempt: int = 1, **options: object) -> Assign:
    return Assign("job-7", attempt, str(src), str(dst), TransferOptions(**options))  # type: ignore[arg-type]


def _hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _ignore(progress: TransferProgress) -> None:
    del progress


def test_staging_names_carry_the_job_and_attempt() -> None:
    dst = parse_location("/data/out/file.bin")
    first = staging_location(dst, "job-7", 1)
    assert first.path == "/data/out/.file.bin.job-7.a1.quorus-attempt"
    assert staging_location(dst, "job-7", 2).path != first.path
    odd = staging_location(dst, "tenant/job 7", 1)
    assert odd.path.startswith("/data/out/.file.bin.tenant_job_7-")
    assert "/" not in odd.name and " " not in odd.name
    assert staging_location(dst, "tenant/job 8", 1).path != odd.path
    long = staging_location(parse_location("/d/" + "x" * 250), "j" * 200, 3)
    assert len(long.name) < 200


async def test_a_verified_attempt_lands_under_the_final_name_only(tmp_path: Path) -> None:
    src, sha = _source(tmp_path)
    dst = tmp_path / "out" / "copy.bin"
    seen: list[TransferProgress] = []
    async with TransferEngine() as engine:
        outcome = await run_attempt(engine, _assign(src, dst, checksum=sha), seen.append)
    assert isinstance(outcome, AttemptSucceeded)
    assert (outcome.size, outcome.sha256) == (SIZE, sha)
    assert dst.read_bytes() == src.read_bytes()
    assert _hidden(dst.parent) == []
    assert seen and seen[-1].bytes_done == SIZE


async def test_two_attempts_of_one_job_at_once_do_not_clash(tmp_path: Path) -> None:
    """A partitioned agent's attempt 1 and another agent's attempt 2 write the same
    destination at the same time: each writes its own staging file; one places the file, the
    other finds the very bytes it verified; both succeed and the file is whole."""
    src, sha = _source(tmp_path)
    dst = tmp_path / "out" / "shared.bin"
    outcomes: dict[int, object] = {}
    slow = {"bandwidth_limit": 512 * 1024}

    async def attempt(number: int) -> None:
        async with TransferEngine(protocol_options={"file": {"chunk_size": 32 * 1024}}) as engine:
            outcomes[number] = await run_attempt(
                engine, _assign(src, dst, number, **slow), _ignore
            )

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, 1)
            tg.start_soon(attempt, 2)
            # Both staging files exist at once: the attempts really overlap.
            with anyio.fail_after(5):
                while len([n for n in _hidden_or_empty(dst.parent) if "quorus-attempt" in n]) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
    for number in (1, 2):
        outcome = outcomes[number]
        assert isinstance(outcome, AttemptSucceeded), outcome
        assert outcome.sha256 == sha
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
    assert _hidden(dst.parent) == []


def _hidden_or_empty(directory: Path) -> list[str]:
    return _hidden(directory) if directory.exists() else []


async def test_an_existing_different_destination_fails_under_policy_fail(tmp_path: Path) -> None:
    src, _ = _source(tmp_path)
    dst = tmp_path / "taken.bin"
    dst.write_bytes(b"someone else's file")
    async with TransferEngine() as engine:
        outcome = await run_attempt(engine, _assign(src, dst), _ignore)
    assert isinstance(outcome, AttemptFailedWith)
    assert outcome.error_type == "DestinationExistsError"
    assert outcome.retryable is False
    assert dst.read_bytes() == b"someone else's file"
    assert _hidden(tmp_path) == []


async def test_a_later_attempt_accepts_what_an_earlier_one_placed_under_policy_fail(
    tmp_path: Path,
) -> None:
    src, sha = _source(tmp_path)
    dst = tmp_path / "placed.bin"
    async with TransferEngine() as engine:
        first = await run_attempt(engine, _assign(src, dst, attempt=1), _ignore)
        # The first attempt's agent died before reporting; the job runs again.
        second = await run_attempt(engine, _assign(src, dst, attempt=2), _ignore)
        dst.write_bytes(b"changed since")
        third = await run_attempt(engine, _assign(src, dst, attempt=3), _ignore)
    assert isinstance(first, AttemptSucceeded) and isinstance(second, AttemptSucceeded)
    assert second.sha256 == sha
    assert isinstance(third, AttemptFailedWith)
    assert third.error_type == "DestinationExistsError"
    assert dst.read_bytes() == b"changed since"
    assert _hidden(tmp_path) == []


async def test_skip_same_keeps_an_identical_destination(tmp_path: Path) -> None:
    src, sha = _source(tmp_path)
    dst = tmp_path / "same.bin"
    dst.write_bytes(src.read_bytes())
    before = dst.stat().st_mtime_ns
    async with TransferEngine() as engine:
        outcome = await run_attempt(
            engine, _assign(src, dst, overwrite=OverwritePolicy.SKIP_SAME), _ignore
        )
    assert isinstance(outcome, AttemptSucceeded)
    assert (outcome.sha256, outcome.size) == (sha, SIZE)
    assert dst.stat().st_mtime_ns == before


async def test_overwrite_replaces_an_existing_destination(tmp_path: Path) -> None:
    src, sha = _source(tmp_path)
    dst = tmp_path / "old.bin"
    dst.write_bytes(b"old")
    async with TransferEngine() as engine:
        outcome = await run_attempt(
            engine, _assign(src, dst, overwrite=OverwritePolicy.OVERWRITE), _ignore
        )
    assert isinstance(outcome, AttemptSucceeded)
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha


async def test_a_checksum_mismatch_fails_and_leaves_nothing(tmp_path: Path) -> None:
    src, _ = _source(tmp_path)
    dst = tmp_path / "out" / "bad.bin"
    async with TransferEngine() as engine:
        outcome = await run_attempt(engine, _assign(src, dst, checksum="0" * 64), _ignore)
    assert isinstance(outcome, AttemptFailedWith)
    assert outcome.error_type == "ChecksumMismatchError"
    assert outcome.retryable is False
    assert not dst.exists()
    assert _hidden(dst.parent) == []


async def test_a_cancelled_attempt_removes_its_own_files(tmp_path: Path) -> None:
    src, _ = _source(tmp_path)
    dst = tmp_path / "out" / "aborted.bin"
    other = tmp_path / "out" / ".aborted.bin.job-7.a9.quorus-attempt"  # another attempt's
    other.parent.mkdir()
    other.write_bytes(b"not ours")
    async with TransferEngine(protocol_options={"file": {"chunk_size": 16 * 1024}}) as engine:
        with anyio.move_on_after(0.3):
            await run_attempt(engine, _assign(src, dst, bandwidth_limit=256 * 1024), _ignore)
            pytest.fail("the attempt should still have been running")
    assert not dst.exists()
    assert _hidden(dst.parent) == [other.name]


def test_retryable_follows_the_error_class() -> None:
    assert is_retryable("TransientError") is True
    assert is_retryable("DestinationBusyError") is True
    assert is_retryable("NotFoundError") is False
    assert is_retryable("ConfigurationError") is False
    assert is_retryable("SomePluginsOwnError") is True


def test_protocol_options_by_scheme() -> None:
    assert protocol_options({"sftp.known_hosts": "/k", "sftp.user": "u", "http.x": "1"}) == {
        "sftp": {"known_hosts": "/k", "user": "u"}, "http": {"x": "1"},
    }
    with pytest.raises(ConfigurationError, match=r"SCHEME\.KEY"):
        protocol_options({"nodot": "1"})


def test_protocol_options_nest_on_further_dots_as_the_cli_does() -> None:
    assert protocol_options({"http.headers.X-Team": "data", "http.headers.X-Run": "7",
                             "http.timeout": "30"}) == {
        "http": {"headers": {"X-Team": "data", "X-Run": "7"}, "timeout": "30"},
    }
    for clash in ({"http.headers": "x", "http.headers.X-Team": "data"},
                  {"http.headers.X-Team": "data", "http.headers": "x"}):
        with pytest.raises(ConfigurationError, match="both as a value and as a group"):
            protocol_options(clash)


def test_requests_carry_size_range_mode_directories_and_streams(tmp_path: Path) -> None:
    from quorus.core.agent.attempt import build_request

    assign = Assign("job-8", 1, str(tmp_path / "a"), str(tmp_path / "b"), TransferOptions(
        size_min=10, size_max=2000, mode=0o640, create_directories=False, streams=3))
    request = build_request(assign, parse_location(str(tmp_path / "b")), staged=True)
    assert request.size is not None and (request.size.min, request.size.max) == (10, 2000)
    assert request.mode == 0o640 and request.create_directories is False
    assert request.streams == 3
    exact = Assign("job-9", 1, str(tmp_path / "a"), str(tmp_path / "b"),
                   TransferOptions(size=5, size_min=1))
    sized = build_request(exact, parse_location(str(tmp_path / "b")), staged=True).size
    assert sized is not None and (sized.min, sized.max) == (5, 5)
