"""Fixtures of the FTP plugin's tests: a private vsftpd, plain and with explicit TLS.

aioftp runs on asyncio only, so every async test here runs under asyncio alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import Location, parse_location
from quorus.protocols.ftp.testing import VsftpdServer, vsftpd_available


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server_home() -> Iterator[Path]:
    """Where the servers live: below /tmp, since the FTP account must reach it (pytest's
    own temporary directories are private to root)."""
    home = Path(tempfile.mkdtemp(prefix="quorus-ftp-tests-"))
    os.chmod(home, 0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def _start(home: Path, name: str, **kwargs: object) -> Iterator[VsftpdServer]:
    reason = vsftpd_available()
    if reason is not None:
        missing_server(reason)
    with VsftpdServer(home / name, **kwargs) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="session")
def vsftpd(server_home: Path) -> Iterator[VsftpdServer]:
    """Plain FTP with a password account (and anonymous read-only logins)."""
    yield from _start(server_home, "plain", anonymous=True)


@pytest.fixture(scope="session")
def vsftpd_tls(server_home: Path) -> Iterator[VsftpdServer]:
    """Explicit FTPS: AUTH TLS required for logins and data."""
    yield from _start(server_home, "tls", tls=True)


def fresh_dir(server: VsftpdServer, request: pytest.FixtureRequest) -> tuple[Path, Location]:
    """A new empty directory under /files owned by the account: (on disk, as a location)."""
    label = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    directory = server.files / name
    directory.mkdir()
    os.chown(directory, server.uid, server.uid)
    return directory, parse_location(server.url(f"/files/{name}"))


@pytest.fixture
def ftp_dir(vsftpd: VsftpdServer, request: pytest.FixtureRequest) -> tuple[Path, Location]:
    return fresh_dir(vsftpd, request)


@pytest.fixture
def ftps_dir(vsftpd_tls: VsftpdServer, request: pytest.FixtureRequest) -> tuple[Path, Location]:
    return fresh_dir(vsftpd_tls, request)

