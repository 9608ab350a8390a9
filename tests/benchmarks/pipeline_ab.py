"""Interleaved A/B of the engine's data path: this checkout against another commit's.

Two measurements, every case once per round, the order reversed every other round (on these
shared 2-core machines the cost of fresh page-cache pages swings from run to run, so only
medians of interleaved rounds compare):

- ``pipeline``: :func:`quorus.core.engine.pipeline.pump` alone, in this process: 1 MiB chunks
  from memory, hashed and written to a local file (fsynced), the baseline's ``pipeline.py``
  loaded beside this checkout's. Wall seconds and CPU seconds (user + system, all threads).
- ``transfer``: ``quorus transfer SOURCE`` as a user runs it, with a copy of this checkout's
  ``quorus-core`` holding the baseline's ``pipeline.py`` first on ``PYTHONPATH``, and as it is;
  with ``--url`` an HTTP source (e.g. nginx on loopback serving a 1 GiB file), with
  ``curl -o`` as a third case. Both run on the same event loop (``QUORUS_UVLOOP`` is passed
  through as set, so ``QUORUS_UVLOOP=0`` measures plain asyncio).

Usage::

    .venv/bin/python tests/benchmarks/pipeline_ab.py --baseline HEAD~3 --rounds 10 \\
        --source /tmp/src.bin [--url http://127.0.0.1:PORT/src.bin]

Output is deleted and ``sync`` run before each case; results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.lowlevel
from quorus.core.engine import pipeline as current_pipeline
from quorus.core.protocol import ReadStream
from quorus.core.protocols.file import FileProtocol
from quorus.core.uri import parse_location

MIB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
BLOCKS = [os.urandom(MIB) for _ in range(64)]


def baseline_src(ref: str, into: Path) -> Path:
    """This checkout's ``quorus-core/src`` copied under ``into``, with commit ``ref``'s
    ``engine/pipeline.py`` in it: only the data path differs between the two cases."""
    src = into / "baseline-src"
    shutil.copytree(REPO / "quorus-core" / "src", src,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    relative = "quorus/core/engine/pipeline.py"
    old = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:quorus-core/src/{relative}"],
                         check=True, capture_output=True).stdout
    (src / relative).write_bytes(old)
    return src


def load_pipeline(src: Path) -> ModuleType:
    path = src / "quorus" / "core" / "engine" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("baseline_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class MemoryChunks(ReadStream):
    """``count`` chunks of 1 MiB cycled from 64 random blocks."""

    def __init__(self, count: int, blocks: list[bytes]) -> None:
        self._left = count
        self.blocks = blocks

    async def read(self) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self._left:
            return b""
        self._left -= 1
        return self.blocks[self._left % 64]

    async def aclose(self) -> None:
        pass


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def pump_once(module: ModuleType, target: Path, mib: int) -> tuple[float, float]:
    location = parse_location(str(target))
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    async with await FileProtocol().open_write(location, 0) as writer:
        await module.pump(MemoryChunks(mib, BLOCKS), hashlib.sha256(), writer=writer)
        await writer.commit()
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu


def command_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu


def interleave(cases: dict[str, Callable[[], tuple[float, float]]], rounds: int,
               output: Path) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    names = list(cases)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            output.unlink(missing_ok=True)
            os.sync()
            results[name].append(cases[name]())
            output.unlink(missing_ok=True)
    return results


def table(title: str, results: dict[str, list[tuple[float, float]]], size: int) -> str:
    lines = [f"### {title}", "", "| case | MB/s median | wall s median | min | max | CPU s median |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        walls = [wall for wall, _ in rows]
        wall = statistics.median(walls)
        cpu = statistics.median(c for _, c in rows)
        lines.append(f"| {name} | {size / wall / 1e6:.0f} | {wall:.3f} | {min(walls):.3f} | "
                     f"{max(walls):.3f} | {cpu:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="git commit to compare against")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mib", type=int, default=1024, help="size of the pipeline-alone runs")
    parser.add_argument("--source", type=Path, help="a local file for `quorus transfer`")
    parser.add_argument("--url", help="an HTTP URL for `quorus transfer` and curl")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pipeline-ab-") as tmp:
        work = Path(tmp)
        old_src = baseline_src(args.baseline, work)
        baseline = load_pipeline(old_src)
        output = work / "out.bin"
        print(f"- date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, {os.cpu_count()} CPUs, Python "
              f"{sys.version.split()[0]}; baseline {args.baseline}; {args.rounds} rounds\n")

        def pumped(module: ModuleType) -> Callable[[], tuple[float, float]]:
            return lambda: anyio.run(pump_once, module, output, args.mib)

        results = interleave({"pipeline, baseline": pumped(baseline),
                              "pipeline, this checkout": pumped(current_pipeline)},
                             args.rounds, output)
        print(table(f"pump alone: {args.mib} MiB from memory to a local file", results,
                    args.mib * MIB) + "\n")

        quorus = str(Path(sys.executable).with_name("quorus"))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        old_env = {**env, "PYTHONPATH": str(old_src)}
        for source in (str(args.source) if args.source else None, args.url):
            if source is None:
                continue
            transfer = [quorus, "transfer", source, str(output)]
            cases: dict[str, Callable[[], tuple[float, float]]] = {
                "quorus transfer, baseline": lambda t=transfer: command_once(t, old_env),
                "quorus transfer, this checkout": lambda t=transfer: command_once(t, env),
            }
            curl = shutil.which("curl")
            if source.startswith("http") and curl:
                fetch = [curl, "-s", "-o", str(output), source]
                cases["curl -o (no verification)"] = lambda c=fetch: command_once(c, env)
            results = interleave(cases, args.rounds, output)
            size = _size(transfer, env, output)
            print(table(f"`quorus transfer {source}`", results, size) + "\n")


def _size(command: list[str], env: dict[str, Any], output: Path) -> int:
    command_once(command, env)
    size = output.stat().st_size
    output.unlink()
    return size


if __name__ == "__main__":
    main()
