"""``quorus-controller`` as a separate OS process: it starts with its defaults (standalone,
a token generated in the data directory and printed), serves the REST API, stops cleanly on
SIGTERM, and has its jobs back after a restart; a bad configuration is refused at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from quorus.core.testing.fixtures import free_port

CONTROLLER = [sys.executable, "-c",
              "from quorus.core.controller.main import main; main()"]


class Process:
    def __init__(self, workdir: Path, *args: str) -> None:
        self.http = f"127.0.0.1:{free_port()}"
        self.agents = f"127.0.0.1:{free_port()}"
        self.log = workdir / "controller.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CONTROLLER, "--listen-http", self.http, "--listen-agents", self.agents,
                 *args],
                cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready(self) -> None:
        for _ in range(200):
            if self.proc.poll() is not None:
                raise AssertionError(f"controller exited: {self.log.read_text()}")
            try:
                if httpx.get(f"http://{self.http}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"controller not ready: {self.log.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_the_controller_process_serves_stops_on_sigterm_and_keeps_its_jobs(
    workdir: Path,
) -> None:
    first = Process(workdir)
    try:
        first.wait_ready()
        token_file = workdir / "quorus-data" / "token"
        assert token_file.exists()
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://{first.http}"
        assert httpx.get(f"{base}/v1/jobs", timeout=5).status_code == 401
        created = httpx.post(f"{base}/v1/jobs", headers=headers, timeout=5,
                             json={"source": "/srv/a.bin", "destination": "/srv/b.bin",
                                   "id": "survivor"})
        assert created.status_code == 201, created.text
        assert first.stop() == 0
    finally:
        first.kill()
    output = first.log.read_text()
    assert f"token file: {token_file}" in output
    assert f"REST API: http://{first.http}" in output
    assert "SIGTERM: stopping" in output

    second = Process(workdir)
    try:
        second.wait_ready()
        job = httpx.get(f"http://{second.http}/v1/jobs/survivor", headers=headers, timeout=5)
        assert job.status_code == 200
        assert job.json()["source_display"] == "/srv/a.bin"
        assert second.stop() == 0
    finally:
        second.kill()
    assert "(created)" not in second.log.read_text().split("token file:")[-1]


def test_a_bad_configuration_is_refused_at_start(workdir: Path) -> None:
    config = workdir / "controller.yaml"
    config.write_text("node_id: c1\nheartbeat_interval: soon\n")
    result = subprocess.run([*CONTROLLER, "--config", str(config)], cwd=workdir,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "heartbeat_interval" in result.stderr
    result = subprocess.run([*CONTROLLER, "--consensus", "raft", "--node-id", "c1"],
                            cwd=workdir, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "peers" in result.stderr
