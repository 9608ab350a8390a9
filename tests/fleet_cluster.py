"""A controller quorum and an agent fleet as real OS processes on loopback, for the system
tests: each controller a ``quorus-controller`` process (Raft, or standalone for one node)
with its own YAML configuration and data directory, each agent a ``quorus-agent`` process
with its own work directory; every one of them killed (``kill -9``), stopped and restarted
at will. REST calls go through :meth:`FleetCluster.request`, which tries every controller in
turn, as a client that knows the quorum does.

Controllers can advertise an agent address other than the one they listen on
(``advertise``): a test puts a proxy there, and agents that learn the quorum from the
controllers then reach it only through the proxy.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import yaml
from quorus.core.testing.fixtures import free_port

TOKEN = "fleet-system-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTROLLER = [sys.executable, "-c", "from quorus.core.controller.main import main; main()"]
AGENT = [sys.executable, "-c", "from quorus.core.agent.main import main; main()"]
#: Seconds between agent heartbeats in these tests (the design's default is 30); three
#: missed ones make an agent unhealthy.
HEARTBEAT = 0.4
MISSED = 3

T = TypeVar("T")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def wait_for(check: Callable[[], Awaitable[T | None]], within: float, what: str,
                   interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something other than ``None``/``False`` (at most
    ``within`` seconds); :class:`AssertionError` naming ``what`` otherwise."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last is not None and last is not False:
            return last
        await anyio.sleep(interval)
    raise AssertionError(f"timed out after {within:g} s waiting for {what} (last: {last!r})")


class FleetCluster:
    """``size`` controllers ``c1``..``cN`` and any number of agents under ``root``."""

    def __init__(self, root: Path, size: int = 3, *, advertise: dict[str, str] | None = None,
                 tick_ms: int = 50) -> None:
        self.root = root
        self.ids = [f"c{i}" for i in range(1, size + 1)]
        self.raft = {c: f"127.0.0.1:{free_port()}" for c in self.ids}
        self.agents = {c: f"127.0.0.1:{free_port()}" for c in self.ids}
        self.http = {c: f"127.0.0.1:{free_port()}" for c in self.ids}
        #: The agent address each controller gives agents (its own unless a proxy stands there).
        self.advertised = {c: (advertise or {}).get(c, self.agents[c]) for c in self.ids}
        self.tick_ms = tick_ms
        self.controllers: dict[str, subprocess.Popen[bytes]] = {}
        self.agent_procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- controllers ------------------------------------------------------------------------

    def config(self, node_id: str) -> Path:
        settings: dict[str, Any] = {
            "node_id": node_id,
            "data_dir": str(self.root / node_id),
            "listen_agents": self.agents[node_id],
            "listen_http": self.http[node_id],
            "token": TOKEN,
            "heartbeat_interval": HEARTBEAT,
            "missed_heartbeats": MISSED,
            "progress_interval": 0.2,
            "schedule_interval": 0.2,
        }
        if len(self.ids) > 1:
            settings.update({
                "consensus": "raft",
                "listen_raft": self.raft[node_id],
                "cluster_token": TOKEN + "-cluster",
                "peers": {c: {"raft": self.raft[c], "agents": self.advertised[c],
                              "http": self.http[c]} for c in self.ids},
                "raft_options": {"tick_ms": self.tick_ms},
            })
        path = self.root / f"{node_id}.yaml"
        path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        return path

    def start(self, node_id: str) -> None:
        with (self.root / f"{node_id}.log").open("ab") as log:
            self.controllers[node_id] = subprocess.Popen(
                [*CONTROLLER, "--config", str(self.config(node_id)), "--log-level", "info"],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def start_all(self) -> None:
        for node_id in self.ids:
            self.start(node_id)

    def kill(self, node_id: str) -> None:
        """``kill -9`` a controller."""
        proc = self.controllers.pop(node_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for node_id in list(self.controllers):
            self.kill(node_id)

    async def ready(self, node_id: str) -> dict[str, Any] | None:
        """The node's ``/readyz`` answer when it is ready (knows a leader), else ``None``."""
        proc = self.controllers.get(node_id)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"controller {node_id} exited with {proc.returncode}:\n"
                                 f"{self.log(node_id)[-3000:]}")
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                answer = await client.get(f"http://{self.http[node_id]}/readyz")
        except httpx.HTTPError:
            return None
        return dict(answer.json()) if answer.status_code == 200 else None

    async def leader(self, within: float = 20.0) -> str:
        """The controller that leads and has taken up its duties, once every running
        controller agrees on it."""

        async def agreed() -> str | None:
            answers = [await self.ready(c) for c in list(self.controllers)]
            leaders = {a["leader"] for a in answers if a is not None}
            if len(leaders) == 1 and all(answers):
                leader = leaders.pop()
                leading = next((a for a in answers if a and a["node_id"] == leader), None)
                if leading is not None and leading["leading"]:
                    return str(leader)
            return None

        return await wait_for(agreed, within, "an elected leader every controller knows")

    def log(self, node_id: str) -> str:
        path = self.root / f"{node_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- agents -----------------------------------------------------------------------------

    def start_agent(self, agent_id: str, *, controllers: Iterable[str] | None = None,
                    protocols: Sequence[str] = ("file",), max_concurrent: int = 2,
                    drain_timeout: str = "30s", extra: Sequence[str] = ()) -> None:
        """Start ``quorus-agent`` ``agent_id`` with its own work directory; it knows
        ``controllers`` (default: every controller's own agent address)."""
        addresses = list(controllers) if controllers is not None else list(self.agents.values())
        work = self.root / "agents" / agent_id
        with (self.root / f"{agent_id}.log").open("ab") as log:
            self.agent_procs[agent_id] = subprocess.Popen(
                [*AGENT, "--controllers", ",".join(addresses), "--agent-id", agent_id,
                 "--work-dir", str(work), "--max-concurrent", str(max_concurrent),
                 "--token", TOKEN, "--drain-timeout", drain_timeout,
                 *(a for p in protocols for a in ("--protocol", p)), *extra],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill_agent(self, agent_id: str) -> None:
        """``kill -9`` an agent."""
        proc = self.agent_procs.pop(agent_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def agent_exit(self, agent_id: str) -> int | None:
        return self.agent_procs[agent_id].poll()

    def agent_log(self, agent_id: str) -> str:
        path = self.root / f"{agent_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def wait_agents(self, *agent_ids: str, within: float = 20.0) -> None:
        """Until every one of ``agent_ids`` is registered and connected to the leader."""

        async def connected() -> bool:
            answer = await self.request("GET", "/v1/agents", fail=False)
            if answer is None or answer.status_code != 200:
                return False
            agents = {a["id"]: a for a in _items(answer.json(), "agents")}
            return all(a in agents and agents[a].get("connected") for a in agent_ids)

        await wait_for(connected, within, f"agents {', '.join(agent_ids)} connected")

    # -- REST ---------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None, fail: bool = True,
                      within: float = 15.0, only: Sequence[str] | None = None
                      ) -> httpx.Response | None:
        """One REST call, tried on every running controller in turn (``only``: just those)
        until one answers with something other than a transport error or 503, for at most
        ``within`` seconds. ``None`` (or :class:`AssertionError` when ``fail``) if none did."""
        deadline = time.monotonic() + within
        nodes = list(only) if only is not None else self.ids
        async with httpx.AsyncClient(headers=AUTH, timeout=5.0) as client:
            while time.monotonic() < deadline:
                for node_id in nodes:
                    if node_id not in self.controllers:
                        continue
                    try:
                        answer = await client.request(
                            method, f"http://{self.http[node_id]}{path}", json=json,
                            params=params,
                        )
                    except httpx.HTTPError:
                        continue
                    if answer.status_code != 503:
                        return answer
                await anyio.sleep(0.1)
        if fail:
            raise AssertionError(f"{method} {path}: no controller answered in {within:g} s")
        return None

    async def get(self, path: str, **params: Any) -> Any:
        answer = await self.request("GET", path, params=params or None)
        assert answer is not None and answer.status_code == 200, (
            f"GET {path}: {answer.status_code if answer else None} {answer.text if answer else ''}")
        return answer.json()

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.request("POST", "/v1/jobs", json=body)
        assert answer is not None and answer.status_code == 201, (
            f"submit {body.get('id')}: {answer.status_code if answer else None} "
            f"{answer.text if answer else ''}")
        return dict(answer.json())

    async def job(self, job_id: str) -> dict[str, Any]:
        return dict(await self.get(f"/v1/jobs/{job_id}"))

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """Every job, following the cursor."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        for _ in range(100):
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = await self.get("/v1/jobs", **params)
            found.update({j["id"]: j for j in page["jobs"]})
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found

    async def agent(self, agent_id: str) -> dict[str, Any] | None:
        answer = await self.request("GET", f"/v1/agents/{agent_id}")
        assert answer is not None
        return dict(answer.json()) if answer.status_code == 200 else None

    async def wait_job(self, job_id: str, states: Iterable[str], within: float
                       ) -> dict[str, Any]:
        wanted = set(states)

        async def reached() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["state"] in wanted else None

        return await wait_for(reached, within, f"job {job_id} in {sorted(wanted)}")

    # -- teardown -----------------------------------------------------------------------------

    def stop_everything(self) -> None:
        """Kill every process still running (for ``finally`` blocks)."""
        for agent_id in list(self.agent_procs):
            proc = self.agent_procs.pop(agent_id)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for node_id in list(self.controllers):
            proc = self.controllers.pop(node_id)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _items(body: Any, key: str) -> list[dict[str, Any]]:
    return list(body[key]) if isinstance(body, dict) else list(body)


def completed_attempts(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in job["attempts"] if a["outcome"] == "completed"]


__all__ = [
    "AUTH",
    "HEARTBEAT",
    "MISSED",
    "TOKEN",
    "FleetCluster",
    "completed_attempts",
    "sha256_of",
    "wait_for",
]
