"""Fixtures of the SMB plugin's tests: both anyio backends and a private Samba smbd."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from quorus.core.testing.fixtures import anyio_backend, missing_server  # noqa: F401
from quorus.core.uri import Location, parse_location
from quorus.protocols.smb import SmbProtocol
from quorus.protocols.smb.testing import SHARE, SambaServer, samba_available


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    """One smbd for the session; each test works in a directory of its own on its share."""
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    with SambaServer(tmp_path_factory.mktemp("samba")) as server:
        yield server


@pytest.fixture
def smb_options(samba: SambaServer) -> dict[str, str]:
    return {"username": samba.username, "password": samba.password}


@pytest.fixture
def share_dir(samba: SambaServer, request: pytest.FixtureRequest) -> tuple[Path, Location]:
    """A fresh, empty directory on the share: (its path on disk, its location)."""
    label = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    name = f"{label}-{uuid.uuid4().hex[:8]}"
    directory = samba.share_path(SHARE) / name
    directory.mkdir()
    return directory, parse_location(samba.url(name))


@pytest.fixture
async def smb(smb_options: dict[str, str]) -> SmbProtocol:
    async with SmbProtocol(smb_options) as protocol:
        yield protocol  # type: ignore[misc]
