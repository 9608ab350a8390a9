"""``quorus transfer`` over SFTP end to end, as a person runs it: a subprocess and its JSON."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from quorus.core.testing import payload_bytes
from quorus.protocols.sftp.testing import OpenSshServer, SystemUser

QUORUS = str(Path(sys.executable).parent / "quorus")
DATA = payload_bytes(5 * 1024 * 1024 + 17, seed=11)


def quorus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QUORUS, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, check=False,
    )


def key_options(sshd: OpenSshServer) -> list[str]:
    return ["-o", f"sftp.private_key={sshd.client_key}",
            "-o", f"sftp.known_hosts={sshd.known_hosts}", "-o", "sftp.agent=false"]


def test_download_and_upload_with_a_key(sshd: OpenSshServer, remote_dir: Path, tmp_path: Path) -> None:
    (remote_dir / "cli.bin").write_bytes(DATA)
    digest = hashlib.sha256(DATA).hexdigest()
    out = tmp_path / "sub" / "out.bin"
    down = quorus("transfer", sshd.url(str(remote_dir / "cli.bin")), str(out), "--json",
                  "--checksum", f"sha256:{digest}", *key_options(sshd))
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert (result["status"], result["bytes"], result["sha256"]) == ("completed", len(DATA), digest)
    assert out.read_bytes() == DATA

    target = remote_dir / "nested" / "up.bin"
    up = quorus("transfer", str(out), sshd.url(str(target)), "--json", *key_options(sshd))
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["sha256"] == digest
    assert target.read_bytes() == DATA
    assert sorted(p.name for p in target.parent.iterdir()) == ["up.bin"]


def test_password_from_the_environment_never_printed(
    sshd: OpenSshServer, system_user: SystemUser, remote_dir: Path, tmp_path: Path
) -> None:
    (remote_dir / "cli.bin").write_bytes(DATA)
    url = sshd.url(str(remote_dir / "cli.bin"), username=system_user.name)
    common = ["--json", "-o", "sftp.password=env:QUORUS_CLI_SFTP_PASSWORD",
              "-o", f"sftp.known_hosts={sshd.known_hosts}", "-o", "sftp.agent=false"]
    ok = quorus("-vv", "transfer", url, str(tmp_path / "ok.bin"), *common,
                env={"QUORUS_CLI_SFTP_PASSWORD": system_user.password})
    wrong = system_user.password + "-wrong"
    refused = quorus("-vv", "transfer", url, str(tmp_path / "no.bin"), *common,
                     env={"QUORUS_CLI_SFTP_PASSWORD": wrong})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert refused.returncode == 1
    failure = json.loads(refused.stdout)
    assert (failure["status"], failure["error_type"], failure["attempts"]) == (
        "failed", "AuthenticationError", 1)
    for output in (ok.stdout, ok.stderr, refused.stdout, refused.stderr):
        assert system_user.password not in output


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = quorus("transfer", "sftp://127.0.0.1:9/x", str(tmp_path / "x"),
                  "-o", "sftp.known_host=/x")
    assert done.returncode == 2
    assert "known_host" in done.stderr
