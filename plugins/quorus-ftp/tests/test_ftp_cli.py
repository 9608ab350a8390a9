"""``quorus transfer`` over FTP and FTPS end to end, as a person runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from quorus.core.testing import payload_bytes
from quorus.core.uri import Location
from quorus.protocols.ftp.testing import VsftpdServer

QUORUS = str(Path(sys.executable).parent / "quorus")


def quorus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QUORUS, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, check=False,
    )


def test_upload_and_download_over_ftps_with_the_password_from_the_environment(
    vsftpd_tls: VsftpdServer, ftps_dir: tuple[Path, Location], tmp_path: Path
) -> None:
    data = payload_bytes(3 * 1024 * 1024 + 5, seed=21)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    remote = vsftpd_tls.url(f"{ftps_dir[1].path}/sub/cli.bin")
    options = ["-o", f"ftps.username={vsftpd_tls.username}",
               "-o", "ftps.password=env:QFTP_PASSWORD",
               "-o", f"ftps.ca_bundle={vsftpd_tls.ca_bundle}"]
    env = {"QFTP_PASSWORD": vsftpd_tls.password}
    up = quorus("transfer", str(source), remote, *options, "--json", env=env)
    assert up.returncode == 0, up.stderr
    assert (ftps_dir[0] / "sub" / "cli.bin").read_bytes() == data
    out = tmp_path / "out.bin"
    down = quorus("transfer", remote, str(out), *options, "--json", env=env)
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert result["status"] == "completed"
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert out.read_bytes() == data
    for done in (up, down):
        assert vsftpd_tls.password not in done.stdout + done.stderr


def test_wrong_password_exits_non_zero_with_a_clear_message(
    vsftpd: VsftpdServer, tmp_path: Path
) -> None:
    done = quorus(
        "transfer", vsftpd.url("/files/none.bin"), str(tmp_path / "x.bin"),
        "-o", f"ftp.username={vsftpd.username}", "-o", "ftp.password=env:QFTP_BAD", "--json",
        env={"QFTP_BAD": "definitely-wrong-pw"},
    )
    assert done.returncode != 0
    result = json.loads(done.stdout)
    assert result["error_type"] == "AuthenticationError"
    assert result["attempts"] == 1
    assert "definitely-wrong-pw" not in done.stdout + done.stderr
