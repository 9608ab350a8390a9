"""The SMB protocol's own behaviour on a real smbd: pipelining, block sizes, credits,
concurrent ranged reads on one session, directories, renames and options."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from quorus.core.errors import (
    ConfigurationError,
    InvalidURIError,
    NotAFileError,
    UnsupportedOperationError,
)
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import Location, parse_location
from quorus.protocols.smb import SmbProtocol
from quorus.protocols.smb.streams import SmbReadStream, SmbWriteStream
from quorus.protocols.smb.testing import SambaServer, samba_available

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
DATA = payload_bytes(20 * MIB + 4321, seed=31)


def at(base: Location, name: str) -> Location:
    return base.with_path(f"{base.path}/{name}")


async def read_range(protocol: SmbProtocol, location: Location, offset: int = 0,
                     length: int | None = None) -> bytes:
    chunks = []
    async with await protocol.open_read(location, offset, length) as stream:
        for _ in range(10_000):  # bounded: far more chunks than the test files have
            chunk = await stream.read()
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


async def test_reads_keep_many_requests_in_flight(
    share_dir: tuple[Path, Location], smb_options: dict[str, str]
) -> None:
    directory, base = share_dir
    (directory / "big.bin").write_bytes(DATA)
    async with SmbProtocol({**smb_options, "max_requests": 12}) as protocol:
        stream = await protocol.open_read(at(base, "big.bin"))
        assert isinstance(stream, SmbReadStream)
        async with stream:
            first = await stream.read()
            assert stream.in_flight == 12  # refilled right after the first response
            rest = [first]
            for _ in range(100):
                chunk = await stream.read()
                if not chunk:
                    break
                rest.append(chunk)
    assert hashlib.sha256(b"".join(rest)).digest() == hashlib.sha256(DATA).digest()


async def test_writes_keep_many_requests_in_flight(
    share_dir: tuple[Path, Location], smb_options: dict[str, str]
) -> None:
    directory, base = share_dir
    async with SmbProtocol({**smb_options, "max_requests": 8}) as protocol:
        stream = await protocol.open_write(at(base, "up.bin"))
        assert isinstance(stream, SmbWriteStream)
        async with stream:
            await stream.write(DATA[: 6 * MIB])
            assert stream.in_flight == 6  # six 1 MiB WRITEs sent, none awaited yet
            await stream.write(DATA[6 * MIB:])
            assert stream.in_flight == 8
            await stream.commit()
            assert stream.in_flight == 0
    assert (directory / "up.bin").read_bytes() == DATA


@pytest.mark.parametrize("block", [64 * 1024, 8 * MIB])
async def test_smallest_and_largest_blocks(
    share_dir: tuple[Path, Location], smb_options: dict[str, str], block: int
) -> None:
    directory, base = share_dir
    async with SmbProtocol({**smb_options, "block_size": block}) as protocol:
        writer = await protocol.open_write(at(base, "blocks.bin"))
        assert isinstance(writer, SmbWriteStream) and writer.block == block
        async with writer:
            await writer.write(DATA)
            await writer.commit()
        reader = await protocol.open_read(at(base, "blocks.bin"), 12345)
        assert isinstance(reader, SmbReadStream) and reader.block == block
        await reader.aclose()
        assert await read_range(protocol, at(base, "blocks.bin"), 12345) == DATA[12345:]
    assert (directory / "blocks.bin").read_bytes() == DATA


@pytest.fixture(scope="module")
def small_io_samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    with SambaServer(tmp_path_factory.mktemp("small-io"), max_io=256 * 1024) as server:
        yield server


async def test_blocks_are_capped_at_the_negotiated_maximum(
    small_io_samba: SambaServer,
) -> None:
    (small_io_samba.share_path() / "capped.bin").write_bytes(DATA[: 3 * MIB])
    options = {"username": small_io_samba.username, "password": small_io_samba.password,
               "block_size": 8 * MIB}
    location = parse_location(small_io_samba.url("capped.bin"))
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(location)
        assert security.max_read == security.max_write == 256 * 1024
        reader = await protocol.open_read(location)
        assert isinstance(reader, SmbReadStream) and reader.block == 256 * 1024
        await reader.aclose()
        assert await read_range(protocol, location) == DATA[: 3 * MIB]


async def test_concurrent_ranged_reads_share_one_session_beyond_the_credits(
    share_dir: tuple[Path, Location], smb_options: dict[str, str]
) -> None:
    """Eight ranges read at once with 32 x 1 MiB requests each would need 4,096 credits;
    the session holds about 2,048, so streams wait for credits instead of failing."""
    directory, base = share_dir
    (directory / "ranged.bin").write_bytes(DATA)
    parts: dict[int, bytes] = {}
    step = len(DATA) // 8 + 1
    async with SmbProtocol({**smb_options, "max_requests": 32}) as protocol:
        async def fetch(start: int) -> None:
            parts[start] = await read_range(protocol, at(base, "ranged.bin"), start, step)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for start in range(0, len(DATA), step):
                    tg.start_soon(fetch, start)
        assert len(protocol._pool._sessions) == 1
    assert b"".join(parts[start] for start in sorted(parts)) == DATA


async def test_stale_pooled_session_is_replaced_after_a_server_restart(tmp_path: Path) -> None:
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    with SambaServer(tmp_path / "samba") as server:
        (server.share_path() / "f.bin").write_bytes(b"still here")
        location = parse_location(server.url("f.bin"))
        async with SmbProtocol({"username": server.username, "password": server.password}) as protocol:
            assert (await protocol.stat(location)).size == 10
            await anyio.to_thread.run_sync(server.kill)
            await anyio.to_thread.run_sync(server.start)
            assert (await protocol.stat(location)).size == 10
            assert await read_range(protocol, location) == b"still here"


async def test_directories(share_dir: tuple[Path, Location], smb: SmbProtocol) -> None:
    directory, base = share_dir
    await smb.makedirs(at(base, "a/b/c"))
    await smb.makedirs(at(base, "a/b/c"))  # existing directories are fine
    assert (directory / "a" / "b" / "c").is_dir()
    (directory / "a" / "file.txt").write_bytes(b"12345")
    entries = {entry.name: entry for entry in await smb.list(at(base, "a"))}
    assert set(entries) == {"b", "file.txt"}
    assert entries["b"].is_dir
    assert entries["file.txt"].size == 5
    assert entries["file.txt"].location.path == f"{base.path}/a/file.txt"
    info = await smb.stat(at(base, "a/file.txt"))
    assert info.mtime is not None and abs(info.mtime - (directory / "a" / "file.txt").stat().st_mtime) < 2
    with pytest.raises(NotAFileError):
        await read_range(smb, at(base, "a/b"))


async def test_many_entries_are_listed(share_dir: tuple[Path, Location], smb: SmbProtocol) -> None:
    directory, base = share_dir
    names = {f"entry-with-a-long-name-{index:05d}.dat" for index in range(3000)}
    for name in names:
        (directory / name).touch()
    assert {entry.name for entry in await smb.list(base)} == names


async def test_rename_across_shares_is_refused(samba: SambaServer, smb: SmbProtocol) -> None:
    with pytest.raises(UnsupportedOperationError, match="within one share"):
        await smb.rename(parse_location(samba.url("a.bin")),
                         parse_location(samba.url("a.bin", share="readonly")))


async def test_resume_beyond_the_partial_is_refused(
    share_dir: tuple[Path, Location], smb: SmbProtocol
) -> None:
    directory, base = share_dir
    (directory / "short.bin").write_bytes(b"0123456789")
    with pytest.raises(Exception, match="only 10 bytes"):
        await smb.open_write(at(base, "short.bin"), 100)


def test_locations_are_checked() -> None:
    protocol = SmbProtocol()
    for text in ("smb://host/", "smb://host/share", "smb://host/share/../etc/passwd"):
        with pytest.raises(InvalidURIError):
            protocol.check_location(parse_location(text))
    protocol.check_location(parse_location("smb://host:4445/share/dir/file.bin"))


@pytest.mark.parametrize("options", [
    {"signing": "sometimes"}, {"auth": "basic"}, {"dialect": "1.0"}, {"block_size": "1"},
    {"block_size": str(64 * MIB)}, {"max_requests": "0"}, {"encrypt": "maybe"}, {"passwd": "x"},
])
def test_bad_options_are_configuration_errors(options: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        SmbProtocol(options)


async def test_engine_striped_download_over_one_session(
    share_dir: tuple[Path, Location], smb_options: dict[str, str], tmp_path: Path
) -> None:
    """The engine's parallel ranged streams read one file through one pooled session."""
    from quorus.core import TransferEngine, TransferRequest, TransferStatus

    directory, base = share_dir
    (directory / "striped.bin").write_bytes(DATA)
    digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
    async with TransferEngine(protocol_options={"smb": smb_options}, stream_cutoff=MIB,
                              stripe_size=2 * MIB) as engine:
        result = await engine.transfer(TransferRequest.create(
            at(base, "striped.bin"), str(tmp_path / "striped.out"), checksum=digest, streams=4))
        protocol = engine.protocol(base)
        assert isinstance(protocol, SmbProtocol)
        assert len(protocol._pool._sessions) == 1
    assert result.status is TransferStatus.COMPLETED, result.error
    assert (tmp_path / "striped.out").read_bytes() == DATA
