"""Faults of a real OpenSSH server, and what the engine makes of them through the SFTP protocol.

Rejected credentials and host keys, missing files, refused permissions and a full disk fail
the transfer at once (one attempt, no retries); a server killed mid-transfer is retried with
backoff and the transfer continues from the partial file.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import asyncssh
import pytest
from quorus.core import (
    RetryPolicy,
    TransferEngine,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.errors import NotFoundError, PermissionDeniedError
from quorus.core.protocol import ProtocolOptions
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import parse_location
from quorus.protocols.sftp import SftpProtocol
from quorus.protocols.sftp.testing import OpenSshServer, SystemUser

pytestmark = pytest.mark.anyio

SIZE = 3 * 1024 * 1024 + 4321
DATA = payload_bytes(SIZE, seed=7)
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def transfer(
    source: str, destination: str, options: ProtocolOptions, **kwargs: object
) -> TransferResult:
    kwargs.setdefault("retry", FAST_RETRY)
    async with TransferEngine(protocol_options={"sftp": options}) as engine:
        return await engine.transfer(TransferRequest.create(source, destination, **kwargs))


def user_options(sshd: OpenSshServer, user: SystemUser, password: str) -> dict[str, object]:
    return {"username": user.name, "password": password, "known_hosts": str(sshd.known_hosts),
            "agent": False}


# --- credentials and host keys ---------------------------------------------------------------


async def test_wrong_password_fails_once_with_a_clear_message(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, tmp_path: Path
) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    options = user_options(sshd, system_user, "not-the-password")
    result = await transfer(sshd.url(str(remote_dir / "f.bin"), username=system_user.name),
                            str(tmp_path / "out.bin"), options)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"
    assert "rejected the credentials" in (result.error or "")
    assert not (tmp_path / "out.bin").exists()


async def test_wrong_key_fails_once(sshd: OpenSshServer, remote_dir: Path, tmp_path: Path) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    result = await transfer(sshd.url(str(remote_dir / "f.bin")), str(tmp_path / "out.bin"),
                            sshd.options(private_key=str(stranger)))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"


async def test_wrong_host_key_fails_once(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path
) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {impostor}\n")
    result = await transfer(sshd.url(str(remote_dir / "f.bin")), str(tmp_path / "out.bin"),
                            sshd.options(known_hosts=str(known_hosts)))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"
    assert "host key is not trusted" in (result.error or "")
    assert str(known_hosts) in (result.error or "")


async def test_unknown_host_and_missing_known_hosts_fail_once(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path
) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    url = sshd.url(str(remote_dir / "f.bin"))
    unknown = await transfer(url, str(tmp_path / "a.bin"), sshd.options(known_hosts=str(empty)))
    assert (unknown.status, unknown.attempts, unknown.error_type) == (
        TransferStatus.FAILED, 1, "AuthenticationError")
    absent = tmp_path / "no_such_known_hosts"
    missing = await transfer(url, str(tmp_path / "b.bin"), sshd.options(known_hosts=str(absent)))
    assert missing.status is TransferStatus.FAILED
    assert missing.attempts == 1
    assert str(absent) in (missing.error or "")
    assert "verify_host_key=false" in (missing.error or "")


async def test_host_key_check_opt_out_warns_every_time(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    options = sshd.options(known_hosts=str(tmp_path / "absent"), verify_host_key=False)
    with caplog.at_level(logging.WARNING, logger="quorus.protocols.sftp"):
        for name in ("one.bin", "two.bin"):
            result = await transfer(sshd.url(str(remote_dir / "f.bin")), str(tmp_path / name),
                                    options)
            assert result.status is TransferStatus.COMPLETED, result.error
            assert result.sha256 == sha256(DATA)
    warnings = [r for r in caplog.records if "host key verification is off" in r.getMessage()]
    assert len(warnings) == 2


# --- paths and permissions -------------------------------------------------------------------


async def test_missing_source_fails_once(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path
) -> None:
    result = await transfer(sshd.url(str(remote_dir / "absent.bin")), str(tmp_path / "o.bin"),
                            sshd.options())
    assert (result.status, result.attempts, result.error_type) == (
        TransferStatus.FAILED, 1, "NotFoundError")
    assert "absent.bin" in (result.error or "")
    async with SftpProtocol(sshd.options()) as protocol:
        with pytest.raises(NotFoundError):
            await protocol.open_read(parse_location(sshd.url(str(remote_dir / "absent.bin"))))


async def test_permission_denied_for_an_unprivileged_user(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, tmp_path: Path
) -> None:
    secret = remote_dir / "root-only.bin"
    secret.write_bytes(DATA)
    secret.chmod(0o600)
    locked = remote_dir / "locked"
    locked.mkdir()
    locked.chmod(0o755)  # owned by root: the user may look, not write
    (locked / "keep.bin").write_bytes(b"kept")
    options = user_options(sshd, system_user, system_user.password)
    down = await transfer(sshd.url(str(secret), username=system_user.name),
                          str(tmp_path / "o.bin"), options)
    assert (down.status, down.attempts, down.error_type) == (
        TransferStatus.FAILED, 1, "PermissionDeniedError")
    assert "permission denied" in (down.error or "")
    source = tmp_path / "in.bin"
    source.write_bytes(DATA)
    up = await transfer(str(source), sshd.url(str(locked / "up.bin"), username=system_user.name),
                        options)
    assert (up.status, up.attempts, up.error_type) == (
        TransferStatus.FAILED, 1, "PermissionDeniedError")
    assert [p.name for p in locked.iterdir()] == ["keep.bin"]
    async with SftpProtocol(options) as protocol:
        kept = parse_location(sshd.url(str(locked / "keep.bin"), username=system_user.name))
        with pytest.raises(PermissionDeniedError):
            await protocol.delete(kept)
    assert (locked / "keep.bin").exists()


@pytest.fixture
def small_disk(remote_dir: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted below the served directory (root only)."""
    mountpoint = remote_dir / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "quorus-test", str(mountpoint)],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        missing_server(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


async def test_full_disk_on_the_server_fails_once_without_a_final_file(
    sshd: OpenSshServer, small_disk: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(DATA)
    result = await transfer(str(source), sshd.url(str(small_disk / "big.bin")), sshd.options())
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert "full disk" in (result.error or "")
    assert not (small_disk / "big.bin").exists()


# --- a server killed mid-transfer ------------------------------------------------------------


@pytest.fixture
def own_sshd() -> Iterator[OpenSshServer]:
    """A server of this test alone, which it may kill and restart."""
    root = Path(tempfile.mkdtemp(prefix="quorus-sftp-kill-"))
    try:
        with OpenSshServer(root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def kill_when(server: OpenSshServer, ready: Callable[[], bool]) -> None:
    """Kill ``server`` once ``ready()`` (polled, bounded), then bring it back shortly after."""
    for _ in range(1500):  # at most 30 s
        if ready():
            break
        await anyio.sleep(0.02)
    else:
        pytest.fail("the transfer never got halfway")
    server.kill()
    await anyio.sleep(0.3)  # the next attempt meets a refused connection first
    await anyio.to_thread.run_sync(server.start)


async def transfer_through_a_crash(
    server: OpenSshServer, source: str, destination: str, partial: Path
) -> TransferResult:
    retry = RetryPolicy(max_attempts=8, initial_delay=0.2, max_delay=1.0, jitter=0)
    outcome: list[TransferResult] = []

    async def run() -> None:
        # 4 MB/s: the 3 MiB file takes most of a second, so the kill lands mid-file.
        # Few small requests in flight, so little of the file is buffered when the server dies.
        options = server.options(block_size=32768, max_requests=2)
        outcome.append(await transfer(source, destination, options, retry=retry,
                                      bandwidth_limit=4_000_000, checksum=f"sha256:{sha256(DATA)}"))

    def half_written() -> bool:
        return partial.exists() and partial.stat().st_size >= 1024 * 1024

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await kill_when(server, half_written)
    return outcome[0]


async def test_download_survives_a_server_crash(own_sshd: OpenSshServer, tmp_path: Path) -> None:
    (own_sshd.files / "f.bin").write_bytes(DATA)
    out = tmp_path / "out.bin"
    result = await transfer_through_a_crash(
        own_sshd, own_sshd.url(str(own_sshd.files / "f.bin")), str(out),
        tmp_path / ".out.bin.quorus-partial")
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts >= 2
    assert result.resumed_from >= 1024 * 1024
    assert result.sha256 == sha256(DATA)
    assert out.read_bytes() == DATA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


async def test_upload_survives_a_server_crash(own_sshd: OpenSshServer, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(DATA)
    target = own_sshd.files / "up.bin"
    result = await transfer_through_a_crash(
        own_sshd, str(source), own_sshd.url(str(target)),
        own_sshd.files / ".up.bin.quorus-partial")
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts >= 2
    assert result.resumed_from > 0
    assert target.read_bytes() == DATA
    assert sorted(p.name for p in own_sshd.files.iterdir()) == ["up.bin"]


# --- connection reuse ------------------------------------------------------------------------


async def test_one_login_serves_many_transfers_and_concurrent_ranges(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path
) -> None:
    (remote_dir / "f.bin").write_bytes(DATA)
    location = parse_location(sshd.url(str(remote_dir / "f.bin")))
    async with SftpProtocol(sshd.options()) as protocol:
        async with TransferEngine(protocols={"sftp": protocol}) as engine:
            for name in ("one.bin", "two.bin"):
                result = await engine.transfer(
                    TransferRequest.create(location, str(tmp_path / name)))
                assert result.sha256 == sha256(DATA), result.error
        parts: dict[int, bytes] = {}
        step = SIZE // 4 + 1

        async def fetch(start: int) -> None:
            chunks = []
            async with await protocol.open_read(location, start, step) as stream:
                while chunk := await stream.read():
                    chunks.append(chunk)
            parts[start] = b"".join(chunks)

        async with anyio.create_task_group() as tg:
            for start in range(0, SIZE, step):
                tg.start_soon(fetch, start)
        assert protocol.logins == 1
    assert b"".join(parts[start] for start in sorted(parts)) == DATA


async def test_a_lost_connection_is_replaced(sshd: OpenSshServer, remote_dir: Path) -> None:
    (remote_dir / "f.bin").write_bytes(b"small")
    location = parse_location(sshd.url(str(remote_dir / "f.bin")))
    async with SftpProtocol(sshd.options()) as protocol:
        assert (await protocol.stat(location)).size == 5
        session = await protocol._session(location)
        session.connection.abort()
        with anyio.fail_after(5):
            await session.connection.wait_closed()
        assert (await protocol.stat(location)).size == 5
        assert protocol.logins == 2

