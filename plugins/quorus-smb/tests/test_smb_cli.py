"""``quorus transfer`` to and from a share, as a person runs it: a subprocess and its JSON."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from quorus.core.testing import payload_bytes
from quorus.core.uri import Location
from quorus.protocols.smb.testing import SambaServer

QUORUS = str(Path(sys.executable).parent / "quorus")
RESULT_KEYS = {"status", "bytes", "sha256", "seconds", "attempts", "source", "destination"}


def quorus(samba: SambaServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QUORUS, "transfer", *args, "--json", "-o", f"smb.username={samba.username}",
         "-o", "smb.password=env:QUORUS_CLI_SMB_PASSWORD"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QUORUS_CLI_SMB_PASSWORD": samba.password}, check=False)


def test_upload_then_download(samba: SambaServer, share_dir: tuple[Path, Location],
                              tmp_path: Path) -> None:
    directory, base = share_dir
    data = payload_bytes(5 * 1024 * 1024 + 17, seed=5)
    digest = hashlib.sha256(data).hexdigest()
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    remote = f"{base.url()}/deep/er/cli.bin"
    up = quorus(samba, str(source), remote, "--checksum", f"sha256:{digest}")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["status"] == "completed"
    assert (directory / "deep" / "er" / "cli.bin").read_bytes() == data
    out = tmp_path / "out.bin"
    down = quorus(samba, remote, str(out))
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert set(result) >= RESULT_KEYS
    assert result["status"] == "completed"
    assert result["bytes"] == len(data)
    assert result["sha256"] == digest
    assert result["source"] == remote
    assert out.read_bytes() == data


def test_missing_file_exit_code_and_message(samba: SambaServer, share_dir: tuple[Path, Location],
                                            tmp_path: Path) -> None:
    _, base = share_dir
    done = quorus(samba, f"{base.url()}/absent.bin", str(tmp_path / "x.bin"))
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["error_type"] == "NotFoundError"
    assert "absent.bin" in result["error"]


def test_uri_without_a_file_is_a_usage_error(samba: SambaServer, tmp_path: Path) -> None:
    done = subprocess.run([QUORUS, "transfer", f"smb://127.0.0.1:{samba.port}/", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "name a share" in done.stderr


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([QUORUS, "transfer", "smb://127.0.0.1:9/s/x", str(tmp_path / "x"),
                           "-o", "smb.pasword=x"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "pasword" in done.stderr
