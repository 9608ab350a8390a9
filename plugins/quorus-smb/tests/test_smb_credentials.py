"""Credentials reach the server and nothing else: not errors, logs, reprs, results or the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import AuthenticationError, ConfigurationError
from quorus.core.uri import Location, parse_location
from quorus.protocols.smb import SmbProtocol
from quorus.protocols.smb.testing import SambaServer

pytestmark = pytest.mark.anyio

QUORUS = str(Path(sys.executable).parent / "quorus")
PAYLOAD = b"for the share's user only\n" * 4096


def assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


@pytest.fixture
def password_reference(
    request: pytest.FixtureRequest, samba: SambaServer, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> str:
    if request.param == "env":
        monkeypatch.setenv("QUORUS_TEST_SMB_PASSWORD", samba.password)
        return "env:QUORUS_TEST_SMB_PASSWORD"
    path = tmp_path / "smb-password"
    path.write_text(samba.password + "\n")
    return f"file:{path}"


@pytest.mark.parametrize("password_reference", ["env", "file"], indirect=True)
async def test_password_from_a_reference_is_used_and_never_shown(
    samba: SambaServer, share_dir: tuple[Path, Location], password_reference: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    directory, base = share_dir
    (directory / "f.bin").write_bytes(PAYLOAD)
    caplog.set_level(logging.DEBUG)
    options = {"smb": {"username": samba.username, "password": password_reference}}
    async with TransferEngine(protocol_options=options) as engine:
        result = await engine.transfer(
            TransferRequest.create(f"{base.url()}/f.bin", str(tmp_path / "out.bin")))
        protocol = engine.protocol(base)
        assert isinstance(protocol, SmbProtocol)
        shown = [repr(protocol), str(protocol.options), repr(protocol.settings)]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert (tmp_path / "out.bin").read_bytes() == PAYLOAD
    assert_hidden(samba.password, json.dumps(result.as_dict()), caplog.text, *shown)
    assert "logged on as" in caplog.text  # debug logging was on, and still no password


async def test_rejected_password_is_not_in_the_error(
    samba: SambaServer, share_dir: tuple[Path, Location], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory, base = share_dir
    (directory / "f.bin").write_bytes(PAYLOAD)
    wrong = samba.password + "-but-wrong"
    caplog.set_level(logging.DEBUG)
    async with SmbProtocol({"username": samba.username, "password": wrong}) as protocol:
        with pytest.raises(AuthenticationError) as excinfo:
            await protocol.stat(parse_location(f"{base.url()}/f.bin"))
    async with TransferEngine(protocol_options={"smb": {"username": samba.username,
                                                        "password": wrong}}) as engine:
        result = await engine.transfer(TransferRequest.create(
            f"{base.url()}/f.bin", str(tmp_path / "out.bin"), retry=RetryPolicy(max_attempts=3)))
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    error_text = "".join(traceback.format_exception(excinfo.value))
    assert "rejected the logon" in error_text
    assert_hidden(wrong, error_text, repr(excinfo.value), json.dumps(result.as_dict()),
                  caplog.text)


async def test_password_in_the_uri_works_and_is_redacted(
    samba: SambaServer, share_dir: tuple[Path, Location], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory, base = share_dir
    (directory / "f.bin").write_bytes(PAYLOAD)
    caplog.set_level(logging.DEBUG)
    source = f"smb://{samba.username}:{samba.password}@127.0.0.1:{samba.port}{base.path}/f.bin"
    async with TransferEngine() as engine:
        result = await engine.transfer(TransferRequest.create(source, str(tmp_path / "o.bin")))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.source == f"smb://{samba.username}:***@127.0.0.1:{samba.port}{base.path}/f.bin"
    assert_hidden(samba.password, json.dumps(result.as_dict()), caplog.text)


def test_missing_reference_names_the_reference_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUORUS_TEST_ABSENT", raising=False)
    with pytest.raises(ConfigurationError, match="QUORUS_TEST_ABSENT"):
        SmbProtocol({"password": "env:QUORUS_TEST_ABSENT"})


async def test_no_user_name_is_a_clear_configuration_error(samba: SambaServer) -> None:
    async with SmbProtocol() as protocol:
        with pytest.raises(ConfigurationError, match=r"smb\.username"):
            await protocol.stat(parse_location(samba.url("x.bin")))


def quorus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QUORUS, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=False)


def test_cli_with_password_from_the_environment_never_prints_it(
    samba: SambaServer, share_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    directory, base = share_dir
    (directory / "f.bin").write_bytes(PAYLOAD)
    source = f"{base.url()}/f.bin"
    common = ["-o", f"smb.username={samba.username}",
              "-o", "smb.password=env:QUORUS_CLI_SMB_PASSWORD", "--json"]
    ok = quorus("-vv", "transfer", source, str(tmp_path / "ok.bin"), *common,
                env={"QUORUS_CLI_SMB_PASSWORD": samba.password})
    refused = quorus("-vv", "transfer", source, str(tmp_path / "no.bin"), *common,
                     "--retries", "2", env={"QUORUS_CLI_SMB_PASSWORD": samba.password + "x"})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "completed"
    assert "logged on as" in ok.stderr  # debug output was on
    assert refused.returncode == 1
    failure = json.loads(refused.stdout)
    assert failure["error_type"] == "AuthenticationError"
    assert failure["attempts"] == 1
    for output in (ok.stdout, ok.stderr, refused.stdout, refused.stderr):
        assert samba.password not in output
