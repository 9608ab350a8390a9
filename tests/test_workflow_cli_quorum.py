"""``quorus workflow submit|status|list|watch|pause|resume|cancel`` as an operator runs them:
the ``quorus`` console script against a real controller process and a real agent process.
Definitions with problems and unbound variables are refused before anything is sent; a
submitted workflow's files arrive verified; pause, resume and cancel act on a running one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from quorus.core.testing.fixtures import payload_bytes

from tests.fleet_cluster import TOKEN, FleetCluster, sha256_of, wait_for

QUORUS = [sys.executable, "-c", "from quorus.core.cli.main import main; main()"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FleetCluster]:
    fleet = FleetCluster(tmp_path / "fleet", size=1)
    (tmp_path / "fleet").mkdir()
    try:
        yield fleet
    finally:
        fleet.stop_everything()


def quorus(cluster: FleetCluster, *args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    options = ["--controller", f"http://{cluster.http['c1']}", "--token", "env:QUORUS_TEST_TOKEN"]
    command = [*QUORUS, "workflow", *args]
    if args[0] in ("submit", "status", "list", "watch", "pause", "resume", "cancel"):
        command += options
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QUORUS_TEST_TOKEN": TOKEN, **(env or {})})


def group(root: Path, names: list[str], *, rate: str | None = None, extra: str = "",
          destination_extra: str = "") -> str:
    lines = ["apiVersion: quorus.dev/v1", "kind: TransferGroup", "metadata: {name: copies}",
             "spec:", "  execution: {strategy: sequential}",
             f"  variables: {{OUT: \"{root}/out/${{RUN}}\"}}", "  transfers:"]
    for name in names:
        lines += [f"    - name: {name}", f"      source: {{path: {root}/in/{name}.bin}}",
                  f"      destination: {{path: \"${{OUT}}/{name}.bin\"{destination_extra}}}"]
        if rate:
            lines += [f"      bandwidth: {rate}"]
    return "\n".join(lines) + "\n" + extra


@pytest.mark.anyio
async def test_submit_runs_the_workflow_and_status_and_list_show_it(
    cluster: FleetCluster, tmp_path: Path,
) -> None:
    names = ["a", "b", "c"]
    (tmp_path / "in").mkdir()
    for i, name in enumerate(names):
        (tmp_path / "in" / f"{name}.bin").write_bytes(payload_bytes(100_000 + i, seed=i))
    (tmp_path / "wf.yaml").write_text(group(tmp_path, names,
                                            destination_extra=', permissions: "640"'))
    cluster.start("c1")
    await cluster.leader()
    cluster.start_agent("a1")
    await cluster.wait_agents("a1")

    done = quorus(cluster, "submit", "wf.yaml", "--set", "RUN=one", "--id", "run-one",
                  "--wait", "--interval", "0.2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["status"] == "completed" and view["counts"] == {"completed": 3}
    for name in names:
        arrived = tmp_path / "out" / "one" / f"{name}.bin"
        assert sha256_of(arrived) == sha256_of(tmp_path / "in" / f"{name}.bin")
        assert arrived.stat().st_mode & 0o777 == 0o640  # the step's permissions, on the agent
        step = next(s for s in view["steps"] if s["step"] == f"copies/{name}")
        assert step["sha256"] == sha256_of(arrived)

    again = quorus(cluster, "submit", "wf.yaml", "--set", "RUN=one", "--id", "run-one",
                   cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == "run-one"
    listed = quorus(cluster, "list", "--json", cwd=tmp_path)
    assert [e["execution_id"] for e in json.loads(listed.stdout)] == ["run-one"]
    shown = quorus(cluster, "status", "run-one", cwd=tmp_path)
    assert "copies/b: completed job" in shown.stdout


def test_problems_are_refused_before_anything_is_sent(
    cluster: FleetCluster, tmp_path: Path,
) -> None:
    (tmp_path / "bad.yaml").write_text(group(tmp_path, ["a"]).replace("dependsOn", "x")
                                       .replace("source:", "sorce:"))
    # No controller runs: a refusal must come from the checks here.
    bad = quorus(cluster, "submit", "bad.yaml", "--set", "RUN=x", cwd=tmp_path)
    assert bad.returncode == 2
    assert "bad.yaml:9:" in bad.stderr and "sorce" in bad.stderr
    (tmp_path / "env.yaml").write_text(group(tmp_path, ["a"]).replace("${RUN}", "${env:NOPE}"))
    environment = {k: v for k, v in os.environ.items() if k != "NOPE"}
    missing = subprocess.run(
        [*QUORUS, "workflow", "submit", "env.yaml", "--controller",
         f"http://{cluster.http['c1']}", "--token", "env:QUORUS_TEST_TOKEN"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**environment, "QUORUS_TEST_TOKEN": TOKEN})
    assert missing.returncode == 2
    assert "environment variable NOPE is not set" in missing.stderr


@pytest.mark.anyio
async def test_pause_resume_and_cancel_a_running_execution(
    cluster: FleetCluster, tmp_path: Path,
) -> None:
    names = ["p1", "p2", "p3", "p4"]
    (tmp_path / "in").mkdir()
    for i, name in enumerate(names):
        (tmp_path / "in" / f"{name}.bin").write_bytes(payload_bytes(400_000, seed=i))
    # Slow enough (4 s a copy) that the pause, sent by a second CLI process right after the
    # submission, lands while the first copy runs even on a loaded machine.
    (tmp_path / "wf.yaml").write_text(group(tmp_path, names, rate="100KB/s"))
    cluster.start("c1")
    await cluster.leader()
    cluster.start_agent("a1")
    await cluster.wait_agents("a1")

    submitted = quorus(cluster, "submit", "wf.yaml", "--set", "RUN=two", "--id", "run-two",
                       cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    paused = quorus(cluster, "pause", "run-two", "--json", cwd=tmp_path)
    assert paused.returncode == 0 and json.loads(paused.stdout)["paused"] is True

    async def first_done() -> dict[str, Any] | None:
        view = await cluster.get("/v1/workflows/executions/run-two")
        statuses = [s["status"] for s in view["steps"]]
        return view if statuses[0] == "completed" else None

    view = await wait_for(first_done, 30, "the first copy to complete")
    # Paused: the first copy (already running) finished, nothing further started.
    assert [s["status"] for s in view["steps"][1:]] == ["pending"] * 3

    resumed = quorus(cluster, "resume", "run-two", cwd=tmp_path)
    assert resumed.returncode == 0

    async def second_running() -> bool | None:
        view = await cluster.get("/v1/workflows/executions/run-two")
        return True if view["steps"][1]["status"] == "running" else None

    await wait_for(second_running, 30, "the second copy to start after resume")
    cancelled = quorus(cluster, "cancel", "run-two", "--reason", "operator test",
                       cwd=tmp_path)
    assert cancelled.returncode == 0
    watched = quorus(cluster, "watch", "run-two", "--interval", "0.2", "--json", cwd=tmp_path)
    assert watched.returncode == 1
    final = json.loads(watched.stdout)
    assert final["status"] == "cancelled"
    statuses = {s["step"]: s["status"] for s in final["steps"]}
    assert statuses["copies/p1"] == "completed"
    assert statuses["copies/p2"] == "cancelled"
    assert statuses["copies/p3"] == statuses["copies/p4"] == "cancelled"
