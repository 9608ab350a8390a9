#!/usr/bin/env python3
"""Quorus Raft against etcd 3.4 and PySyncObj, in one run on this machine.

Quorus: a 3-node cluster of separate processes (``python -m quorus.raft.kvserver``) on
loopback, fsync on (the ``file`` store), 100-byte values from a thin client on raw streams
(framed msgpack) in one asyncio process, as the etcd anchor does with its raw HTTP client:

- ``seq``: one client, sequential puts for ``--seconds``: throughput and p50/p99 latency;
- ``conc64``: 64 clients, each with its own connection, for ``--seconds``;
- ``failover``: ``--rounds`` times, kill -9 the leader and time until the next write
  completes on a survivor (probing every 10 ms), then restart it and let it catch up;
- ``snapshot``: a 100 MB state sent to a new member while a client keeps writing: the longest
  gap between two completed writes during the install.

``--seq-pairs N`` measures only the sequential latency, Quorus and etcd alternately (both
clusters up, N pairs of ``--pair-seconds``), for a ratio that the machine's changing load
does not tilt; it reports the medians of the pairs.

Peers: with ``--peer-scripts DIR`` (the directory holding ``etcd_bench.py`` and
``pysyncobj_bench.py``) and ``--peer-python`` (a Python with httpx and pysyncobj), their
measurements run in the same invocation, right after Quorus's, and the table shows ratios.

    .venv/bin/python tests/benchmarks/raft_vs_peers.py --peer-scripts DIR --peer-python PY
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from quorus.raft.kvclient import KeyValueClient, OutcomeUnknown, RequestFailed  # noqa: E402

from tests.raft_cluster import TOKEN, ProcessCluster  # noqa: E402

VALUE = "x" * 100


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(latencies: list[float], wall: float, errors: int = 0) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies]
    return {
        "ops": len(ms), "errors": errors, "wall_s": round(wall, 2),
        "ops_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
    }


async def load(cluster: ProcessCluster, leader: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        nonlocal errors
        # Each worker talks straight to the leader, as the etcd anchor does.
        async with KeyValueClient({leader: cluster.clients[leader]}, TOKEN, timeout=5) as kv:
            i = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await kv.put(f"k/{number:02d}/{i:08d}", VALUE)
                except Exception:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                i += 1

    started = time.perf_counter()
    cpu = os.times()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    wall = time.perf_counter() - started
    result = summary(latencies, wall, errors)
    after = os.times()
    result["client_cpu_s"] = round(after.user + after.system - cpu.user - cpu.system, 2)
    return result


async def _probe(node: str, address: str, killed_at: float, done: asyncio.Event,
                 times: list[float]) -> None:
    async with KeyValueClient({node: address}, TOKEN, timeout=1.0) as kv:
        try:
            await kv.put("failover", VALUE)
        except Exception:
            return
        if not done.is_set():
            times.append(time.perf_counter() - killed_at)
            done.set()


async def failover(cluster: ProcessCluster, rounds: int) -> dict[str, Any]:
    times: list[float] = []
    for _ in range(rounds):
        leader = await cluster.leader()
        survivors = {n: a for n, a in cluster.clients.items() if n != leader}
        killed_at = time.perf_counter()
        cluster.kill(leader)
        done = asyncio.Event()
        probes = []
        # A new write to every survivor every 10 ms, each without waiting for the last.
        while not done.is_set() and time.perf_counter() - killed_at < 10:
            probes += [asyncio.create_task(_probe(n, a, killed_at, done, times))
                       for n, a in survivors.items()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.01)
        for task in probes:
            task.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        cluster.start(leader)
        await asyncio.sleep(1.0)
    ms = [t * 1000 for t in times]
    return {"rounds": rounds, "completed": len(ms), "p50_ms": round(pct(ms, 50), 1),
            "p99_ms": round(pct(ms, 99), 1), "max_ms": round(max(ms), 1) if ms else None,
            "all_ms": [round(x, 1) for x in ms]}


async def snapshot_install(base: Path, state_mb: int) -> dict[str, Any]:
    """Fill a cluster with ``state_mb`` MB, add a fourth member (which can only catch up from a
    snapshot: the log is compacted), and time the longest gap between two completed writes of
    a client writing all along."""
    cluster = ProcessCluster(base / "snapshot", 3, snapshot_every=200)
    (base / "snapshot").mkdir(parents=True, exist_ok=True)
    cluster.start_all()
    try:
        leader = await cluster.leader()
        blob = "s" * 100_000
        async with KeyValueClient({leader: cluster.clients[leader]}, TOKEN, timeout=10) as kv:
            for i in range(state_mb * 10):
                await kv.put(f"state/{i:06d}", blob)
        completions: list[float] = []
        failures: list[str] = []
        stop = asyncio.Event()

        async def writer() -> None:
            async with KeyValueClient(cluster.clients, TOKEN, timeout=10) as kv:
                i = 0
                while not stop.is_set():
                    try:
                        await kv.put(f"w/{i}", VALUE)
                    except (OutcomeUnknown, RequestFailed) as exc:
                        # A leader change answers "unknown": counted, and the writing goes on.
                        failures.append(str(exc))
                        continue
                    completions.append(time.perf_counter())
                    i += 1

        before = await cluster.status(leader)
        task = asyncio.create_task(writer())
        await asyncio.sleep(1.0)
        started = time.perf_counter()
        cluster.add_node("n4")
        async with KeyValueClient(cluster.clients, TOKEN, timeout=120) as kv:
            await kv.request("add_member", "n4", cluster.members["n4"])
        joined = time.perf_counter()
        await asyncio.sleep(1.0)
        stop.set()
        await task
        status = await cluster.status("n4")
        during = [t for t in completions if started <= t <= joined + 0.5]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        # Every election raises the term: a leadership lost during the phase shows here.
        term_before = before.get("term") if before else None
        term_after = status.get("term") if status else None
        return {"state_mb": state_mb, "install_s": round(joined - started, 2),
                "writes_during": len(during),
                "max_write_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
                "elections": (term_after - term_before
                              if term_before is not None and term_after is not None else None),
                "write_failures": len(failures),
                "new_member_applied": status.get("applied_index") if status else None,
                "new_member_role": status.get("role") if status else None}
    finally:
        cluster.stop_all()


async def quorus_run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    cluster = ProcessCluster(base / "quorus", 3, snapshot_every=args.snapshot_every)
    (base / "quorus").mkdir(parents=True, exist_ok=True)
    cluster.start_all()
    out: dict[str, Any] = {}
    try:
        leader = await cluster.leader()
        await load(cluster, leader, 4, 1.0)  # warm-up
        out["seq"] = await load(cluster, leader, 1, args.seconds)
        print("quorus seq:", out["seq"], flush=True)
        out["conc64"] = await load(cluster, leader, 64, args.seconds)
        print("quorus conc64:", out["conc64"], flush=True)
        if not args.skip_failover:
            out["failover"] = await failover(cluster, args.rounds)
            print("quorus failover:", out["failover"], flush=True)
    finally:
        cluster.stop_all()
    return out


def load_etcd_bench(directory: str) -> Any:
    """The etcd anchor script as a module (its cluster and raw HTTP client)."""
    path = Path(directory) / "etcd_bench.py"
    spec = importlib.util.spec_from_file_location("etcd_bench", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def seq_pairs(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Sequential latency of Quorus and etcd measured in alternation, both clusters up, so
    that the machine's load (shared, two cores) weighs on both alike: ``--seq-pairs`` pairs of
    ``--pair-seconds`` each, Quorus first in odd pairs and etcd first in even ones."""
    etcd = load_etcd_bench(args.peer_scripts)
    cluster = ProcessCluster(base / "pairs", 3, snapshot_every=args.snapshot_every)
    (base / "pairs").mkdir(parents=True, exist_ok=True)
    etcd_cluster = etcd.Cluster(str(base / "pairs"))
    cluster.start_all()
    etcd_cluster.start_all()
    try:
        leader = await cluster.leader()
        etcd_leader = await asyncio.to_thread(etcd_cluster.wait_healthy)
        host, port = etcd_cluster.url(etcd_leader).split("//")[1].split(":")

        async def quorus_seq() -> float:
            return float((await load(cluster, leader, 1, args.pair_seconds))["p50_ms"])

        async def etcd_seq() -> float:
            latencies, _, _ = await etcd._conc_raw(host, int(port), args.pair_seconds, 1,
                                                   VALUE.encode())
            return float(etcd.lat_summary(latencies)["p50_ms"])

        await load(cluster, leader, 4, 1.0)  # warm-up
        await etcd._conc_raw(host, int(port), 1.0, 4, VALUE.encode())
        pairs = []
        for number in range(args.seq_pairs):
            if number % 2 == 0:
                q = await quorus_seq()
                e = await etcd_seq()
            else:
                e = await etcd_seq()
                q = await quorus_seq()
            pairs.append({"quorus_p50_ms": q, "etcd_p50_ms": e, "ratio": round(q / e, 3)})
            print("pair", number + 1, pairs[-1], "load", round(os.getloadavg()[0], 2), flush=True)
    finally:
        cluster.stop_all()
        etcd_cluster.stop_all()
    return {
        "pairs": pairs,
        "quorus_p50_ms_median": statistics.median(p["quorus_p50_ms"] for p in pairs),
        "etcd_p50_ms_median": statistics.median(p["etcd_p50_ms"] for p in pairs),
        "ratio_median": statistics.median(p["ratio"] for p in pairs),
    }


def run_peer(args: argparse.Namespace, script: str, base: Path) -> dict[str, Any] | None:
    if not args.peer_scripts:
        return None
    out = base / f"{script}.json"
    cmd = [args.peer_python, str(Path(args.peer_scripts) / script), "--base", str(base / script),
           "--json", str(out)]
    if script.startswith("etcd"):
        cmd += ["--perf-loads", "", "--rounds", str(args.rounds)]
    print("running", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False, timeout=1800)
    return json.loads(out.read_text()) if out.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--snapshot-every", type=int, default=10_000)
    parser.add_argument("--peer-scripts")
    parser.add_argument("--peer-python", default=sys.executable)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--snapshot-mb", type=int, default=100, help="0 skips the snapshot test")
    parser.add_argument("--json")
    parser.add_argument("--seq-pairs", type=int, default=0,
                        help="only this many alternating Quorus/etcd sequential runs (needs "
                             "--peer-scripts and httpx in this Python)")
    parser.add_argument("--pair-seconds", type=float, default=3.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="quorus-raft-bench-"))
    if args.seq_pairs:
        if not args.peer_scripts:
            parser.error("--seq-pairs needs --peer-scripts")
        paired = asyncio.run(seq_pairs(args, base))
        print("sequential p50, medians of", args.seq_pairs, "pairs:",
              {k: v for k, v in paired.items() if k != "pairs"}, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"seq_pairs": paired}, indent=2))
        return
    result: dict[str, Any] = {"quorus": asyncio.run(quorus_run(args, base))}
    if args.snapshot_mb:
        result["quorus"]["snapshot"] = asyncio.run(snapshot_install(base, args.snapshot_mb))
        print("quorus snapshot install:", result["quorus"]["snapshot"], flush=True)
    result["etcd"] = run_peer(args, "etcd_bench.py", base)
    result["pysyncobj"] = run_peer(args, "pysyncobj_bench.py", base)
    q, e = result["quorus"], result["etcd"]
    if e:
        e64 = e.get("conc_raw_64", {})
        eseq = e.get("seq_raw", e.get("seq", {}))
        result["ratios"] = {
            "conc64_throughput_quorus_over_etcd": round(q["conc64"]["ops_per_s"] / e64["ops_per_s"], 2),
            "seq_p50_quorus_over_etcd": round(q["seq"]["p50_ms"] / eseq["p50_ms"], 2),
        }
        print("ratios:", result["ratios"], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
