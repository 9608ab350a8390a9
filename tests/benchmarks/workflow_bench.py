"""Workflow engine benchmarks, as ratios against a baseline run in the same script.

1. Definitions: load, validate and plan a TransferWorkflow of N transfers (default 5,000 in 50
   groups with dependencies), against the baseline of only parsing the same YAML with libyaml.
2. Local overhead: M empty files (default 1,000) copied through a workflow by the local runner,
   against the baseline of the same copies through the transfer engine directly with the same
   concurrency; the difference per transfer is the workflow's scheduling overhead.
3. Quorum overhead (``--quorum``): M empty transfers as one workflow on a controller process
   (standalone, fsync on) with ``--agents`` agent processes, against the baseline of the same
   M transfers submitted as jobs through the REST API (concurrently, then waited for); the
   difference per transfer is the workflow's overhead on the quorum.

Usage: python tests/benchmarks/workflow_bench.py [--transfers 5000] [--empty 1000] [--quorum]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml


def workflow_yaml(transfers: int, groups: int = 50) -> str:
    per_group = max(1, transfers // groups)
    lines = ["apiVersion: quorus.dev/v1", "kind: TransferWorkflow", "metadata:",
             "  name: bench", "spec:", "  execution: {parallelism: 8}",
             "  variables: {ROOT: /data}", "  groups:"]
    for g in range(groups):
        lines += [f"    - name: g{g}"]
        if g:
            lines += [f"      dependsOn: [g{g - 1}]"] if g % 5 else []
        lines += ["      transferGroup:", "        spec:",
                  "          execution: {strategy: parallel, maxConcurrency: 4}",
                  "          transfers:"]
        for t in range(per_group):
            lines += [f"            - name: t{t}",
                      f"              source: {{path: \"${{ROOT}}/in/g{g}/f{t}.bin\"}}",
                      f"              destination: {{path: \"${{ROOT}}/out/g{g}/f{t}.bin\"}}"]
            if t % 10:
                lines += [f"              dependsOn: [t{max(0, t - 1 - (t % 3))}]"]
    return "\n".join(lines) + "\n"


def best(times: list[float]) -> float:
    return min(times)


def bench_definitions(transfers: int, rounds: int) -> dict[str, Any]:
    from quorus.workflow.documents import load_text
    from quorus.workflow.prepare import prepare

    text = workflow_yaml(transfers)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parse, load, full = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        yaml.load(text, Loader=loader)
        t1 = time.perf_counter()
        documents = load_text(text, "bench.yaml")
        t2 = time.perf_counter()
        prepared = prepare(documents)
        t3 = time.perf_counter()
        parse.append(t1 - t0)
        load.append(t2 - t1)
        full.append(t3 - t1)
    steps = len(prepared.plan.steps)
    return {"transfers": steps, "levels": len(prepared.plan.levels), "lines": text.count("\n"),
            "baseline_parse_s": best(parse), "load_s": best(load),
            "load_validate_plan_s": best(full),
            "ratio_vs_parse": best(full) / best(parse)}


async def _engine_copies(pairs: list[tuple[Path, Path]], concurrency: int) -> float:
    from quorus.core.engine import TransferEngine, TransferRequest

    limiter = anyio.CapacityLimiter(concurrency)
    start = time.perf_counter()
    async with TransferEngine(max_concurrent=concurrency) as engine:

        async def one(src: Path, dst: Path) -> None:
            async with limiter:
                result = await engine.transfer(TransferRequest.create(str(src), str(dst)))
                assert result.ok, result.error

        async with anyio.create_task_group() as tg:
            for src, dst in pairs:
                tg.start_soon(one, src, dst)
    return time.perf_counter() - start


async def _workflow_copies(root: Path, count: int, concurrency: int) -> float:
    from quorus.workflow.binding import Binder, RunContext
    from quorus.workflow.documents import load_text
    from quorus.workflow.local import LocalRunner
    from quorus.workflow.prepare import prepare

    lines = ["apiVersion: quorus.dev/v1", "kind: TransferGroup", "metadata: {name: empty}",
             "spec:", f"  execution: {{strategy: parallel, maxConcurrency: {concurrency}}}",
             "  transfers:"]
    for i in range(count):
        lines += [f"    - name: t{i}", f"      source: {{path: {root}/in/f{i}}}",
                  f"      destination: {{path: {root}/wf/f{i}}}"]
    prepared = prepare(load_text("\n".join(lines), "empty.yaml"))
    start = time.perf_counter()
    binder = Binder(prepared.workflow, RunContext(started_at=time.time()))
    runner = LocalRunner(prepared.plan, binder, execution_id="bench",
                         max_engine_concurrency=concurrency)
    summary = await runner.run()
    assert summary.status.value == "completed", summary.error
    return time.perf_counter() - start


def bench_local(count: int, rounds: int, concurrency: int = 8) -> dict[str, Any]:
    engine_times, workflow_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i in range(count):
            (root / "in" / f"f{i}").write_bytes(b"")
        for r in range(rounds):
            pairs = [(root / "in" / f"f{i}", root / f"engine{r}" / f"f{i}") for i in range(count)]
            engine_times.append(anyio.run(_engine_copies, pairs, concurrency))
            workflow_times.append(anyio.run(_workflow_copies, root, count, concurrency))
            for d in (root / f"engine{r}", root / "wf"):
                for f in d.iterdir():
                    f.unlink()
    base, wf = statistics.median(engine_times), statistics.median(workflow_times)
    return {"transfers": count, "concurrency": concurrency, "engine_s": base,
            "workflow_s": wf, "ratio": wf / base, "workflow_per_transfer_ms": wf / count * 1000,
            "overhead_per_transfer_ms": (wf - base) / count * 1000}


class _Controller:
    """A ``quorus-controller`` (standalone) and agents as processes, on free loopback ports."""

    def __init__(self, root: Path, agents: int) -> None:
        import socket
        import subprocess
        import sys

        def port() -> int:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                return int(sock.getsockname()[1])

        self.token = "bench-token"
        self.http = f"127.0.0.1:{port()}"
        agent_port = f"127.0.0.1:{port()}"
        config = root / "controller.yaml"
        config.write_text(yaml.safe_dump({
            "node_id": "c1", "data_dir": str(root / "c1"), "listen_agents": agent_port,
            "listen_http": self.http, "token": self.token, "heartbeat_interval": 1.0,
            "progress_interval": 1.0, "schedule_interval": 0.2}))
        python = sys.executable
        self.procs = [subprocess.Popen(
            [python, "-c", "from quorus.core.controller.main import main; main()",
             "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        for i in range(agents):
            self.procs.append(subprocess.Popen(
                [python, "-c", "from quorus.core.agent.main import main; main()",
                 "--controllers", agent_port, "--agent-id", f"a{i}", "--work-dir",
                 str(root / f"a{i}"), "--max-concurrent", "8", "--token", self.token],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.client = httpx.Client(base_url=f"http://{self.http}", timeout=30,
                                   headers={"Authorization": f"Bearer {self.token}"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                agents_up = self.client.get("/v1/agents").json()["agents"]
                if len([a for a in agents_up if a.get("connected")]) == agents:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the controller and agents did not come up in 60 s")

    def completed(self, prefix: str) -> int:
        """How many completed jobs have ids starting with ``prefix`` (every page read)."""
        done, cursor = 0, None
        while True:
            params = {"state": "completed", "limit": "1000", **({"cursor": cursor} if cursor
                                                                 else {})}
            page = self.client.get("/v1/jobs", params=params).json()
            done += sum(1 for j in page["jobs"] if j["id"].startswith(prefix))
            cursor = page.get("next_cursor")
            if not cursor:
                return done

    def stop(self) -> None:
        self.client.close()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def bench_quorum(count: int, rounds: int, agents: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    jobs_times, workflow_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i in range(count):
            (root / "in" / f"f{i}").write_bytes(b"")
        fleet = _Controller(root, agents)
        try:
            for r in range(rounds):
                start = time.perf_counter()
                ids = [f"jobs{r}-{i}" for i in range(count)]

                def submit(i: int, r: int = r, ids: list[str] = ids) -> None:
                    fleet.client.post("/v1/jobs", json={
                        "id": ids[i], "source": str(root / "in" / f"f{i}"),
                        "destination": str(root / f"jobs{r}" / f"f{i}")}).raise_for_status()

                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(submit, range(count)))
                while fleet.completed(f"jobs{r}-") < count:
                    time.sleep(0.05)
                jobs_times.append(time.perf_counter() - start)

                lines = ["apiVersion: quorus.dev/v1", "kind: TransferGroup",
                         "metadata: {name: empty}", "spec:",
                         "  execution: {strategy: parallel, maxConcurrency: 1000}",
                         "  transfers:"]
                for i in range(count):
                    lines += [f"    - name: t{i}", f"      source: {{path: {root}/in/f{i}}}",
                              f"      destination: {{path: {root}/wf{r}/f{i}}}"]
                start = time.perf_counter()
                fleet.client.post("/v1/workflows/executions", json={
                    "id": f"wf{r}", "files": {"empty.yaml": "\n".join(lines)}}
                    ).raise_for_status()
                while True:
                    view = fleet.client.get(f"/v1/workflows/executions/wf{r}").json()
                    if view["status"] in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(0.05)
                assert view["status"] == "completed", view.get("error")
                workflow_times.append(time.perf_counter() - start)
        finally:
            fleet.stop()
    base, wf = statistics.median(jobs_times), statistics.median(workflow_times)
    return {"transfers": count, "agents": agents, "jobs_s": base, "workflow_s": wf,
            "ratio": wf / base, "workflow_per_transfer_ms": wf / count * 1000,
            "overhead_per_transfer_ms": (wf - base) / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--empty", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quorum", action="store_true")
    parser.add_argument("--agents", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "definitions": bench_definitions(args.transfers, args.rounds),
        "local": bench_local(args.empty, args.rounds),
    }
    if args.quorum:
        results["quorum"] = bench_quorum(args.empty, args.rounds, args.agents)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
