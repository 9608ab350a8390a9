"""``quorus transfer`` end to end over HTTP, as a person runs it: a subprocess and its JSON."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from quorus.core.testing import payload_bytes
from quorus.protocols.http.testing.nginx import NginxServer
from quorus.protocols.http.testing.scripted import Handler, Version, scripted_server, send_file

QUORUS = str(Path(sys.executable).parent / "quorus")
RESULT_KEYS = {"status", "bytes", "sha256", "seconds", "attempts", "source", "destination"}
TOKEN = f"cli-{uuid.uuid4().hex}"


def quorus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [QUORUS, *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})}, check=False,
    )


def test_download_from_nginx(nginx: NginxServer, tmp_path: Path) -> None:
    data = payload_bytes(5 * 1024 * 1024 + 17, seed=5)
    (nginx.www / "public" / "cli.bin").write_bytes(data)
    out = tmp_path / "sub" / "out.bin"
    done = quorus("transfer", nginx.url("/public/cli.bin"), str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= RESULT_KEYS
    assert result["status"] == "completed"
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["attempts"] == 1
    assert result["source"] == nginx.url("/public/cli.bin")
    assert result["destination"] == str(out)
    assert out.read_bytes() == data


def test_bearer_token_from_the_environment_never_printed(tmp_path: Path) -> None:
    file = Version(b"for token holders only\n" * 1000, '"cli"')

    def respond(handler: Handler) -> None:
        if handler.headers.get("Authorization") == f"Bearer {TOKEN}":
            send_file(handler, file)
        else:
            handler.reply(401)

    with scripted_server(respond) as server:
        ok = quorus("-vv", "transfer", server.url(), str(tmp_path / "ok.bin"), "--json",
                    "-o", "http.bearer_token=env:QUORUS_CLI_TOKEN",
                    env={"QUORUS_CLI_TOKEN": TOKEN})
        refused = quorus("-vv", "transfer", server.url(), str(tmp_path / "no.bin"), "--json",
                         "-o", "http.bearer_token=env:QUORUS_CLI_TOKEN", "--retries", "0",
                         env={"QUORUS_CLI_TOKEN": TOKEN + "-wrong"})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["sha256"] == hashlib.sha256(file.data).hexdigest()
    assert "HTTP Request" in ok.stderr  # debug logging was on, and still no token in it
    assert refused.returncode == 1
    failure = json.loads(refused.stdout)
    assert failure["status"] == "failed"
    assert failure["error_type"] == "AuthenticationError"
    for output in (ok.stdout, ok.stderr, refused.stdout, refused.stderr):
        assert TOKEN not in output


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    done = quorus("transfer", "http://127.0.0.1:9/x", str(tmp_path / "x"),
                  "-o", "http.bearer_tokn=abc")
    assert done.returncode == 2
    assert "bearer_tokn" in done.stderr
