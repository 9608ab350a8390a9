"""Control connections are reused across operations, and ranged reads run concurrently."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest
from quorus.core.testing import payload_bytes
from quorus.core.uri import Location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.testing import VsftpdServer

pytestmark = pytest.mark.anyio


async def read_all(protocol: FtpProtocol, location: Location, offset: int = 0,
                   length: int | None = None) -> bytes:
    chunks = []
    async with await protocol.open_read(location, offset, length) as stream:
        while chunk := await stream.read():
            chunks.append(chunk)
    return b"".join(chunks)


async def test_sequential_operations_log_in_once(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location]
) -> None:
    data = payload_bytes(2 * 1024 * 1024, seed=31)
    (ftp_dir[0] / "p.bin").write_bytes(data)
    location = ftp_dir[1].with_path(ftp_dir[1].path + "/p.bin")
    async with FtpProtocol(vsftpd.options()) as protocol:
        for offset in (0, 1000, 2 * 1024 * 1024 - 10):
            assert await read_all(protocol, location, offset, 5000) == data[offset:offset + 5000]
            assert (await protocol.stat(location)).size == len(data)
        assert await read_all(protocol, location) == data
        assert protocol.pool.logins == 1


async def test_concurrent_ranged_reads_rebuild_the_file(
    vsftpd_tls: VsftpdServer, ftps_dir: tuple[Path, Location]
) -> None:
    data = payload_bytes(4 * 1024 * 1024 + 333, seed=32)
    (ftps_dir[0] / "r.bin").write_bytes(data)
    location = ftps_dir[1].with_path(ftps_dir[1].path + "/r.bin")
    parts: dict[int, bytes] = {}
    step = len(data) // 4 + 1

    async with FtpProtocol(vsftpd_tls.options(max_connections=4)) as protocol:
        async def fetch(offset: int) -> None:
            parts[offset] = await read_all(protocol, location, offset, step)

        for _ in range(2):  # the second round reuses the four logged-in connections
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for offset in range(0, len(data), step):
                        tg.start_soon(fetch, offset)
            rebuilt = b"".join(parts[offset] for offset in sorted(parts))
            assert hashlib.sha256(rebuilt).digest() == hashlib.sha256(data).digest()
        assert protocol.pool.logins == 4


async def test_listing_names_sizes_and_directories(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location]
) -> None:
    (ftp_dir[0] / "with space.txt").write_bytes(b"12345")
    async with FtpProtocol(vsftpd.options()) as protocol:
        await protocol.makedirs(ftp_dir[1].with_path(ftp_dir[1].path + "/a/b"))
        entries = {entry.name: entry for entry in await protocol.list(ftp_dir[1])}
        assert entries["with space.txt"].size == 5
        assert entries["a"].is_dir
        assert (await protocol.stat(ftp_dir[1].with_path(ftp_dir[1].path + "/a/b"))).is_dir
        info = await protocol.stat(ftp_dir[1].with_path(ftp_dir[1].path + "/with space.txt"))
        assert info.mtime is not None
        assert abs(info.mtime - (ftp_dir[0] / "with space.txt").stat().st_mtime) < 2


async def test_a_pooled_connection_the_server_dropped_is_replaced(server_home: Path) -> None:
    with VsftpdServer(server_home / "restarted") as server:
        (server.files / "f.bin").write_bytes(b"abc")
        location = Location("ftp", server.host, server.port, "/files/f.bin")
        async with FtpProtocol(server.options()) as protocol:
            assert (await protocol.stat(location)).size == 3
            server.kill()
            server.start()
            for _ in range(100):  # until the loop has seen the old connection close (<= 2 s)
                if protocol.pool._slots and all(
                    c.dropped() for slot in protocol.pool._slots.values() for c in slot.idle
                ):
                    break
                await anyio.sleep(0.02)
            assert (await protocol.stat(location)).size == 3
            assert protocol.pool.logins == 2


async def test_engine_reads_one_file_as_parallel_ranged_streams(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    from quorus.core import TransferEngine, TransferRequest, TransferStatus

    data = payload_bytes(6 * 1024 * 1024 + 77, seed=33)
    (ftp_dir[0] / "s.bin").write_bytes(data)
    source = ftp_dir[1].with_path(ftp_dir[1].path + "/s.bin")
    protocol = FtpProtocol(vsftpd.options())
    async with protocol, TransferEngine(
        protocols={"ftp": protocol}, stream_cutoff=1024 * 1024, stripe_size=1024 * 1024
    ) as engine:
        result = await engine.transfer(TransferRequest.create(
            source, str(tmp_path / "s.bin"), streams=3,
            checksum="sha256:" + hashlib.sha256(data).hexdigest()))
        assert result.status is TransferStatus.COMPLETED, result.error
        assert 2 <= protocol.pool.logins <= 3
    assert (tmp_path / "s.bin").read_bytes() == data
