"""Directories over HTTP and WebDAV against nginx: recognising them, creating, listing, refusing."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.errors import (
    NotAFileError,
    NotFoundError,
    UnsupportedOperationError,
)
from quorus.core.uri import Location, parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.testing.nginx import PASSWORD, USERNAME, NginxServer

pytestmark = pytest.mark.anyio

CREDENTIALS = {"username": USERNAME, "password": PASSWORD}


def at(nginx: NginxServer, path: str) -> Location:
    return parse_location(nginx.url(path))


async def test_directories_are_recognised(nginx: NginxServer, dav_dir: tuple[Path, str]) -> None:
    directory, url_path = dav_dir
    (directory / "sub").mkdir()
    (directory / "file.txt").write_bytes(b"text")
    async with HttpProtocol(CREDENTIALS) as plain, \
            HttpProtocol({**CREDENTIALS, "webdav": True}) as dav:
        # nginx redirects /sub to /sub/: that is a directory, WebDAV or not.
        assert (await plain.stat(at(nginx, f"{url_path}/sub"))).is_dir
        assert (await dav.stat(at(nginx, f"{url_path}/sub/"))).is_dir
        assert not (await dav.stat(at(nginx, f"{url_path}/file.txt"))).is_dir
        for protocol in (plain, dav):
            with pytest.raises(NotAFileError):
                await protocol.open_read(at(nginx, f"{url_path}/sub"))
        with pytest.raises(NotAFileError):
            await dav.open_read(at(nginx, f"{url_path}/sub/"))
        with pytest.raises(NotAFileError):
            await dav.open_write(at(nginx, f"{url_path}/sub/"))


async def test_makedirs_creates_missing_levels(
    nginx: NginxServer, dav_dir: tuple[Path, str]
) -> None:
    directory, url_path = dav_dir
    (directory / "blocker").write_bytes(b"a file")
    async with HttpProtocol({**CREDENTIALS, "webdav": True}) as dav:
        await dav.makedirs(at(nginx, f"{url_path}/a/b/c"))
        await dav.makedirs(at(nginx, f"{url_path}/a/b"))  # existing: fine
        with pytest.raises(NotAFileError):
            await dav.makedirs(at(nginx, f"{url_path}/blocker"))
    assert (directory / "a" / "b" / "c").is_dir()


async def test_listing_errors(nginx: NginxServer, dav_dir: tuple[Path, str]) -> None:
    directory, url_path = dav_dir
    if not nginx.propfind:
        pytest.skip("nginx lacks the dav-ext module (Debian: libnginx-mod-http-dav-ext)")
    (directory / "file.txt").write_bytes(b"text")
    (directory / "sub").mkdir()
    async with HttpProtocol({**CREDENTIALS, "webdav": True}) as dav:
        listed = await dav.list(at(nginx, url_path))
        with pytest.raises(NotAFileError):
            await dav.list(at(nginx, f"{url_path}/file.txt"))
        with pytest.raises(NotFoundError):
            await dav.list(at(nginx, f"{url_path}/missing"))
    assert [(entry.name, entry.is_dir) for entry in listed] == [("file.txt", False), ("sub", True)]
    assert listed[0].location == at(nginx, f"{url_path}/file.txt")
    assert listed[0].size == 4

    # Credentials in the URI carry over to the entries, which can be opened as they are.
    base = parse_location(f"http://{USERNAME}:{PASSWORD}@127.0.0.1:{nginx.http_port}{url_path}")
    async with HttpProtocol({"webdav": True}) as dav:
        entries = await dav.list(base)
        async with await dav.open_read(entries[0].location) as stream:
            assert await stream.read() == b"text"


async def test_rename_errors(nginx: NginxServer, dav_dir: tuple[Path, str]) -> None:
    directory, url_path = dav_dir
    (directory / "file.txt").write_bytes(b"text")
    source = at(nginx, f"{url_path}/file.txt")
    async with HttpProtocol({**CREDENTIALS, "webdav": True}) as dav:
        with pytest.raises(NotFoundError):
            await dav.rename(at(nginx, f"{url_path}/absent.txt"), at(nginx, f"{url_path}/x"))
        with pytest.raises(UnsupportedOperationError, match="same server"):
            await dav.rename(source, parse_location(nginx.url(f"{url_path}/x", tls=True)))
    assert (directory / "file.txt").read_bytes() == b"text"


async def test_plain_http_refuses_file_system_operations(nginx: NginxServer) -> None:
    location = at(nginx, "/public/x.bin")
    async with HttpProtocol() as plain:
        for operation in (plain.list(location), plain.delete(location),
                          plain.makedirs(location), plain.rename(location, location)):
            with pytest.raises(UnsupportedOperationError, match=r"http\.webdav=true"):
                await operation
        with pytest.raises(UnsupportedOperationError, match="whole file"):
            await plain.open_write(location, 10)
