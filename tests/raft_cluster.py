"""Real Raft clusters for the system tests and benchmarks: each member a separate
``python -m quorus.raft.kvserver`` process on loopback, killed and restarted at will."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from quorus.core.testing.fixtures import free_port
from quorus.raft.kvclient import KeyValueClient

TOKEN = "system-test-cluster-token"


class ProcessCluster:
    def __init__(self, root: Path, size: int, *, tick_ms: int = 50, snapshot_every: int = 10_000) -> None:
        self.root = root
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        self.members = {i: f"127.0.0.1:{free_port()}" for i in self.ids}
        self.clients = {i: f"127.0.0.1:{free_port()}" for i in self.ids}
        self.tick_ms = tick_ms
        self.snapshot_every = snapshot_every
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.joining: set[str] = set()

    def add_node(self, node_id: str) -> None:
        """Give a new node addresses and start it outside the configuration (``--join``);
        the leader must then be asked to add it."""
        self.ids.append(node_id)
        self.members[node_id] = f"127.0.0.1:{free_port()}"
        self.clients[node_id] = f"127.0.0.1:{free_port()}"
        self.joining.add(node_id)
        self.start(node_id)

    def start(self, node_id: str) -> None:
        log = open(self.root / f"{node_id}.log", "ab")  # noqa: SIM115 - handed to the process
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "quorus.raft.kvserver", "--id", node_id,
                "--members", ",".join(f"{k}={v}" for k, v in self.members.items()),
                "--clients", ",".join(f"{k}={v}" for k, v in self.clients.items()),
                "--data", str(self.root / node_id), "--token", TOKEN,
                "--tick-ms", str(self.tick_ms), "--snapshot-every", str(self.snapshot_every),
                *(["--join", "--listen", self.members[node_id]] if node_id in self.joining else []),
            ],
            stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(b"ready"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{node_id} did not start: {(self.root / f'{node_id}.log').read_text()[-2000:]}")
        self.procs[node_id] = proc

    def start_all(self) -> None:
        for node_id in self.ids:
            self.start(node_id)

    def kill(self, node_id: str) -> None:
        proc = self.procs.pop(node_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def stop_all(self) -> None:
        for node_id in list(self.procs):
            self.kill(node_id)

    def client(self, timeout: float = 5.0) -> KeyValueClient:
        return KeyValueClient(self.clients, TOKEN, timeout=timeout)

    async def status(self, node_id: str) -> dict[str, Any] | None:
        async with KeyValueClient({node_id: self.clients[node_id]}, TOKEN, timeout=1.0) as c:
            try:
                result = await c.request("status", "")
            except Exception:
                return None
            return dict(result)

    async def leader(self) -> str:
        """The node that says it leads (waits up to 10 s for an election)."""
        with anyio.fail_after(10):
            while True:
                for node_id in list(self.procs):
                    status = await self.status(node_id)
                    if status and status.get("role") == "leader":
                        return node_id
                await anyio.sleep(0.05)
