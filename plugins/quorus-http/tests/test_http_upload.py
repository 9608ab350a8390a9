"""Streaming uploads: through the engine to nginx, aborts that leave nothing, bounded buffering."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from quorus.core import TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import AuthenticationError, TransferError
from quorus.core.protocols.memory import memory_store
from quorus.core.testing import payload_bytes
from quorus.core.uri import parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME, NginxServer
from quorus.protocols.http.testing.scripted import Handler, scripted_server, wait_until

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
DATA = payload_bytes(7 * MIB + 333, seed=7)


def nginx_options(nginx: NginxServer, **extra: object) -> dict[str, object]:
    return {"username": USERNAME, "password": PASSWORD, "ca_bundle": str(nginx.ca_bundle),
            **extra}


@pytest.mark.parametrize("webdav", [False, True], ids=["put", "webdav"])
async def test_engine_uploads_to_https_and_reads_back(
    nginx: NginxServer, dav_dir: tuple[Path, str], webdav: bool
) -> None:
    directory, url_path = dav_dir
    store = f"upload-{uuid.uuid4().hex}"
    memory_store(store).put("/in/data.bin", DATA)
    remote = nginx.url(f"{url_path}/nested/data.bin", tls=True)
    digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
    options = {"https": nginx_options(nginx, webdav=webdav)}
    async with TransferEngine(protocol_options=options) as engine:
        up = await engine.transfer(
            TransferRequest.create(f"memory://{store}/in/data.bin", remote, checksum=digest))
        down = await engine.transfer(
            TransferRequest.create(remote, f"memory://{store}/back/data.bin", checksum=digest))
    assert up.status is TransferStatus.COMPLETED, up.error
    assert down.status is TransferStatus.COMPLETED, down.error
    assert (directory / "nested" / "data.bin").read_bytes() == DATA
    assert memory_store(store).get("/back/data.bin") == DATA
    # With WebDAV the engine wrote a partial name and renamed it; nothing else remains.
    assert sorted(p.name for p in (directory / "nested").iterdir()) == ["data.bin"]


@pytest.mark.parametrize("written", [3 * MIB, len(DATA)], ids=["half", "all-but-commit"])
@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "chunked"])
async def test_aborted_upload_leaves_nothing(
    nginx: NginxServer, dav_dir: tuple[Path, str], written: int, announce: bool
) -> None:
    directory, url_path = dav_dir
    location = parse_location(nginx.url(f"{url_path}/aborted.bin"))
    async with HttpProtocol(nginx_options(nginx)) as protocol:
        size_hint = len(DATA) if announce else None
        async with await protocol.open_write(location, size_hint=size_hint) as stream:
            for start in range(0, written, MIB):
                await stream.write(DATA[start : min(start + MIB, written)])
            await stream.abort()
        assert stream.finished
        # The connection was dropped, never finished: the server stores nothing, and the
        # protocol still works for the next request.
        async with await protocol.open_write(location.sibling("after.bin")) as stream:
            await stream.write(b"fine")
            await stream.commit()
    assert sorted(p.name for p in directory.iterdir()) == ["after.bin"]


async def test_leaving_the_block_without_commit_aborts(
    nginx: NginxServer, dav_dir: tuple[Path, str]
) -> None:
    directory, url_path = dav_dir
    location = parse_location(nginx.url(f"{url_path}/dropped.bin"))

    async def fail_midway(protocol: HttpProtocol) -> None:
        async with await protocol.open_write(location, size_hint=2 * MIB) as stream:
            await stream.write(DATA[: 2 * MIB])
            raise RuntimeError("boom")

    async with HttpProtocol(nginx_options(nginx)) as protocol:
        with pytest.raises(RuntimeError, match="boom"):
            await fail_midway(protocol)
    assert list(directory.iterdir()) == []


async def test_fewer_bytes_than_announced_is_refused(
    nginx: NginxServer, dav_dir: tuple[Path, str]
) -> None:
    directory, url_path = dav_dir
    location = parse_location(nginx.url(f"{url_path}/short.bin"))
    async with (
        HttpProtocol(nginx_options(nginx)) as protocol,
        await protocol.open_write(location, size_hint=MIB) as stream,
    ):
        await stream.write(b"too short")
        with pytest.raises(TransferError, match="9 bytes written but 1048576 announced"):
            await stream.commit()
    assert list(directory.iterdir()) == []


async def test_more_bytes_than_announced_is_refused(
    nginx: NginxServer, dav_dir: tuple[Path, str]
) -> None:
    directory, url_path = dav_dir
    location = parse_location(nginx.url(f"{url_path}/long.bin"))
    async with (
        HttpProtocol(nginx_options(nginx)) as protocol,
        await protocol.open_write(location, size_hint=4) as stream,
    ):
        with pytest.raises(TransferError, match="more than the 4 bytes") as excinfo:
            await stream.write(b"12345")
        assert excinfo.value.retryable
    assert stream.finished
    assert list(directory.iterdir()) == []


async def test_empty_file_upload_and_abort(nginx: NginxServer, dav_dir: tuple[Path, str]) -> None:
    directory, url_path = dav_dir
    async with HttpProtocol(nginx_options(nginx)) as protocol:
        async with await protocol.open_write(
            parse_location(nginx.url(f"{url_path}/empty.bin")), size_hint=0
        ) as stream:
            await stream.commit()
        async with await protocol.open_write(
            parse_location(nginx.url(f"{url_path}/never.bin")), size_hint=0
        ) as stream:
            await stream.abort()
    assert [p.name for p in directory.iterdir()] == ["empty.bin"]
    assert (directory / "empty.bin").read_bytes() == b""


async def test_rejected_upload_raises_authentication_error(
    nginx: NginxServer, dav_dir: tuple[Path, str]
) -> None:
    directory, url_path = dav_dir
    location = parse_location(nginx.url(f"{url_path}/denied.bin"))

    async def upload(protocol: HttpProtocol) -> None:
        async with await protocol.open_write(location, size_hint=len(DATA)) as stream:
            for start in range(0, len(DATA), MIB):
                await stream.write(DATA[start : start + MIB])
            await stream.commit()

    async with HttpProtocol(nginx_options(nginx, password="wrong")) as protocol:
        with pytest.raises(AuthenticationError):
            await upload(protocol)
    assert list(directory.iterdir()) == []


async def test_upload_streams_before_commit_and_post_is_supported() -> None:
    """The body flows while it is written (memory stays bounded), ending only on commit."""
    total = 32 * MIB
    received = [0]
    bodies = []

    def respond(handler: Handler) -> None:
        remaining = int(handler.headers["Content-Length"])
        digest = hashlib.sha256()
        while remaining:
            piece = handler.rfile.read(min(remaining, 256 * 1024))
            if not piece:
                break
            digest.update(piece)
            remaining -= len(piece)
            received[0] += len(piece)
        bodies.append((handler.command, digest.hexdigest()))
        handler.reply(201)

    chunk = payload_bytes(MIB, seed=3)
    with scripted_server(respond, read_body=False) as server:
        async with HttpProtocol({"upload_method": "POST"}) as protocol:
            location = parse_location(server.url("/upload"))
            async with await protocol.open_write(location, size_hint=total) as stream:
                for _ in range(total // MIB):
                    await stream.write(chunk)
                # Most of the body has reached the server although nothing is committed:
                # the stream holds a few chunks, not the file.
                assert wait_until(lambda: received[0] >= total - 8 * MIB)
                assert received[0] < total  # the last chunk waits for the commit
                await stream.commit()
    assert bodies == [("POST", hashlib.sha256(chunk * (total // MIB)).hexdigest())]
