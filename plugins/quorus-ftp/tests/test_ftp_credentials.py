"""The password reaches the server and nothing else: not errors, logs, reprs or results."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import AuthenticationError, ConfigurationError
from quorus.core.uri import Location, parse_location
from quorus.protocols.ftp import FtpProtocol
from quorus.protocols.ftp.testing import VsftpdServer

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["env", "file"])
def password_reference(
    request: pytest.FixtureRequest, vsftpd: VsftpdServer, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> str:
    if request.param == "env":
        monkeypatch.setenv("QUORUS_TEST_FTP_PASSWORD", vsftpd.password)
        return "env:QUORUS_TEST_FTP_PASSWORD"
    path = tmp_path / "ftp-password"
    path.write_text(vsftpd.password + "\n")
    return f"file:{path}"


async def test_password_reference_logs_in_and_never_shows(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], password_reference: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (ftp_dir[0] / "s.bin").write_bytes(b"guarded" * 1000)
    source = ftp_dir[1].with_path(ftp_dir[1].path + "/s.bin")
    options = {"ftp": {"username": vsftpd.username, "password": password_reference}}
    async with TransferEngine(protocol_options=options) as engine:
        result = await engine.transfer(TransferRequest.create(source, str(tmp_path / "s.bin")))
        protocol = engine.protocol(source)
        shown = [repr(protocol), str(protocol.options), repr(getattr(protocol, "settings", None))]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert (tmp_path / "s.bin").read_bytes() == b"guarded" * 1000
    for text in (json.dumps(result.as_dict()), caplog.text, *shown):
        assert vsftpd.password not in text
    # aioftp's own debug log of the commands is among what was checked.
    assert any("USER" in record.getMessage() for record in caplog.records)


async def test_password_in_the_uri_is_masked_everywhere(
    vsftpd: VsftpdServer, ftp_dir: tuple[Path, Location], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (ftp_dir[0] / "u.bin").write_bytes(b"x" * 5000)
    uri = (f"ftp://{vsftpd.username}:{vsftpd.password}@127.0.0.1:{vsftpd.port}"
           f"{ftp_dir[1].path}/u.bin")
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(uri, str(tmp_path / "u.bin")))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert "***" in result.source
    assert vsftpd.password not in json.dumps(result.as_dict())
    assert vsftpd.password not in caplog.text


async def test_rejected_password_is_not_in_the_error(
    vsftpd: VsftpdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-but-still-a-secret"
    location = parse_location(
        f"ftp://{vsftpd.username}:{wrong}@127.0.0.1:{vsftpd.port}/files/x.bin")
    async with FtpProtocol() as protocol:
        with pytest.raises(AuthenticationError) as excinfo:
            await protocol.stat(location)
    text = "".join(traceback.format_exception(excinfo.value))
    assert wrong not in text
    assert wrong not in caplog.text
    assert wrong not in repr(location)
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(
            location, "/tmp/never-written.bin", retry=RetryPolicy(max_attempts=3)))
    assert result.attempts == 1
    assert wrong not in json.dumps(result.as_dict())


def test_missing_reference_names_the_reference_only() -> None:
    with pytest.raises(ConfigurationError, match="QUORUS_NOT_SET_ANYWHERE"):
        FtpProtocol({"password": "env:QUORUS_NOT_SET_ANYWHERE"})


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="known options"):
        FtpProtocol({"pasword": "typo"})
