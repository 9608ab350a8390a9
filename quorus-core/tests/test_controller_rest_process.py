"""``quorus-controller`` as a separate OS process: it starts with its defaults (standalone,
a token generated in the data directory and printed), serves the REST API, stops cleanly on
SIGTERM, and has its jobs back after a restart; a bad configuration is refused at start, and
so is damaged data, on one line, with nothing deleted."""

from __future__ import annotations

import os
import shutil
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


def record_offsets(segment: Path) -> list[int]:
    """The offset of each record in a log segment (8 bytes of magic, headers ``<IIB``)."""
    raw = segment.read_bytes()
    offsets, pos = [], 8
    while pos < len(raw):
        offsets.append(pos)
        pos += 9 + int.from_bytes(raw[pos : pos + 4], "little")
    return offsets


@pytest.fixture(scope="module")
def acknowledged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A stopped standalone controller's data directory holding 4 acknowledged jobs, and the
    offset of the record of the first of them."""
    workdir = tmp_path_factory.mktemp("acknowledged")
    process = Process(workdir, "--data-dir", "data")
    try:
        process.wait_ready()
        token = (workdir / "data" / "token").read_text().strip()
        for n in range(4):
            created = httpx.post(f"http://{process.http}/v1/jobs", timeout=5,
                                 headers={"Authorization": f"Bearer {token}"},
                                 json={"source": f"/srv/{n}.bin", "destination": "/srv/out/",
                                       "id": f"job-{n}"})
            assert created.status_code == 201, created.text
        assert process.stop() == 0
    finally:
        process.kill()
    (segment,) = (workdir / "data" / "consensus" / "log").glob("*.seg")
    raw = segment.read_bytes()
    offsets = record_offsets(segment)
    first_job = next(at for at, end in zip(offsets, [*offsets[1:], len(raw)], strict=True)
                     if b"job-0" in raw[at:end])
    return workdir / "data", first_job


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("damage", ["crc", "length"])
def test_damaged_data_stops_the_controller_with_one_line_and_deletes_nothing(
    acknowledged: tuple[Path, int], tmp_path: Path, backend: str, damage: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(acknowledged[0], data)
    (segment,) = (data / "consensus" / "log").glob("*.seg")
    offsets = record_offsets(segment)
    victim = offsets[offsets.index(acknowledged[1]) - 1]  # acknowledged jobs follow it
    raw = bytearray(segment.read_bytes())
    # A flipped byte in its CRC, or in its length (which then runs past the end of the file).
    raw[victim + (4 if damage == "crc" else 2)] ^= 0xFF
    segment.write_bytes(bytes(raw))

    result = subprocess.run(
        [*CONTROLLER, "--data-dir", str(data), "--listen-http", f"127.0.0.1:{free_port()}",
         "--listen-agents", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "QUORUS_ASYNC_BACKEND": backend},
    )
    assert result.returncode == 2, result.stderr
    reason = "CRC mismatch" if damage == "crc" else "runs past the end of the file"
    assert result.stderr.startswith(
        f"quorus-controller: corrupt data in {segment} at offset {victim}: "), result.stderr
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert segment.read_bytes() == bytes(raw), "nothing may be deleted"


def test_a_torn_last_record_is_cut_off_and_the_controller_starts(
    acknowledged: tuple[Path, int], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(acknowledged[0], data)
    (segment,) = (data / "consensus" / "log").glob("*.seg")
    last = record_offsets(segment)[-1]
    os.truncate(segment, last + 12)  # a crash while the last record was being written

    process = Process(tmp_path, "--data-dir", str(data), "--log-level", "info")
    try:
        process.wait_ready()
        token = (data / "token").read_text().strip()
        for n in range(4):
            job = httpx.get(f"http://{process.http}/v1/jobs/job-{n}", timeout=5,
                            headers={"Authorization": f"Bearer {token}"})
            assert job.status_code == 200, job.text
        assert process.stop() == 0
    finally:
        process.kill()
    assert f"torn tail at offset {last} truncated" in process.log.read_text()


def test_only_expected_errors_in_a_task_group_become_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner
    from quorus.core.controller import main as controller_main
    from quorus.core.storage import CorruptStorageError

    corrupt = CorruptStorageError("log/1.seg", 123, "CRC mismatch")
    raised: list[BaseException] = []

    def run(*args: object) -> None:
        raise raised[-1]

    monkeypatch.setattr(controller_main.eventloop, "run", run)
    args = ["--data-dir", str(tmp_path)]

    raised.append(ExceptionGroup("outer", [ExceptionGroup("inner", [corrupt]), corrupt]))
    result = CliRunner().invoke(controller_main.main, args)
    assert result.exit_code == 2
    assert result.output == ("quorus-controller: corrupt data in log/1.seg at offset 123: "
                             "CRC mismatch\n")

    raised.append(ExceptionGroup("a bug", [corrupt, ZeroDivisionError("bug")]))
    result = CliRunner().invoke(controller_main.main, args)
    assert isinstance(result.exception, ExceptionGroup)  # a bug keeps its traceback
