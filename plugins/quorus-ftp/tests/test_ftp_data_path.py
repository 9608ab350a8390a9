"""The data connection served from worker threads: whole blocks, cancellation that does not
wait for a blocked call, the socket's own timeouts, and the connection closed behind it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from quorus.core.errors import TransientError
from quorus.core.testing import payload_bytes
from quorus.core.uri import parse_location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.streams import FtpReadStream, FtpWriteStream
from quorus.protocols.ftp.testing import VsftpdServer, vsftpd_available

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


@pytest.fixture(params=[False, True], ids=["ftp", "ftps"])
def slow(request: pytest.FixtureRequest, server_home: Path) -> Iterator[VsftpdServer]:
    """A server of the test's own that moves 1000 bytes per second per session: it sends or
    takes one 64 KiB buffer and then sleeps for about a minute."""
    reason = vsftpd_available()
    if reason is not None:
        pytest.skip(reason)
    with VsftpdServer(
        server_home / f"slow-{uuid.uuid4().hex[:8]}", tls=request.param, max_rate=1000
    ) as server:
        yield server


def _put(server: VsftpdServer, name: str, data: bytes) -> None:
    path = server.files / name
    path.write_bytes(data)
    os.chown(path, server.uid, server.uid)


async def _write_blocks(stream: FtpWriteStream, block: bytes, count: int) -> None:
    with anyio.fail_after(60):
        for _ in range(count):
            await stream.write(block)


async def test_reads_hand_over_whole_blocks(vsftpd: VsftpdServer) -> None:
    size = 3 * MIB + 12345
    data = payload_bytes(size, seed=31)
    _put(vsftpd, "blocks.bin", data)
    protocol = FtpProtocol(vsftpd.options(chunk_size=MIB))
    try:
        stream = await protocol.open_read(parse_location(vsftpd.url("/files/blocks.bin")), 100)
        async with stream:
            sizes, pieces = [], []
            while chunk := await stream.read():
                sizes.append(len(chunk))
                pieces.append(chunk)
                assert isinstance(chunk, bytes)
        assert sizes == [MIB, MIB, MIB, size - 100 - 3 * MIB]
        assert b"".join(pieces) == data[100:]
    finally:
        await protocol.aclose()


async def test_cancelled_read_returns_at_once_and_closes_the_data_connection(
    slow: VsftpdServer,
) -> None:
    _put(slow, "slow.bin", payload_bytes(2 * MIB, seed=32))
    protocol = FtpProtocol(slow.options(timeout=120))
    try:
        stream = await protocol.open_read(parse_location(slow.url("/files/slow.bin")))
        assert isinstance(stream, FtpReadStream)
        started = time.monotonic()
        with anyio.move_on_after(1.0) as scope:
            await stream.read()  # a 1 MiB block the server sends over ~20 minutes
        assert scope.cancelled_caught
        assert time.monotonic() - started < 5
        assert stream._channel.data.closed
        # Closing waits for the server's reply, which a throttled vsftpd only sends when it
        # wakes: give up on it (the control connection is then dropped, not pooled).
        with anyio.move_on_after(1.0):
            await stream.aclose()
        logins = protocol.pool.logins
        with anyio.fail_after(30):
            info = await protocol.stat(parse_location(slow.url("/files/slow.bin")))
        assert info.size == 2 * MIB
        assert protocol.pool.logins == logins + 1
    finally:
        await protocol.aclose()


async def test_a_stalled_download_times_out_as_transient(slow: VsftpdServer) -> None:
    _put(slow, "stall.bin", payload_bytes(2 * MIB, seed=33))
    protocol = FtpProtocol(slow.options(timeout=1.5))
    try:
        stream = await protocol.open_read(parse_location(slow.url("/files/stall.bin")))
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            with anyio.fail_after(30):
                await stream.read()
        assert time.monotonic() - started < 20
        await stream.aclose()
    finally:
        await protocol.aclose()


async def test_a_stalled_upload_times_out_as_transient(slow: VsftpdServer) -> None:
    protocol = FtpProtocol(slow.options(timeout=1.5))
    block = payload_bytes(MIB, seed=34)
    try:
        stream = await protocol.open_write(parse_location(slow.url("/files/up-stall.bin")))
        assert isinstance(stream, FtpWriteStream)
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            await _write_blocks(stream, block, 64)  # far more than the socket buffers hold
        assert time.monotonic() - started < 40
        assert stream.finished
        await stream.abort()
    finally:
        await protocol.aclose()
