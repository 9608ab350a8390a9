"""``quorus-agent`` as a real OS process: it joins a loopback controller with the embedded
defaults (the token file in ./quorus-data), runs a transfer, and on SIGTERM lets that
transfer finish, reports it, deregisters and exits 0. Usage errors exit 2 with a message."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from quorus.core.agent.main import work_dir_lock
from quorus.core.agent.testing import LoopbackController
from quorus.core.agentproto import (
    AgentDeregistering,
    AttemptCompleted,
    ProgressReported,
    RegistrationRequested,
)
from quorus.core.controller import JobOptions, JobState
from quorus.core.testing.fixtures import free_port, payload_bytes

TOKEN = "process-test-token"
AGENT = str(Path(sys.executable).with_name("quorus-agent"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("QUORUS_AGENT_TOKEN", None)
    env.pop("QUORUS_CONTROLLERS", None)
    return env


@pytest.mark.anyio
async def test_sigterm_lets_the_running_transfer_finish_then_deregisters(tmp_path: Path) -> None:
    data_dir = tmp_path / "quorus-data"
    data_dir.mkdir()
    (data_dir / "token").write_text(TOKEN + "\n")
    data = payload_bytes(512 * 1024, seed=3)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    dst = tmp_path / "out" / "drained.bin"
    controller = LoopbackController("c1", TOKEN, free_port())
    log_path = tmp_path / "agent.log"
    with anyio.fail_after(60), log_path.open("wb") as log:
        async with anyio.create_task_group() as tg:
            await controller.start(tg)
            process = await anyio.open_process(
                [AGENT, "--controllers", controller.address.address, "--agent-id", "proc-1",
                 "--bwlimit", "256KiB/s", "--drain-timeout", "20s", "--label", "os=linux"],
                cwd=tmp_path, stdout=log, stderr=log, env=_env(),
            )
            async with process:
                (registration,) = await controller.wait_for(
                    lambda: controller.seen(RegistrationRequested), within=30
                )
                job_id = await controller.submit(
                    str(src), str(dst),
                    options=JobOptions(protocol_options={"file.chunk_size": "65536"}),
                )
                await controller.wait_for(lambda: any(
                    0 < a.progress.bytes_done < len(data)
                    for a in controller.seen(ProgressReported)
                ))
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    code = await process.wait()
            await controller.stop()
    output = log_path.read_text()
    assert code == 0, output
    assert registration.register.agent_id == "proc-1"
    assert dict(registration.register.labels) == {"os": "linux"}
    events = [e for e in controller.log if isinstance(e, AttemptCompleted | AgentDeregistering)]
    assert [type(e).__name__ for e in events] == ["AttemptCompleted", "AgentDeregistering"]
    job = controller.job(job_id)
    assert job.state is JobState.COMPLETED
    assert job.sha256 == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == job.sha256
    assert "SIGTERM: draining" in output
    assert TOKEN not in output
    assert (tmp_path / "quorus-agent" / "agent-id").read_text().strip() == "proc-1"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=20,
        check=False,
    )


def test_without_a_token_it_says_where_it_looked(tmp_path: Path) -> None:
    result = _run("--controllers", "127.0.0.1:9", cwd=tmp_path)
    assert result.returncode == 2
    assert "quorus-data/token" in result.stderr
    assert "--token" in result.stderr


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    result = _run("--token", "t", "--label", "no-equals-sign", cwd=tmp_path)
    assert result.returncode == 2
    assert "label 'no-equals-sign': expected key=value" in result.stderr
    result = _run("--token", "t", "--controllers", "host:notaport:", cwd=tmp_path)
    assert result.returncode == 2
    assert "controller address" in result.stderr


def test_a_work_directory_serves_one_agent_at_a_time(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with work_dir_lock(work):
        result = _run("--token", "t", "--work-dir", str(work), cwd=tmp_path)
    assert result.returncode == 2
    assert "in use by another quorus-agent" in result.stderr
