"""The fleet part of `make demo`: a 3-controller Raft quorum and 3 agents on loopback.

Starts `quorus-controller` three times (Raft, fsync on) and `quorus-agent` three times, each a
separate process with its own data directory; submits a batch of verified transfers to the
REST API; shows their progress until they complete; shows the cluster and the agents; then
drains the agents and stops the controllers.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "demo-api-token-" + os.urandom(8).hex()
CLUSTER_TOKEN = "demo-cluster-token-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Fleet:
    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.controllers = {
            f"c{i}": {"raft": f"127.0.0.1:{free_port()}", "agents": f"127.0.0.1:{free_port()}",
                      "http": f"127.0.0.1:{free_port()}"}
            for i in (1, 2, 3)
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.leader: str | None = None
        self.env = {**os.environ, "QUORUS_DEMO_TOKEN": TOKEN, "QUORUS_DEMO_CLUSTER": CLUSTER_TOKEN}

    def start_controller(self, node_id: str) -> None:
        config = self.work / f"{node_id}.yaml"
        lines = [f"node_id: {node_id}", "consensus: raft", f"data_dir: {self.work / node_id}",
                 f"listen_agents: {self.controllers[node_id]['agents']}",
                 f"listen_http: {self.controllers[node_id]['http']}",
                 f"listen_raft: {self.controllers[node_id]['raft']}",
                 "token: env:QUORUS_DEMO_TOKEN", "cluster_token: env:QUORUS_DEMO_CLUSTER",
                 "heartbeat_interval: 1.0", "progress_interval: 0.5", "peers:"]
        for peer, addresses in self.controllers.items():
            lines.append(f"  {peer}: {{raft: {addresses['raft']}, agents: {addresses['agents']}, "
                         f"http: {addresses['http']}}}")
        config.write_text("\n".join(lines) + "\n")
        log = open(self.work / f"{node_id}.log", "ab")  # noqa: SIM115 - handed to the process
        self.procs[node_id] = subprocess.Popen(
            [str(BIN / "quorus-controller"), "--config", str(config)],
            stdout=log, stderr=log, env=self.env,
        )
        log.close()

    def start_agent(self, agent_id: str, zone: str) -> None:
        log = open(self.work / f"{agent_id}.log", "ab")  # noqa: SIM115 - handed to the process
        controllers = ",".join(c["agents"] for c in self.controllers.values())
        self.procs[agent_id] = subprocess.Popen(
            [str(BIN / "quorus-agent"), "--controllers", controllers, "--agent-id", agent_id,
             "--work-dir", str(self.work / agent_id), "--max-concurrent", "2",
             "--datacenter", "demo-dc", "--zone", zone, "--token", "env:QUORUS_DEMO_TOKEN"],
            stdout=log, stderr=log, env=self.env,
        )
        log.close()

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API of whichever controller answers (followers forward to the leader)."""
        last: Exception | None = None
        # The leader first: it alone holds the soft state (connections, progress) it reports.
        order = sorted(self.controllers, key=lambda n: n != self.leader)
        for node_id in order:
            addresses = self.controllers[node_id]
            try:
                response = httpx.request(method, f"http://{addresses['http']}{path}",
                                         headers={"Authorization": f"Bearer {TOKEN}"},
                                         timeout=10, **kwargs)
            except httpx.HTTPError as exc:
                last = exc
                continue
            if response.status_code == 503:
                last = RuntimeError(response.text)
                continue
            response.raise_for_status()
            body = response.json()
            if path == "/v1/cluster" and body.get("leader"):
                self.leader = body["leader"]
            return body
        raise RuntimeError(f"no controller answered {method} {path}: {last}")

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = check()
            except (RuntimeError, httpx.HTTPError):
                result = None
            if result:
                return result
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}; logs in {self.work}")

    def stop(self) -> None:
        agents = [n for n in self.procs if not n.startswith("c")]
        for name in agents:  # SIGTERM drains an agent: it finishes, deregisters, exits
            self.procs[name].send_signal(signal.SIGTERM)
        for name in agents:
            try:
                self.procs[name].wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.procs[name].kill()
        for name, proc in self.procs.items():
            if name.startswith("c"):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def running_fleet(work: Path) -> Iterator[Fleet]:
    fleet = Fleet(work)
    try:
        for node_id in fleet.controllers:
            fleet.start_controller(node_id)
        yield fleet
    finally:
        fleet.stop()


def progress_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(title="Jobs on the fleet")
    for column in ("job", "destination", "state", "agent", "attempt", "progress"):
        table.add_column(column)
    for job in jobs:
        progress = job.get("progress") or {}
        done, total = progress.get("bytes_done") or 0, progress.get("total_bytes") or 0
        if job["state"] == "completed":
            shown = "100 %"
        elif total:
            shown = f"{100 * done // total} %"
        else:
            shown = ""
        attempts = job.get("attempts") or []
        agent = job.get("agent_id") or (attempts[-1].get("agent_id") if attempts else "")
        table.add_row(job["id"], Path(job["destination_display"]).name, job["state"],
                      str(agent or ""), str(job.get("attempt") or ""), shown)
    return table


def run_fleet(console: Console, base_url: str, files: dict[str, str], work: Path,
              served: Path) -> bool:
    """Move ``files`` (name -> sha256, served from ``served`` under ``base_url``) through the
    fleet, then run an example workflow on it."""
    console.rule("[bold]A controller quorum and an agent fleet")
    with running_fleet(work) as fleet:
        status = fleet.wait_for("a Raft leader", lambda: (s := fleet.api("GET", "/v1/cluster"))
                                and s.get("leader") and s)
        console.print(f"3 controllers (Raft, fsync on); leader [bold]{status['leader']}[/], "
                      f"term {status.get('term')}")
        for number, zone in ((1, "zone-a"), (2, "zone-a"), (3, "zone-b")):
            fleet.start_agent(f"agent-{number}", zone)
        fleet.wait_for("3 agents", lambda: fleet.api("GET", "/v1/cluster") and len(
            [a for a in fleet.api("GET", "/v1/agents")["agents"] if a.get("connected")]) == 3)
        console.print("3 agents registered\n")

        ids = []
        for round_number in (1, 2):
            for name, digest in files.items():
                job_id = f"demo-{round_number}-{Path(name).stem}"
                fleet.api("POST", "/v1/jobs", json={
                    "id": job_id, "source": f"{base_url}/{name}",
                    "destination": str(work / "fleet-received" / f"{round_number}-{Path(name).name}"),
                    "checksum": f"sha256:{digest}", "bandwidth_mbps": 400,
                })
                ids.append(job_id)
        console.print(f"submitted {len(ids)} verified transfers to the REST API")

        def snapshot() -> list[dict[str, Any]]:
            return [fleet.api("GET", f"/v1/jobs/{job_id}") for job_id in ids]

        with Live(progress_table(snapshot()), console=console, refresh_per_second=4) as live:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                jobs = snapshot()
                live.update(progress_table(jobs))
                if all(job["state"] in ("completed", "failed", "cancelled") for job in jobs):
                    break
                time.sleep(0.3)
        jobs = snapshot()
        console.print()
        received = work / "fleet-received"
        on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in received.iterdir()} if received.exists() else {}
        ok = all(job["state"] == "completed" for job in jobs) and all(
            on_disk.get(f"{n}-{Path(name).name}") == digest
            for n in (1, 2) for name, digest in files.items()
        )
        console.print(f"{len(on_disk)} files at their destinations, SHA-256 checked again here: "
                      f"{'all match' if ok else 'MISMATCH'}")

        cluster = fleet.api("GET", "/v1/cluster")
        table = Table(title="Cluster")
        for column in ("leader", "term", "commit index", "members"):
            table.add_column(column)
        table.add_row(str(cluster.get("leader")), str(cluster.get("term")),
                      str(cluster.get("commit_index")), ", ".join(sorted(cluster.get("members", {}))))
        console.print(table)
        agents = Table(title="Agents")
        for column in ("agent", "state", "zone", "connected", "completed jobs"):
            agents.add_column(column)
        done_by: dict[str, int] = {}
        for job in jobs:
            attempts = job.get("attempts") or []
            if job["state"] == "completed" and attempts:
                agent = attempts[-1].get("agent_id")
                done_by[agent] = done_by.get(agent, 0) + 1
        for agent in fleet.api("GET", "/v1/agents")["agents"]:
            location = agent.get("location") or {}
            agents.add_row(agent["id"], agent["state"], str(location.get("zone", "")),
                           "yes" if agent.get("connected") else "no", str(done_by.get(agent["id"], 0)))
        console.print(agents)
        ok &= run_workflow(console, fleet, base_url, served, work)
        console.print("stopping: agents drain and deregister, then the controllers stop")
    return ok


EXAMPLE = ROOT / "quorus-workflow-examples" / "basic" / "mixed-with-conditions.yaml"


def run_workflow(console: Console, fleet: Fleet, base_url: str, served: Path,
                 work: Path) -> bool:
    """Run an example workflow on the quorum with ``quorus workflow submit --wait``: its
    feeds come from the demo's HTTP server, and its conditions skip the price fallback."""
    console.rule("[bold]A YAML workflow on the quorum")
    feeds = served / "feeds"
    feeds.mkdir(parents=True, exist_ok=True)
    (feeds / "products.json").write_text('[{"sku": "A-1", "name": "anvil"}]\n')
    (feeds / "prices.csv").write_text("sku,price\nA-1,10.49\n")
    shop = work / "shop"
    (shop / "www" / "catalog").mkdir(parents=True, exist_ok=True)
    (shop / "www" / "catalog" / "prices.csv").write_text("sku,price\nA-1,9.99\n")
    command = [str(BIN / "quorus"), "workflow", "submit", str(EXAMPLE), "--wait",
               "--interval", "0.3", "--set", f"CATALOG_API={base_url}/feeds",
               "--set", f"STAGING={shop / 'staging'}", "--set", f"SHOP_ROOT={shop / 'www'}",
               "--token", "env:QUORUS_DEMO_TOKEN",
               *(a for c in fleet.controllers.values() for a in ("--controller", c["http"]))]
    console.print(f"[bold]quorus workflow submit[/] {EXAMPLE.relative_to(ROOT)} --wait "
                  f"--set CATALOG_API={base_url}/feeds --set STAGING=... --set SHOP_ROOT=...")
    proc = subprocess.run(command, capture_output=True, text=True, env=fleet.env, check=False,
                          timeout=180)
    console.print(proc.stdout.rstrip(), markup=False, highlight=False)
    if proc.returncode != 0:
        console.print(proc.stderr.rstrip(), markup=False, highlight=False)
    published = shop / "www" / "catalog" / "products.json"
    ok = proc.returncode == 0 and published.is_file()
    console.print(f"workflow completed and published the catalogue: {'yes' if ok else 'NO'}\n")
    return ok
