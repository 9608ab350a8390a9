"""Faults of a real smbd, and what the engine makes of them through the SMB protocol.

Each test that kills or fills a server starts its own :class:`SambaServer`; the others use
the session's server. Transfers go through the real :class:`~quorus.core.TransferEngine`.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferResult, TransferStatus
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import Location
from quorus.protocols.smb.testing import READ_ONLY_SHARE, SambaServer, samba_available

pytestmark = pytest.mark.anyio

SIZE = 4 * 1024 * 1024 + 999
DATA = payload_bytes(SIZE, seed=11)
DIGEST = hashlib.sha256(DATA).hexdigest()
RETRY = RetryPolicy(max_attempts=8, initial_delay=0.2, max_delay=1.0, jitter=0)


async def transfer(source: str, destination: str, options: dict[str, str],
                   **kwargs: object) -> TransferResult:
    async with TransferEngine(protocol_options={"smb": options}) as engine:
        request = TransferRequest.create(source, destination, **kwargs)
        return await engine.transfer(request)


@pytest.fixture
def own_samba(tmp_path: Path) -> Iterator[SambaServer]:
    """A server of this test's own, which it may kill and restart."""
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    with SambaServer(tmp_path / "samba") as server:
        yield server


async def kill_and_restart_when(server: SambaServer, grown: Path, at_least: int) -> None:
    """Kill smbd (with its client processes) once ``grown`` has ``at_least`` bytes, then
    bring it back on the same port a moment later."""
    for _ in range(1500):  # polls a file another task writes: at most 30 s
        if grown.exists() and grown.stat().st_size >= at_least:
            break
        await anyio.sleep(0.02)
    else:
        raise AssertionError(f"{grown} never reached {at_least} bytes")
    await anyio.to_thread.run_sync(server.kill)
    await anyio.sleep(0.5)
    await anyio.to_thread.run_sync(server.start)


async def test_server_killed_mid_download_resumes_from_the_partial(
    own_samba: SambaServer, tmp_path: Path
) -> None:
    (own_samba.share_path() / "big.bin").write_bytes(DATA)
    out = tmp_path / "out.bin"
    partial = tmp_path / ".out.bin.quorus-partial"
    options = {"username": own_samba.username, "password": own_samba.password}
    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_and_restart_when, own_samba, partial, 1024 * 1024)
        result = await transfer(own_samba.url("big.bin"), str(out), options,
                                retry=RETRY, bandwidth_limit=4 * 1024 * 1024,
                                checksum=f"sha256:{DIGEST}")
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts >= 2
    assert result.resumed_from >= 1024 * 1024
    assert result.sha256 == DIGEST
    assert out.read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "samba") == ["out.bin"]


async def test_server_killed_mid_upload_resumes_from_the_partial(
    own_samba: SambaServer, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    share = own_samba.share_path()
    partial = share / "up" / ".out.bin.quorus-partial"
    options = {"username": own_samba.username, "password": own_samba.password}
    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_and_restart_when, own_samba, partial, 1024 * 1024)
        result = await transfer(str(source), own_samba.url("up/out.bin"), options,
                                retry=RETRY, bandwidth_limit=4 * 1024 * 1024,
                                checksum=f"sha256:{DIGEST}")
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts >= 2
    assert result.resumed_from >= 1024 * 1024
    assert (share / "up" / "out.bin").read_bytes() == DATA
    assert sorted(p.name for p in (share / "up").iterdir()) == ["out.bin"]


async def test_wrong_password_fails_at_once_without_retries(
    samba: SambaServer, share_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    directory, base = share_dir
    (directory / "f.bin").write_bytes(b"guarded")
    started = time.monotonic()
    result = await transfer(f"{base.url()}/f.bin", str(tmp_path / "out.bin"),
                            {"username": samba.username, "password": "wrong-password"},
                            retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"
    assert "rejected the logon" in (result.error or "")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out.bin").exists()


async def test_unknown_user_fails_at_once(samba: SambaServer, tmp_path: Path) -> None:
    result = await transfer(samba.url("x.bin"), str(tmp_path / "out.bin"),
                            {"username": "nobody-here", "password": "x"}, retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"


async def test_missing_file_fails_once_without_leaving_a_file(
    samba: SambaServer, share_dir: tuple[Path, Location], smb_options: dict[str, str],
    tmp_path: Path,
) -> None:
    _, base = share_dir
    result = await transfer(f"{base.url()}/missing.bin", str(tmp_path / "out.bin"), smb_options,
                            retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "NotFoundError"
    assert "missing.bin" in (result.error or "")
    assert list(tmp_path.iterdir()) == []


async def test_missing_share_is_not_found(
    samba: SambaServer, smb_options: dict[str, str], tmp_path: Path
) -> None:
    result = await transfer(samba.url("x.bin", share="no-such-share"), str(tmp_path / "out.bin"),
                            smb_options, retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "NotFoundError"
    assert "no share of that name" in (result.error or "")


async def test_write_to_a_read_only_share_is_permission_denied(
    samba: SambaServer, smb_options: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"not welcome")
    result = await transfer(str(source), samba.url("denied.bin", share=READ_ONLY_SHARE),
                            smb_options, retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "PermissionDeniedError"
    assert "access denied" in (result.error or "")
    assert not (samba.share_path(READ_ONLY_SHARE) / "denied.bin").exists()


async def test_unreachable_server_is_transient_and_retried(tmp_path: Path) -> None:
    from quorus.core.testing import free_port

    port = free_port()  # nothing listens there
    result = await transfer(f"smb://127.0.0.1:{port}/data/x.bin", str(tmp_path / "out.bin"),
                            {"username": "u", "password": "p", "connect_timeout": "2"},
                            retry=RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=0))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 3
    assert result.error_type == "TransientError"
    assert "cannot connect" in (result.error or "")


@pytest.fixture
def small_share(tmp_path: Path) -> Iterator[SambaServer]:
    """A server with a share ``small`` on a 2 MiB tmpfs that the test mounts."""
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, check=False, timeout=30)
    if mounted.returncode != 0:
        missing_server(f"cannot mount a small tmpfs for the disk-full test: {mounted.stderr}")
    try:
        with SambaServer(tmp_path / "samba", extra_shares={"small": mount_point}) as server:
            yield server
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


async def test_disk_full_fails_once_without_a_file_under_the_final_name(
    small_share: SambaServer, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(DATA)
    options = {"username": small_share.username, "password": small_share.password}
    result = await transfer(str(source), small_share.url("full.bin", share="small"), options,
                            retry=RETRY)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "TransferError"
    assert "no space left" in (result.error or "")
    assert not (small_share.share_path("small") / "full.bin").exists()
