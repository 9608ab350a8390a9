"""Credentials reach the SSH server and nothing else: not errors, logs, reprs or results.

Passwords (from env:/file: references or the URI), passphrase-protected keys and an
ssh-agent each log in to the real sshd.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import AuthenticationError, ConfigurationError
from quorus.core.uri import parse_location
from quorus.protocols.sftp import SftpProtocol
from quorus.protocols.sftp.testing import OpenSshServer, SystemUser

pytestmark = pytest.mark.anyio

DATA = b"guarded payload " * 8192
PASSPHRASE = f"pp-{uuid.uuid4().hex}"


def assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


@pytest.fixture
def password_reference(
    request: pytest.FixtureRequest, system_user: SystemUser, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> str:
    if request.param == "env":
        monkeypatch.setenv("QUORUS_TEST_SFTP_PASSWORD", system_user.password)
        return "env:QUORUS_TEST_SFTP_PASSWORD"
    path = tmp_path / "password"
    path.write_text(system_user.password + "\n")
    return f"file:{path}"


@pytest.mark.parametrize("password_reference", ["env", "file"], indirect=True)
async def test_password_reference_logs_in_and_never_shows(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, password_reference: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (remote_dir / "f.bin").write_bytes(DATA)
    url = sshd.url(str(remote_dir / "f.bin"), username=system_user.name)
    options = {"sftp": {"password": password_reference, "known_hosts": str(sshd.known_hosts),
                        "agent": False}}
    async with TransferEngine(protocol_options=options) as engine:
        result = await engine.transfer(TransferRequest.create(url, str(tmp_path / "out.bin")))
        protocol = engine.protocol(parse_location(url))
        assert isinstance(protocol, SftpProtocol)
        shown = [repr(protocol), str(protocol.options), repr(protocol.settings)]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert any(record.name.startswith("asyncssh") for record in caplog.records)
    assert_hidden(system_user.password, json.dumps(result.as_dict()), caplog.text, *shown)


async def test_password_in_the_uri_is_used_and_redacted(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (remote_dir / "f.bin").write_bytes(DATA)
    url = (f"sftp://{system_user.name}:{system_user.password}@{sshd.host}:{sshd.port}"
           f"{remote_dir}/f.bin")
    options = {"sftp": {"known_hosts": str(sshd.known_hosts), "agent": False}}
    async with TransferEngine(protocol_options=options) as engine:
        result = await engine.transfer(TransferRequest.create(url, str(tmp_path / "out.bin")))
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.source.startswith(f"sftp://{system_user.name}:***@")
    assert_hidden(system_user.password, json.dumps(result.as_dict()), caplog.text)


async def test_rejected_password_is_not_in_the_error(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{uuid.uuid4().hex}"
    url = sshd.url(str(remote_dir), username=system_user.name)
    options = {"password": wrong, "known_hosts": str(sshd.known_hosts), "agent": False}
    async with SftpProtocol(options) as protocol:
        with pytest.raises(AuthenticationError) as excinfo:
            await protocol.stat(parse_location(url))
    async with TransferEngine(protocol_options={"sftp": options}) as engine:
        result = await engine.transfer(TransferRequest.create(
            url + "/x.bin", str(tmp_path / "o.bin"), retry=RetryPolicy(max_attempts=3)))
    assert result.attempts == 1
    error_text = "".join(traceback.format_exception(excinfo.value))
    assert system_user.name in error_text
    assert_hidden(wrong, error_text, json.dumps(result.as_dict()), caplog.text)


async def test_encrypted_key_with_a_passphrase_reference(
    sshd: OpenSshServer, remote_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "id_encrypted"
    key.write_private_key(str(path), passphrase=PASSPHRASE)
    sshd.authorize(key)
    (remote_dir / "f.bin").write_bytes(DATA)
    location = parse_location(sshd.url(str(remote_dir / "f.bin")))
    monkeypatch.setenv("QUORUS_TEST_PASSPHRASE", PASSPHRASE)
    options = sshd.options(private_key=str(path), passphrase="env:QUORUS_TEST_PASSPHRASE")
    async with SftpProtocol(options) as protocol:
        assert (await protocol.stat(location)).size == len(DATA)
        assert_hidden(PASSPHRASE, repr(protocol), str(protocol.options))

    with pytest.raises(ConfigurationError, match="wrong passphrase") as wrong:
        SftpProtocol(sshd.options(private_key=str(path), passphrase="not-it"))
    assert_hidden(PASSPHRASE, str(wrong.value))
    with pytest.raises(ConfigurationError, match="option passphrase"):
        SftpProtocol(sshd.options(private_key=str(path)))


def test_missing_references_and_key_files_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("QUORUS_TEST_ABSENT", raising=False)
    with pytest.raises(ConfigurationError, match="QUORUS_TEST_ABSENT"):
        SftpProtocol({"password": "env:QUORUS_TEST_ABSENT"})
    with pytest.raises(ConfigurationError, match="no such file"):
        SftpProtocol({"private_key": str(tmp_path / "absent_key")})
    with pytest.raises(ConfigurationError, match="passwrd"):
        SftpProtocol({"passwrd": "x"})


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[tuple[str, asyncssh.SSHKey]]:
    """A private ssh-agent holding a new key (no copy of it left on disk): its socket, the key."""
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # at most 10 s
            if socket_path.exists():
                break
            if process.poll() is not None:
                pytest.fail("ssh-agent exited at start")
            time.sleep(0.05)
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = tmp_path / "id_agent"
        key.write_private_key(str(path))
        path.chmod(0o600)
        added = subprocess.run(["ssh-add", str(path)], capture_output=True, text=True,
                               env={**os.environ, "SSH_AUTH_SOCK": str(socket_path)}, check=False)
        assert added.returncode == 0, added.stderr
        path.unlink()
        yield str(socket_path), key
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_agent_logs_in(
    sshd: OpenSshServer, remote_dir: Path, ssh_agent: tuple[str, asyncssh.SSHKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socket_path, key = ssh_agent
    sshd.authorize(key)
    (remote_dir / "f.bin").write_bytes(DATA)
    location = parse_location(sshd.url(str(remote_dir / "f.bin")))
    base = {"known_hosts": str(sshd.known_hosts), "username": "root"}
    async with SftpProtocol({**base, "agent": socket_path}) as protocol:
        assert (await protocol.stat(location)).size == len(DATA)
    monkeypatch.setenv("SSH_AUTH_SOCK", socket_path)
    async with SftpProtocol(base) as protocol:
        assert (await protocol.stat(location)).size == len(DATA)
    async with SftpProtocol({**base, "agent": False}) as protocol:
        with pytest.raises(AuthenticationError):
            await protocol.stat(location)
