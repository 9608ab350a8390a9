"""The fleet commands (``quorus cluster|agents|jobs``) against a real controller.

Each test starts a controller (standalone consensus, loopback, free ports, data under the
test's tmp dir) and a real agent runtime that runs ``file`` jobs, both in a background event
loop (asyncio and trio in turn). The CLI runs as an OS process for the end-to-end cases and
in-process through click's runner for the rest; either way it speaks HTTP to the controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from click.testing import CliRunner, Result
from quorus.core.agent import AgentConfig, AgentRuntime
from quorus.core.agentproto import Backoff
from quorus.core.cli.client import ControllerClient
from quorus.core.cli.main import cli
from quorus.core.controller import AgentState, JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.secrets import Secret
from quorus.core.testing.controller import TOKEN, controller_address, running_controller
from quorus.core.testing.fixtures import free_port, payload_bytes

QUORUS = str(Path(sys.executable).with_name("quorus"))
AGENT = "agent-1"


@asynccontextmanager
async def controller_with_agent(tmp: Path) -> AsyncIterator[ControllerServer]:
    """A controller and one agent (labels ``team=blue``) registered with it."""
    async with running_controller(tmp / "controller") as server:
        runtime = AgentRuntime(AgentConfig(
            controllers=(controller_address(server),), agent_id=AGENT, token=Secret(TOKEN),
            work_dir=tmp / "agent", max_concurrent=2, labels={"team": "blue"},
            backoff=Backoff(initial=0.05, maximum=0.2),
        ))
        ended = anyio.Event()

        async def run() -> None:
            try:
                await runtime.run()
            finally:
                ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(15):
                while AGENT not in server.soft.connected:  # noqa: ASYNC110 - bounded
                    await anyio.sleep(0.02)
            yield server
            if not ended.is_set():
                runtime.stop("test over")
            with anyio.fail_after(15):
                await ended.wait()


@dataclass
class Fleet:
    """The running controller, seen from the test's thread."""

    server: ControllerServer
    portal: BlockingPortal
    tmp: Path

    @property
    def url(self) -> str:
        return f"http://{self.server.settings.listen_http}"

    def read(self, what: Callable[[ControllerServer], Any]) -> Any:
        """``what(server)``, evaluated in the controller's event loop."""
        return self.portal.call(lambda: what(self.server))

    def job_state(self, job_id: str) -> JobState:
        state: JobState = self.read(lambda s: s.state.jobs[job_id].state)
        return state

    def wait_until(self, condition: Callable[[], bool], within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``quorus`` process pointed at this controller."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("QUORUS_TOKEN", "QUORUS_CONTROLLER")}
        env.update({"QUORUS_CONTROLLER": self.url, "QUORUS_TOKEN": TOKEN, **extra})
        return env

    def run(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``quorus ARGS`` as an OS process, in the test's tmp dir."""
        return subprocess.run([QUORUS, *args], capture_output=True, text=True, cwd=self.tmp,
                              env=self.env() if env is None else env, timeout=timeout,
                              check=False)

    def invoke(self, *args: str, token: str = TOKEN) -> Result:
        """``quorus ARGS`` in this process (click's runner)."""
        return CliRunner().invoke(cli, [*args, "--controller", self.url, "--token", token],
                                  catch_exceptions=False)

    def source(self, name: str, size: int) -> tuple[Path, str]:
        data = payload_bytes(size, seed=size)
        path = self.tmp / name
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()


@pytest.fixture
def fleet(tmp_path: Path, anyio_backend: str) -> Iterator[Fleet]:
    with (
        start_blocking_portal(anyio_backend) as portal,
        portal.wrap_async_context_manager(controller_with_agent(tmp_path)) as server,
    ):
        yield Fleet(server, portal, tmp_path)


def job_json(result: Result | subprocess.CompletedProcess[str]) -> dict[str, Any]:
    out = result.output if isinstance(result, Result) else result.stdout
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


# -- end to end, as OS processes -----------------------------------------------------------------


def test_submit_wait_runs_the_job_and_reports_its_sha256(fleet: Fleet) -> None:
    src, sha = fleet.source("in.bin", 300_000)
    dst = fleet.tmp / "out" / "copy.bin"
    proc = fleet.run("jobs", "submit", str(src), str(dst), "--checksum", f"sha256:{sha}",
                     "--wait", "--progress", "plain", "--interval", "100ms")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    assert job_id.startswith("job-")
    assert proc.stderr.count(f"{job_id}: completed") == 1
    assert f"sha256:{sha}" in proc.stderr
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == sha
    assert fleet.job_state(job_id) is JobState.COMPLETED


def test_plain_progress_shows_the_bytes_moving_and_the_bar_draws(fleet: Fleet) -> None:
    src, sha = fleet.source("slow.bin", 512 * 1024)
    slow = ("--bwlimit", "200KB/s", "-o", "file.chunk_size=16384", "--interval", "200ms")
    proc = fleet.run("jobs", "submit", str(src), str(fleet.tmp / "a.bin"), "--wait",
                     "--progress", "plain", *slow)
    assert proc.returncode == 0, proc.stderr
    running = [line for line in proc.stderr.splitlines() if ": running on agent-1" in line]
    assert len(running) >= 2, proc.stderr
    assert "512.0 KiB (" in running[-1]
    proc = fleet.run("jobs", "submit", str(src), str(fleet.tmp / "b.bin"), "--wait",
                     "--progress", "bar", *slow, env=fleet.env(COLUMNS="120"))
    assert proc.returncode == 0, proc.stderr
    assert "512.0/512.0 KiB" in proc.stderr and f"sha256:{sha}" in proc.stderr


def test_list_json_shows_every_job_in_submission_order(fleet: Fleet) -> None:
    ids = []
    for n in range(3):
        src, _ = fleet.source(f"in{n}.bin", 10_000 + n)
        proc = fleet.run("jobs", "submit", str(src), str(fleet.tmp / f"out{n}.bin"))
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip())
    fleet.wait_until(lambda: all(fleet.job_state(i) is JobState.COMPLETED for i in ids))
    proc = fleet.run("jobs", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = job_json(proc)
    assert [j["id"] for j in listing["jobs"]] == ids
    assert {j["state"] for j in listing["jobs"]} == {"completed"}
    assert listing["next_cursor"] is None


def test_cancel_stops_a_running_job_and_watch_reports_it(fleet: Fleet) -> None:
    src, _ = fleet.source("slow.bin", 1024 * 1024)
    dst = fleet.tmp / "out" / "slow.bin"
    proc = fleet.run("jobs", "submit", str(src), str(dst), "--bwlimit", "128KB/s",
                     "-o", "file.chunk_size=16384")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    fleet.wait_until(lambda: fleet.job_state(job_id) is JobState.RUNNING)
    proc = fleet.run("jobs", "cancel", job_id, "--reason", "not needed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{job_id}: cancelled")
    assert fleet.job_state(job_id) is JobState.CANCELLED
    proc = fleet.run("jobs", "watch", job_id, "--progress", "none")
    assert proc.returncode == 1
    assert f"job {job_id} was cancelled: not needed" in proc.stderr
    fleet.wait_until(lambda: not dst.exists() and not any(
        p.name.endswith(".part") for p in dst.parent.iterdir()))


def test_agents_drain_lets_the_running_job_finish_then_deregisters(fleet: Fleet) -> None:
    # 4 s at 256 KB/s: the drain, sent by a CLI process, lands while it runs on a loaded machine.
    src, sha = fleet.source("slow.bin", 1024 * 1024)
    job_id = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--bwlimit",
                          "256KB/s", "-o", "file.chunk_size=16384").output.strip()
    fleet.wait_until(lambda: fleet.job_state(job_id) is JobState.RUNNING)
    proc = fleet.run("agents", "drain", AGENT, "--timeout", "20s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{AGENT}: draining; its 1 running job may finish")
    fleet.wait_until(lambda: fleet.read(lambda s: s.state.agents[AGENT].state)
                     is AgentState.DEREGISTERED)
    assert fleet.job_state(job_id) is JobState.COMPLETED
    assert hashlib.sha256((fleet.tmp / "o.bin").read_bytes()).hexdigest() == sha
    proc = fleet.run("agents", "list", "--json")
    assert [(a["id"], a["state"]) for a in job_json(proc)["agents"]] == [
        (AGENT, "deregistered")]


def test_cluster_status_as_a_table_and_as_json(fleet: Fleet) -> None:
    proc = fleet.run("cluster", "status")
    assert proc.returncode == 0, proc.stderr
    node = fleet.server.settings.node_id
    assert "leader" in proc.stdout and node in proc.stdout and "standalone" in proc.stdout
    status = job_json(fleet.run("cluster", "status", "--json"))
    assert status["leader"] == node
    assert status["role"] == "leader"
    assert status["agents"] == 1
    assert status["commit_index"] >= 1


def test_a_wrong_token_is_a_usage_error_that_says_what_to_fix(fleet: Fleet) -> None:
    proc = fleet.run("jobs", "list", env=fleet.env(QUORUS_TOKEN="not-the-token"))
    assert proc.returncode == 2
    assert "refused the API token" in proc.stderr and "--token" in proc.stderr
    assert "not-the-token" not in proc.stderr + proc.stdout
    proc = fleet.run("cluster", "status", "--token", "env:NO_SUCH_VARIABLE")
    assert proc.returncode == 2
    assert "--token" in proc.stderr and "NO_SUCH_VARIABLE" in proc.stderr


def test_the_token_file_the_controller_wrote_is_the_default(fleet: Fleet) -> None:
    env = fleet.env()
    del env["QUORUS_TOKEN"]
    proc = fleet.run("cluster", "status", "--json", env=env)
    assert proc.returncode == 2
    assert "quorus-data/token" in proc.stderr
    (fleet.tmp / "quorus-data").mkdir()
    (fleet.tmp / "quorus-data" / "token").write_text(TOKEN + "\n")
    proc = fleet.run("cluster", "status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert job_json(proc)["agents"] == 1


def test_a_controller_that_is_down_is_skipped_for_the_next(fleet: Fleet) -> None:
    down = f"127.0.0.1:{free_port()}"
    proc = fleet.run("agents", "list", "--json", "--controller", f"{down},{fleet.url}")
    assert proc.returncode == 0, proc.stderr
    assert [a["id"] for a in job_json(proc)["agents"]] == [AGENT]
    src, _ = fleet.source("in.bin", 4_000)
    proc = fleet.run("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--controller",
                     down, "--controller", fleet.url, "--wait", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    assert fleet.job_state(proc.stdout.strip()) is JobState.COMPLETED
    proc = fleet.run("agents", "list", "--controller", down, "--controller",
                     f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    assert "no controller answered" in proc.stderr and down in proc.stderr


def test_interrupting_watch_exits_130_and_the_job_goes_on(fleet: Fleet) -> None:
    src, _ = fleet.source("slow.bin", 512 * 1024)
    job_id = job_json(fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"),
                                   "--bwlimit", "128KB/s", "-o", "file.chunk_size=16384",
                                   "--json"))["id"]
    watch = subprocess.Popen([QUORUS, "jobs", "watch", job_id, "--progress", "plain",
                              "--interval", "100ms"], cwd=fleet.tmp, env=fleet.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stderr is not None
        # Interrupt once the process follows the job (its first line), not while it starts.
        ready, _, _ = select.select([watch.stderr], [], [], 30)
        assert ready, "quorus jobs watch printed nothing"
        first = watch.stderr.readline()
        assert first.startswith(f"{job_id}: "), first
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=15)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(timeout=5)
    assert watch.returncode == 130, err
    assert f"quorus jobs watch {job_id}" in err
    fleet.wait_until(lambda: fleet.job_state(job_id) is JobState.COMPLETED)


# -- in-process ---------------------------------------------------------------------------------


def test_submit_passes_the_api_options(fleet: Fleet) -> None:
    src, sha = fleet.source("in.bin", 20_000)
    result = fleet.invoke(
        "jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--id", "nightly-1",
        "--checksum", f"SHA256:{sha.upper()}", "--size", "20000", "--priority", "7",
        "--label", "team=blue", "--avoid-label", "zone=cold", "--max-attempts", "5",
        "--overwrite", "overwrite", "--bwlimit", "10MB/s", "-o", "file.chunk_size=4096",
        "--prefer-site", "datacenter=dc1", "--json")
    assert result.exit_code == 0, result.output
    job = job_json(result)
    assert job["id"] == "nightly-1"
    assert job["priority"] == 7
    assert job["options"] == {"checksum": f"sha256:{sha}", "expected_size": 20000,
                              "overwrite": "overwrite", "bandwidth_mbps": 80.0,
                              "protocol_options": {"file.chunk_size": "4096"},
                              "size_min": None, "size_max": None, "mode": None,
                              "create_directories": True, "streams": None}
    assert job["placement"]["affinity"] == [
        {"key": "team", "operator": "=", "value": "blue"}]
    assert job["placement"]["anti_affinity"] == [
        {"key": "zone", "operator": "=", "value": "cold"}]
    assert job["placement"]["preferred_site"] == {"region": None, "datacenter": "dc1",
                                                  "zone": None}
    assert job["retry"] == {"max_attempts": 5}
    fleet.wait_until(lambda: fleet.job_state("nightly-1") is JobState.COMPLETED)


def test_resubmitting_the_same_id_returns_the_same_job(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 5_000)
    first = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--id", "once")
    second = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--id", "once")
    assert first.exit_code == second.exit_code == 0
    assert first.output.strip() == second.output.strip() == "once"
    listing = job_json(fleet.invoke("jobs", "list", "--json"))
    assert [j["id"] for j in listing["jobs"]] == ["once"]


def test_a_failed_job_exits_1_with_its_error(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 5_000)
    result = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--checksum",
                          "sha256:" + "0" * 64, "--max-attempts", "1", "--wait",
                          "--progress", "none", "--interval", "100ms")
    assert result.exit_code == 1
    assert "failed after 1 attempt(s)" in result.output
    assert not (fleet.tmp / "o.bin").exists()
    shown = fleet.invoke("jobs", "show", result.output.splitlines()[0])
    assert shown.exit_code == 0
    assert "failed" in shown.output and AGENT in shown.output and "attempts" in shown.output


def test_a_job_no_agent_fits_shows_why_it_waits(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 5_000)
    job_id = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"),
                          "--label", "team=red").output.strip()
    fleet.wait_until(lambda: bool(fleet.read(lambda s: s.soft.waiting.get(job_id))))
    reason = fleet.read(lambda s: s.soft.waiting[job_id])
    shown = fleet.invoke("jobs", "show", job_id)
    assert shown.exit_code == 0
    assert "waiting because" in shown.output and "queued" in shown.output
    assert "team=red" in shown.output
    assert job_json(fleet.invoke("jobs", "show", job_id, "--json"))["waiting_reason"] == reason
    table = fleet.invoke("jobs", "list", "--state", "queued")
    assert job_id in table.output and "1 job" in table.output
    timed_out = fleet.invoke("jobs", "watch", job_id, "--timeout", "300ms", "--interval",
                             "100ms", "--progress", "none")
    assert timed_out.exit_code == 1
    assert "still queued" in timed_out.output


def test_list_pages_through_cursors_and_filters(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 2_000)
    ids = [fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / f"o{n}.bin")).output.strip()
           for n in range(5)]
    held = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "held.bin"),
                        "--label", "team=red").output.strip()
    fleet.wait_until(lambda: all(fleet.job_state(i) is JobState.COMPLETED for i in ids))
    page = job_json(fleet.invoke("jobs", "list", "--limit", "2", "--json"))
    assert [j["id"] for j in page["jobs"]] == ids[:2] and page["next_cursor"]
    rest = job_json(fleet.invoke("jobs", "list", "--cursor", page["next_cursor"], "--json"))
    assert [j["id"] for j in rest["jobs"]] == [*ids[2:], held]
    table = fleet.invoke("jobs", "list", "--limit", "2")
    assert f"more with --cursor {page['next_cursor']}" in table.output
    on_agent = job_json(fleet.invoke("jobs", "list", "--agent", AGENT, "--all", "--json"))
    assert [j["id"] for j in on_agent["jobs"]] == ids
    queued = job_json(fleet.invoke("jobs", "list", "--state", "queued", "--json"))
    assert [j["id"] for j in queued["jobs"]] == [held]
    with ControllerClient([fleet.url], Secret(TOKEN)) as client:
        everything, cursor = client.list_jobs(limit=None, page_size=2)
        first_four, after = client.list_jobs(limit=4, page_size=3)
    assert [j["id"] for j in everything] == [*ids, held] and cursor is None
    assert [j["id"] for j in first_four] == ids[:4] and after is not None


def test_agents_list_and_show(fleet: Fleet) -> None:
    table = fleet.invoke("agents", "list")
    assert table.exit_code == 0
    assert AGENT in table.output and "file" in table.output and "team=blue" in table.output
    shown = fleet.invoke("agents", "show", AGENT)
    assert shown.exit_code == 0 and "protocols" in shown.output and "yes" in shown.output
    agent = job_json(fleet.invoke("agents", "show", AGENT, "--json"))
    assert agent["id"] == AGENT and agent["connected"] is True
    assert agent["labels"] == {"team": "blue"}
    missing = fleet.invoke("agents", "show", "no-such-agent")
    assert missing.exit_code == 1 and "no agent 'no-such-agent'" in missing.output


def test_credentials_never_show(fleet: Fleet) -> None:
    source = "http://alice:s3cret-pw@127.0.0.1:9/data.bin?token=q-secret"
    submitted = fleet.invoke("jobs", "submit", source, str(fleet.tmp / "o.bin"),
                             "-o", "http.password=hunter2", "-o", "http.bearer_token=tok-9",
                             "--max-attempts", "1", "--json")
    assert submitted.exit_code == 0, submitted.output
    job_id = job_json(submitted)["id"]
    outputs = [submitted.output]
    for args in (("jobs", "show", job_id), ("jobs", "show", job_id, "--json"),
                 ("jobs", "list"), ("jobs", "list", "--json"),
                 ("jobs", "watch", job_id, "--timeout", "200ms", "--progress", "plain",
                  "--interval", "100ms"),
                 ("jobs", "cancel", job_id), ("agents", "show", AGENT, "--json")):
        outputs.append(fleet.invoke(*args).output)
    text = "\n".join(outputs)
    for secret in ("s3cret-pw", "q-secret", "hunter2", "tok-9", TOKEN):
        assert secret not in text
    assert "alice" in text and "http.password=***" in text


@pytest.mark.parametrize(("args", "named"), [
    (("jobs", "submit", "/a", "/b", "--checksum", "md5:abc"), "--checksum"),
    (("jobs", "submit", "/a", "/b", "-o", "nodot=1"), "SCHEME.KEY=VALUE"),
    (("jobs", "submit", "/a", "/b", "--label", "=x"), "--label"),
    (("jobs", "submit", "/a", "/b", "--require-site", "planet=earth"), "--require-site"),
    (("jobs", "submit", "/a", "/b", "--size", "lots"), "--size"),
    (("jobs", "submit", "relative/a", "/b"), "relative"),
    (("jobs", "watch", "x", "--interval", "0s"), "--interval"),
    (("agents", "drain", AGENT, "--timeout", "soon"), "--timeout"),
])
def test_usage_errors_exit_2_and_name_the_input(
    fleet: Fleet, args: tuple[str, ...], named: str
) -> None:
    result = fleet.invoke(*args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert fleet.read(lambda s: len(s.state.jobs)) == 0


def test_refusals_exit_1(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 2_000)
    job_id = fleet.invoke("jobs", "submit", str(src), str(fleet.tmp / "o.bin"), "--wait",
                          "--progress", "none", "--interval", "100ms").output.splitlines()[0]
    refused = fleet.invoke("jobs", "cancel", job_id)
    assert refused.exit_code == 1 and "409" in refused.output
    unknown = fleet.invoke("jobs", "show", "no-such-job")
    assert unknown.exit_code == 1 and "no job 'no-such-job'" in unknown.output
    bad_controller = CliRunner().invoke(cli, ["jobs", "list", "--controller", "ftp://x:1",
                                              "--token", TOKEN])
    assert bad_controller.exit_code == 2 and "invalid controller" in bad_controller.output


def test_membership_commands_reach_the_controller(fleet: Fleet) -> None:
    # The standalone backend has no membership: the controller's 501 comes back as exit 1.
    for args in (("cluster", "add-member", "c2", "127.0.0.1:7091"),
                 ("cluster", "add-member", "c2", "127.0.0.1:7091", "--agents",
                  "127.0.0.1:7071", "--http", "127.0.0.1:7081"),
                 ("cluster", "remove-member", "c2"), ("cluster", "transfer-leader", "c2")):
        result = fleet.invoke(*args)
        assert result.exit_code == 1, result.output
        assert "501" in result.output and "standalone" in result.output.lower()
    malformed = fleet.invoke("cluster", "add-member", "c2", "no-port")
    assert malformed.exit_code == 2 and "address" in malformed.output
    for option in ("--agents", "--http"):
        bad = fleet.invoke("cluster", "add-member", "c2", "127.0.0.1:7091", option, "no-port")
        assert bad.exit_code == 2, bad.output
        assert f"invalid {option[2:]} address 'no-port'" in bad.output
    assert fleet.read(lambda s: dict(s.state.controllers)) == {}


def test_submit_from_a_file_sends_batches_and_reports_each_job(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, sha = fleet.source("in.bin", 3_000)
    lines = [json.dumps({"id": f"many-{n}", "source": str(src),
                         "destination": str(fleet.tmp / "many" / f"{n}.bin")}) for n in range(5)]
    lines.insert(2, "# a comment, then a blank line")
    lines.insert(3, "")
    lines.append(json.dumps({"source": "relative/in.bin", "destination": "/o.bin"}))
    lines.append(json.dumps({"source": str(src), "destination": str(fleet.tmp / "no-id.bin"),
                             "priority": 9}))
    jobfile = fleet.tmp / "jobs.jsonl"
    jobfile.write_text("\n".join(lines) + "\n")
    chunks: list[int] = []
    original = ControllerClient.submit_jobs

    def counted(self: ControllerClient, submissions: Any) -> dict[str, Any]:
        chunks.append(len(submissions))
        return original(self, submissions)

    monkeypatch.setattr(ControllerClient, "submit_jobs", counted)
    result = fleet.invoke("jobs", "submit", "--from", str(jobfile), "--batch-size", "3",
                          "--checksum", f"sha256:{sha}", "--json")
    assert result.exit_code == 1, result.output
    assert "1 of 7 jobs refused" in result.output
    answer = json.loads(result.output[:result.output.rindex("}") + 1])
    assert chunks == [3, 3, 1]
    assert answer["submitted"] == 6 and answer["refused"] == 1
    results = answer["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["line"] for r in results] == [1, 2, 5, 6, 7, 8, 9]
    assert [r["status"] for r in results] == [201] * 5 + [400, 201]
    assert "relative" in results[5]["message"]
    assert results[6]["job"]["priority"] == 9 and results[6]["id"].startswith("job-")
    # The command's options are defaults of every entry.
    assert {r["job"]["options"]["checksum"] for r in results if r["status"] == 201} == {
        f"sha256:{sha}"}
    fleet.wait_until(lambda: all(fleet.job_state(f"many-{n}") is JobState.COMPLETED
                                 for n in range(5)))
    # Running the same command again queues nothing twice (the entries with an id; the one
    # without gets a fresh id, as a single submission without --id does).
    again = fleet.invoke("jobs", "submit", "--from", str(jobfile), "--checksum",
                         f"sha256:{sha}", "--json")
    rerun = json.loads(again.output[:again.output.rindex("}") + 1])
    assert [r["status"] for r in rerun["results"]] == [201] * 5 + [400, 201]
    assert [r["job"]["id"] for r in rerun["results"][:5]] == [f"many-{n}" for n in range(5)]
    assert fleet.read(lambda s: len(s.state.jobs)) == 7


def test_submit_from_a_yaml_list_prints_a_table(fleet: Fleet) -> None:
    src, _ = fleet.source("in.bin", 2_000)
    jobfile = fleet.tmp / "jobs.yaml"
    jobfile.write_text("".join(
        f"- id: y-{n}\n  source: {src}\n  destination: {fleet.tmp / f'y{n}.bin'}\n"
        for n in range(3)))
    result = fleet.invoke("jobs", "submit", "--from", str(jobfile), "--tenant", "default")
    assert result.exit_code == 0, result.output
    for n in range(3):
        assert f"y-{n}" in result.output
    assert "3 jobs submitted" in result.output and "queued" in result.output
    assert fleet.read(lambda s: sorted(s.state.jobs)) == ["y-0", "y-1", "y-2"]


@pytest.mark.parametrize(("content", "args", "named"), [
    ('{"source": "/a"}\n', (), "jobs.jsonl:1: destination"),
    ('{"source": "/a", "destination": "/b"}\n{"source": "/a", "destination": "/b", '
     '"priority": "high"}\n', (), "jobs.jsonl:2: priority"),
    ('{"source": "/a", "destination": "/b"}\nnot json\n', (), "jobs.jsonl:2: not a JSON"),
    ('["/a", "/b"]\n', (), "jobs.jsonl:1: expected an object"),
    ("# nothing\n", (), "no jobs in it"),
    ('{"source": "/a", "destination": "/b"}\n', ("/a", "/b"), "--from"),
    ('{"source": "/a", "destination": "/b"}\n', ("--wait",), "--from"),
    ('{"source": "/a", "destination": "/b"}\n', ("--label", "=x"), "--label"),
])
def test_submit_from_a_bad_file_is_a_usage_error_and_sends_nothing(
    fleet: Fleet, content: str, args: tuple[str, ...], named: str,
) -> None:
    jobfile = fleet.tmp / "jobs.jsonl"
    jobfile.write_text(content)
    result = fleet.invoke("jobs", "submit", "--from", str(jobfile), *args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert fleet.read(lambda s: len(s.state.jobs)) == 0


def test_an_agent_not_heard_from_yet_shows_its_free_slots_as_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from quorus.core.cli.fleetview import print_agent, print_agents

    record = {"id": "a1", "state": "registering", "connected": True,
              "capabilities": {"protocols": ["file"], "max_concurrent": 4}, "free_slots": None}
    print_agent(record)
    print_agents([record, {**record, "id": "a2", "free_slots": 3}])
    shown = capsys.readouterr().out
    assert "None" not in shown
    assert "? of 4" in shown and "?/4" in shown and "3/4" in shown
