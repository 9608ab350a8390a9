"""Workflow engine benchmarks, as ratios against a baseline run in the same script.

1. Definitions: load, validate and plan a TransferWorkflow of N transfers (default 5,000 in 50
   groups with dependencies), against the baseline of only parsing the same YAML with libyaml.
2. Local overhead: M empty files (default 1,000) copied through a workflow by the local runner,
   against the baseline of the same copies through the transfer engine directly with the same
   concurrency; the difference per transfer is the workflow's scheduling overhead.
3. Quorum overhead (``--quorum``): the same M empty transfers as one workflow on an in-process
   controller with in-process agents, against the baseline of M jobs submitted directly.

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
            "workflow_s": wf, "ratio": wf / base,
            "overhead_per_transfer_ms": (wf - base) / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--empty", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quorum", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "definitions": bench_definitions(args.transfers, args.rounds),
        "local": bench_local(args.empty, args.rounds),
    }
    if args.quorum:
        from quorus.workflow.controller.bench import bench_quorum  # type: ignore[import-not-found]

        results["quorum"] = bench_quorum(args.empty, args.rounds)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
