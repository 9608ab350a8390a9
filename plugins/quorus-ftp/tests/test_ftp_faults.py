"""Faults against a real vsftpd: each fails at once with a clear error and no retries, or is
retried and resumed when a retry can help (a server killed mid-transfer)."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import trustme
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
)
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import Location, parse_location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.testing import VsftpdServer

pytestmark = pytest.mark.anyio

#: Several attempts allowed, quickly: a test that must not retry proves it by attempts == 1.
RETRY = RetryPolicy(max_attempts=4, initial_delay=0.2, max_delay=1.0)


async def engine_transfer(
    source: str | Location, destination: str | Location, options: dict[str, object], **kwargs: object
) -> object:
    async with TransferEngine(protocol_options={"ftp": options, "ftps": options}) as engine:
        result = await engine.transfer(
            TransferRequest.create(source, destination, retry=RETRY, **kwargs))  # type: ignore[arg-type]
    return result


# --- credentials and certificates ------------------------------------------------------------


async def test_wrong_password_fails_once_without_retry(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    (ftp_dir[0] / "a.bin").write_bytes(b"data")
    source = ftp_dir[1].with_path(ftp_dir[1].path + "/a.bin")
    result = await engine_transfer(
        source, str(tmp_path / "a.bin"), vsftpd.options(password="not-it"))
    assert result.status is TransferStatus.FAILED  # type: ignore[attr-defined]
    assert result.error_type == "AuthenticationError"  # type: ignore[attr-defined]
    assert result.attempts == 1  # type: ignore[attr-defined]
    assert "login refused" in result.error  # type: ignore[attr-defined]
    assert not (tmp_path / "a.bin").exists()


async def test_unknown_user_is_an_authentication_error(vsftpd: VsftpdServer) -> None:
    async with FtpProtocol({"username": "nobody-here", "password": "x"}) as protocol:
        with pytest.raises(AuthenticationError) as excinfo:
            await protocol.stat(parse_location(vsftpd.url("/files")))
    assert not excinfo.value.retryable


async def test_anonymous_login_reads_but_cannot_write(vsftpd: VsftpdServer) -> None:
    name = f"anon-{uuid.uuid4().hex}.txt"
    (vsftpd.files / name).write_bytes(b"public")
    location = parse_location(vsftpd.url(f"/files/{name}"))
    async with FtpProtocol() as protocol:
        async with await protocol.open_read(location) as stream:
            assert await stream.read() == b"public"
        with pytest.raises(PermissionDeniedError):
            await protocol.open_write(location.sibling("upload.txt"))


async def test_plain_ftp_to_a_tls_only_server_says_to_use_ftps(vsftpd_tls: VsftpdServer) -> None:
    location = parse_location(vsftpd_tls.url("/files").replace("ftps://", "ftp://"))
    async with FtpProtocol(vsftpd_tls.options()) as protocol:
        with pytest.raises(AuthenticationError, match="use ftps://"):
            await protocol.stat(location)


async def test_certificate_from_another_ca_is_refused(
    vsftpd_tls: VsftpdServer, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    location = parse_location(vsftpd_tls.url("/files"))
    async with FtpProtocol(vsftpd_tls.options(ca_bundle=str(other))) as protocol:
        with pytest.raises(TransferError, match="certificate could not be verified") as excinfo:
            await protocol.stat(location)
    assert not excinfo.value.retryable
    result = await engine_transfer(
        location.with_path("/files/x.bin"), str(tmp_path / "x.bin"),
        vsftpd_tls.options(ca_bundle=str(other)))
    assert result.attempts == 1  # type: ignore[attr-defined]
    assert result.status is TransferStatus.FAILED  # type: ignore[attr-defined]


async def test_default_trust_store_refuses_a_private_ca(vsftpd_tls: VsftpdServer) -> None:
    options = vsftpd_tls.options()
    del options["ca_bundle"]
    async with FtpProtocol(options) as protocol:
        with pytest.raises(TransferError, match="ca_bundle"):
            await protocol.stat(parse_location(vsftpd_tls.url("/files")))


async def test_verification_opt_out_works_and_is_logged(
    vsftpd_tls: VsftpdServer, ftps_dir: tuple[Path, Location], caplog: pytest.LogCaptureFixture
) -> None:
    (ftps_dir[0] / "v.bin").write_bytes(b"unverified but encrypted")
    options = vsftpd_tls.options(verify="false")
    del options["ca_bundle"]
    async with FtpProtocol(options) as protocol:
        location = ftps_dir[1].with_path(ftps_dir[1].path + "/v.bin")
        async with await protocol.open_read(location) as stream:
            assert await stream.read() == b"unverified but encrypted"
    assert any("verification is off" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


# --- paths -----------------------------------------------------------------------------------


async def test_missing_source_fails_once(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    source = ftp_dir[1].with_path(ftp_dir[1].path + "/absent.bin")
    result = await engine_transfer(source, str(tmp_path / "out.bin"), vsftpd.options())
    assert result.error_type == "NotFoundError"  # type: ignore[attr-defined]
    assert result.attempts == 1  # type: ignore[attr-defined]


async def test_unreadable_file_is_permission_denied(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location]
) -> None:
    secret = ftp_dir[0] / "root-only.bin"
    secret.write_bytes(b"not for the account")
    os.chown(secret, 0, 0)
    os.chmod(secret, 0o600)
    async with FtpProtocol(vsftpd.options()) as protocol:
        with pytest.raises(PermissionDeniedError, match="permission denied"):
            await protocol.open_read(ftp_dir[1].with_path(ftp_dir[1].path + "/root-only.bin"))


async def test_unwritable_directory_fails_once_and_leaves_nothing(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    locked = ftp_dir[0] / "locked"
    locked.mkdir()
    os.chown(locked, 0, 0)
    os.chmod(locked, 0o755)
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(100_000))
    target = ftp_dir[1].with_path(ftp_dir[1].path + "/locked/out.bin")
    result = await engine_transfer(str(source), target, vsftpd.options())
    assert result.status is TransferStatus.FAILED  # type: ignore[attr-defined]
    assert result.error_type == "PermissionDeniedError"  # type: ignore[attr-defined]
    assert result.attempts == 1  # type: ignore[attr-defined]
    assert list(locked.iterdir()) == []
    async with FtpProtocol(vsftpd.options()) as protocol:
        with pytest.raises(NotFoundError):
            await protocol.open_write(ftp_dir[1].with_path(ftp_dir[1].path + "/nodir/x.bin"))


@pytest.fixture
def full_disk(vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location]) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted inside the served tree, owned by the account."""
    mount = ftp_dir[0] / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,mode=755,uid={vsftpd.uid}", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing_server(f"cannot mount a small tmpfs for the disk-full test: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


async def test_full_disk_fails_once_and_leaves_nothing_under_the_name(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], full_disk: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(payload_bytes(3 * 1024 * 1024, seed=3))
    target = ftp_dir[1].with_path(ftp_dir[1].path + "/small/big.bin")
    result = await engine_transfer(str(source), target, vsftpd.options())
    assert result.status is TransferStatus.FAILED  # type: ignore[attr-defined]
    assert result.attempts == 1, result.error  # type: ignore[attr-defined]
    assert "disk is probably full" in result.error  # type: ignore[attr-defined]
    assert not (full_disk / "big.bin").exists()


# --- a server killed in the middle of a transfer ---------------------------------------------


@pytest.fixture
def doomed(server_home: Path) -> Iterator[VsftpdServer]:
    """A server of the test's own, to kill and restart, sending and receiving at 2 MiB/s
    per session (so that a kill lands mid-file rather than after the socket buffers)."""
    with VsftpdServer(
        server_home / f"doomed-{uuid.uuid4().hex[:8]}", max_rate=2 * 1024 * 1024
    ) as server:
        yield server


async def _kill_when(server: VsftpdServer, grown: Path, threshold: int) -> None:
    """Kill ``server`` once ``grown`` holds ``threshold`` bytes; restart it shortly after."""
    for _ in range(1500):  # 30 s at most
        if grown.exists() and grown.stat().st_size >= threshold:
            break
        await anyio.sleep(0.02)
    else:
        raise AssertionError(f"{grown} never reached {threshold} bytes")
    server.kill()
    await anyio.sleep(0.5)
    server.start()


async def test_download_resumes_after_the_server_is_killed(
    doomed: VsftpdServer, tmp_path: Path
) -> None:
    data = payload_bytes(6 * 1024 * 1024, seed=11)
    (doomed.files / "big.bin").write_bytes(data)
    out = tmp_path / "big.bin"
    partial = tmp_path / ".big.bin.quorus-partial"
    async with anyio.create_task_group() as tg:
        tg.start_soon(_kill_when, doomed, partial, 1024 * 1024)
        result = await engine_transfer(
            doomed.url("/files/big.bin"), str(out), doomed.options(),
            checksum="sha256:" + hashlib.sha256(data).hexdigest())
    assert result.status is TransferStatus.COMPLETED, result.error  # type: ignore[attr-defined]
    assert result.attempts >= 2  # type: ignore[attr-defined]
    assert result.resumed_from >= 1024 * 1024  # type: ignore[attr-defined]
    assert out.read_bytes() == data
    assert not partial.exists()


async def test_upload_resumes_after_the_server_is_killed(
    doomed: VsftpdServer, tmp_path: Path
) -> None:
    data = payload_bytes(6 * 1024 * 1024, seed=12)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    partial = doomed.files / ".up.bin.quorus-partial"
    async with anyio.create_task_group() as tg:
        tg.start_soon(_kill_when, doomed, partial, 1024 * 1024)
        result = await engine_transfer(
            str(source), doomed.url("/files/up.bin"), doomed.options(),
            checksum="sha256:" + hashlib.sha256(data).hexdigest())
    assert result.status is TransferStatus.COMPLETED, result.error  # type: ignore[attr-defined]
    assert result.attempts >= 2  # type: ignore[attr-defined]
    assert result.resumed_from > 0  # type: ignore[attr-defined]
    assert (doomed.files / "up.bin").read_bytes() == data
    assert not partial.exists()
