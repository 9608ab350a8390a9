"""Signing, encryption and dialects against servers that demand them.

A second smbd runs with ``server signing = mandatory``; every server has the share
``sealed`` with ``smb encrypt = required``. The protocol follows what the server demands
even when its own settings ask for less, and refuses nothing it can do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from quorus.core import TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import ConfigurationError
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import missing_server
from quorus.core.uri import parse_location
from quorus.protocols.smb import SmbProtocol
from quorus.protocols.smb.testing import ENCRYPTED_SHARE, SHARE, SambaServer, samba_available

pytestmark = pytest.mark.anyio

DATA = payload_bytes(2 * 1024 * 1024 + 321, seed=21)


@pytest.fixture(scope="module")
def strict_samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaServer]:
    """A server that signs every message (``server signing = mandatory``)."""
    reason = samba_available()
    if reason is not None:
        missing_server(reason)
    with SambaServer(tmp_path_factory.mktemp("strict"), signing="mandatory") as server:
        yield server


async def round_trip(server: SambaServer, options: dict[str, str], share: str,
                     tmp_path: Path, name: str) -> None:
    """Upload DATA to ``share`` and download it again through the engine, verified."""
    source = tmp_path / f"{name}.src"
    source.write_bytes(DATA)
    digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
    async with TransferEngine(protocol_options={"smb": options}) as engine:
        up = await engine.transfer(TransferRequest.create(
            str(source), server.url(f"{name}.bin", share=share), checksum=digest))
        assert up.status is TransferStatus.COMPLETED, up.error
        down = await engine.transfer(TransferRequest.create(
            server.url(f"{name}.bin", share=share), str(tmp_path / f"{name}.out"),
            checksum=digest))
        assert down.status is TransferStatus.COMPLETED, down.error
    assert (server.share_path(share) / f"{name}.bin").read_bytes() == DATA


async def test_mandatory_signing_is_honoured_even_when_not_asked_for(
    strict_samba: SambaServer, tmp_path: Path
) -> None:
    options = {"username": strict_samba.username, "password": strict_samba.password,
               "signing": "auto"}
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(parse_location(strict_samba.url("x", share=SHARE)))
    assert security.signed
    assert not security.encrypted
    await round_trip(strict_samba, options, SHARE, tmp_path, "signed")


async def test_signing_is_required_by_default(samba: SambaServer) -> None:
    options = {"username": samba.username, "password": samba.password}
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(parse_location(samba.url("x")))
    assert security.signed
    assert security.dialect == "3.1.1"


async def test_signing_auto_leaves_it_to_a_relaxed_server(samba: SambaServer) -> None:
    options = {"username": samba.username, "password": samba.password, "signing": "auto"}
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(parse_location(samba.url("x")))
    assert not security.signed
    assert not security.encrypted


async def test_share_requiring_encryption_is_encrypted(
    strict_samba: SambaServer, tmp_path: Path
) -> None:
    options = {"username": strict_samba.username, "password": strict_samba.password}
    async with SmbProtocol(options) as protocol:
        sealed = await protocol.security(
            parse_location(strict_samba.url("x", share=ENCRYPTED_SHARE)))
        plain = await protocol.security(parse_location(strict_samba.url("x", share=SHARE)))
    assert sealed.encrypted
    assert not plain.encrypted
    await round_trip(strict_samba, options, ENCRYPTED_SHARE, tmp_path, "sealed")


async def test_encryption_on_request_for_every_share(samba: SambaServer, tmp_path: Path) -> None:
    options = {"username": samba.username, "password": samba.password, "encrypt": "true"}
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(parse_location(samba.url("x")))
    assert security.encrypted
    await round_trip(samba, options, SHARE, tmp_path, "encrypted")


@pytest.mark.parametrize("dialect", ["2.0.2", "2.1", "3.0", "3.0.2"])
async def test_older_dialects(samba: SambaServer, tmp_path: Path, dialect: str) -> None:
    options = {"username": samba.username, "password": samba.password, "dialect": dialect}
    async with SmbProtocol(options) as protocol:
        security = await protocol.security(parse_location(samba.url("x")))
    assert security.dialect.startswith(dialect)
    await round_trip(samba, options, SHARE, tmp_path, f"dialect-{dialect}")


async def test_encrypting_an_smb2_session_is_refused_clearly(samba: SambaServer) -> None:
    options = {"username": samba.username, "password": samba.password, "dialect": "2.1",
               "encrypt": "true"}
    async with SmbProtocol(options) as protocol:
        with pytest.raises(ConfigurationError, match="encryption"):
            await protocol.stat(parse_location(samba.url("x")))
