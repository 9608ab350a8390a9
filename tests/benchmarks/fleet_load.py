#!/usr/bin/env python3
"""Fleet load: many simulated agents on real TCP connections against a 3-controller Raft quorum.

The quorum is three ``quorus-controller --consensus raft`` processes on loopback, fsync on
(the ``file`` store), each with private data and config in a temporary directory. The agents
are simulated by ``--workers`` generator processes (this script with ``--worker``), each
running its share of the fleet in one event loop: every agent has its own TCP connection and
speaks the real agent protocol (:class:`~quorus.core.agentproto.AgentSession`, the
:mod:`quorus.core.wire` framing): hello, register, heartbeats, redirects, reconnects after
failover, and results. An agent completes an assignment at once, reporting a made-up but
consistent size and SHA-256 derived from the job's source (the submission carries the same
checksum, so the controller checks it). Jobs are submitted over the REST API by a thin HTTP/1.1
client (h11 over keep-alive connections) in this process.

Phases, in order:

1. ``connect``: the fleet registers (staggered over ``--ramp`` seconds); the leader's RSS is
   read before and after, idle, to give memory per idle agent.
2. ``heartbeats``: ``--seconds`` of idle fleet; heartbeats acknowledged per second.
3. ``jobs``: ``--seconds`` of submissions at ``--job-rate`` per second (0: as fast as
   ``--http-concurrency`` connections go), then the wait until every job completed.
   Jobs/s submitted, jobs/s completed, assignment latency (submission sent -> ``assign``
   received by the agent) p50/p99, and the leader's RSS growth per finished job.
4. ``failover``: ``--rounds`` times, with jobs flowing at ``--failover-rate``/s, ``kill -9``
   the leader; the time until an agent receives an ``assign`` from the new leader, and until
   the whole fleet is registered with it; every acknowledged job must complete, exactly once.
   The killed controller is restarted before the next round.

CPU seconds of every controller and generator process are measured over each phase, so a
generator at its limit shows. The report is Markdown on stdout; ``--json FILE`` writes the
numbers. Small-scale check::

    .venv/bin/python tests/benchmarks/fleet_load.py --agents 50 --seconds 5 --rounds 2

Full scale::

    .venv/bin/python tests/benchmarks/fleet_load.py --agents 1000 --workers 2 --seconds 10 \\
        --rounds 5 --json fleet.json

To compare two versions of the controller under the same load, ``--controller-path`` puts
another checkout's source directories first on the controllers' ``PYTHONPATH`` (the generators
and the submitter run this process's code); ``--controller-uvloop`` sets ``QUORUS_UVLOOP=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import h11
import yaml
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream
from quorus.core.agentproto import (
    AbortJob,
    AgentCapabilities,
    AgentProtocolError,
    AgentSession,
    Assign,
    CloseConnection,
    ControllerAddress,
    ControllerError,
    Heartbeat,
    HeartbeatAck,
    Reconnect,
    Register,
    RegisteredWith,
    RegistrationRejected,
    ResultAck,
    ResultRejected,
    Shutdown,
    StartJob,
    Step,
    from_wire,
    to_wire,
)
from quorus.core.secrets import Secret
from quorus.core.testing.fixtures import free_port
from quorus.core.wire import FramedStream, WireError

CONTROLLER = [sys.executable, "-c", "from quorus.core.controller.main import main; main()"]
FRAME_LIMIT = 1 << 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fake_content(source: str) -> tuple[int, str]:
    """The size and SHA-256 an agent reports for ``source``: made up, but the same on every
    side, so the submission can carry the checksum the agent will report."""
    return 4096 + zlib.crc32(source.encode()) % 1_000_000, hashlib.sha256(source.encode()).hexdigest()


def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# -- the simulated fleet (generator processes) -------------------------------------------------


@dataclass
class FleetCounters:
    """What one generator process saw; the orchestrator collects it with ``snap``."""

    registered: dict[str, str] = field(default_factory=dict)  # agent -> controller
    heartbeats_sent: int = 0
    heartbeat_acks: int = 0
    connects: int = 0
    connect_failures: int = 0
    redirects: int = 0
    assigns: list[tuple[str, int, float, str]] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)  # job id -> accepted results
    rejected_results: int = 0
    aborts: int = 0
    controller_errors: int = 0
    protocol_errors: int = 0

    def snap(self) -> dict[str, Any]:
        """Counters so far; assignments and accepted results since the last snap."""
        assigns, self.assigns = self.assigns, []
        accepted, self.accepted = self.accepted, {}
        by_controller: dict[str, int] = {}
        for controller in self.registered.values():
            by_controller[controller] = by_controller.get(controller, 0) + 1
        return {
            "registered": len(self.registered), "by_controller": by_controller,
            "heartbeats_sent": self.heartbeats_sent, "heartbeat_acks": self.heartbeat_acks,
            "connects": self.connects, "connect_failures": self.connect_failures,
            "redirects": self.redirects, "assigns": assigns, "accepted": accepted,
            "rejected_results": self.rejected_results, "aborts": self.aborts,
            "controller_errors": self.controller_errors,
            "protocol_errors": self.protocol_errors, "cpu_s": time.process_time(),
        }


class SimulatedAgent:
    """One agent: its own TCP connection, the real :class:`AgentSession`, instant transfers."""

    def __init__(self, agent_id: str, controllers: list[ControllerAddress], token: str,
                 counters: FleetCounters, *, slots: int, missed_heartbeats: int) -> None:
        registration = Register(
            agent_id, hostname=f"{agent_id}.fleet-load", version="fleet-load",
            capabilities=AgentCapabilities(("file",), slots),
        )
        self.session = AgentSession(registration, controllers, Secret(token),
                                    rng=random.Random(agent_id),
                                    missed_heartbeats=missed_heartbeats)
        self.counters = counters
        self.agent_id = agent_id
        self._reconnect: Reconnect | None = None
        self._scope: anyio.CancelScope | None = None
        self._framed: FramedStream | None = None
        self._stopped = False
        self._closing = False

    async def run(self) -> None:
        self._take(self.session.start(anyio.current_time()))
        while not self._stopped:
            reconnect = self._reconnect
            assert reconnect is not None
            self._reconnect = None
            await anyio.sleep(max(0.0, reconnect.at - anyio.current_time()))
            try:
                with anyio.fail_after(5):
                    stream = await anyio.connect_tcp(*split_address(reconnect.to.address))
            except (OSError, TimeoutError) as exc:
                self.counters.connect_failures += 1
                self._take(self.session.connection_failed(anyio.current_time(), str(exc)))
                continue
            self.counters.connects += 1
            await self._converse(stream)
            if self._reconnect is None and not self._stopped:
                self._take(self.session.connection_lost(anyio.current_time(), "closed"))

    def _take(self, step: Step) -> None:
        """Keep the ``Reconnect`` a step asks for (sessions return one when a connection ends)."""
        for action in step.actions:
            if isinstance(action, Reconnect):
                self._reconnect = action
            elif isinstance(action, Shutdown):
                self._stopped = True

    async def _converse(self, stream: ByteStream) -> None:
        framed = self._framed = FramedStream(stream, max_frame_size=FRAME_LIMIT)
        self._closing = False
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                tg.start_soon(self._tick)
                await self._carry_out(self.session.connected(anyio.current_time()))
                await self._read(framed)
                tg.cancel_scope.cancel()
        finally:
            self.counters.registered.pop(self.agent_id, None)
            self._scope = None
            self._framed = None
            with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await framed.aclose()

    async def _read(self, framed: FramedStream) -> None:
        while not self._closing:
            try:
                raw = await framed.receive()
            except (WireError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            now = anyio.current_time()
            try:
                message = from_wire(raw)
                if isinstance(message, HeartbeatAck):
                    self.counters.heartbeat_acks += 1
                elif isinstance(message, Assign):
                    self.counters.assigns.append((message.job_id, message.attempt, time.time(),
                                                  self.session.controller_id or "?"))
                elif isinstance(message, ResultAck) and message.accepted:
                    accepted = self.counters.accepted
                    accepted[message.job_id] = accepted.get(message.job_id, 0) + 1
                step = self.session.receive(message, now)
            except AgentProtocolError as exc:
                self.counters.protocol_errors += 1
                with contextlib.suppress(OSError, anyio.BrokenResourceError, WireError):
                    await framed.send(to_wire(exc.reply))
                return
            await self._carry_out(step)

    async def _tick(self) -> None:
        while True:
            deadline = self.session.next_deadline()
            now = anyio.current_time()
            delay = 0.05 if deadline is None else min(max(0.0, deadline - now), 0.05
                                                      if self.session.heartbeat_interval is None
                                                      else self.session.heartbeat_interval)
            await anyio.sleep(delay)
            now = anyio.current_time()
            deadline = self.session.next_deadline()
            if deadline is not None and now >= deadline:
                await self._carry_out(self.session.tick(now))

    async def _carry_out(self, step: Step) -> None:
        framed = self._framed
        for message in step.send:
            if framed is None:
                break
            if isinstance(message, Heartbeat):
                self.counters.heartbeats_sent += 1
            try:
                await framed.send(to_wire(message))
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._end()
                return
        for action in step.actions:
            if isinstance(action, CloseConnection):
                self._end()
            elif isinstance(action, Reconnect):
                self._reconnect = action
                if action.reason.startswith("redirected"):
                    self.counters.redirects += 1
            elif isinstance(action, RegisteredWith):
                self.counters.registered[self.agent_id] = action.controller_id
            elif isinstance(action, StartJob):
                assign = action.assign
                size, sha256 = fake_content(assign.source)
                await self._carry_out(self.session.job_completed(
                    assign.job_id, assign.attempt, size, sha256, 0.001, anyio.current_time()
                ))
            elif isinstance(action, AbortJob):
                self.counters.aborts += 1
            elif isinstance(action, ResultRejected):
                self.counters.rejected_results += 1
            elif isinstance(action, ControllerError | RegistrationRejected):
                self.counters.controller_errors += 1
            elif isinstance(action, Shutdown):
                self._stopped = True

    def _end(self) -> None:
        # Frames already buffered must not reach the session once it closed the connection.
        self._closing = True
        self.counters.registered.pop(self.agent_id, None)
        if self._scope is not None:
            self._scope.cancel()


async def run_worker(args: argparse.Namespace) -> None:
    """Generator process: run agents ``--first`` .. ``--first + --count``; answer ``snap``
    and ``stop`` lines on stdin with JSON lines on stdout."""
    controllers = [ControllerAddress(name, address)
                   for name, _, address in (c.partition("=") for c in args.controllers.split(","))]
    token = Path(args.token_file).read_text().strip()
    counters = FleetCounters()
    agents = [SimulatedAgent(f"sim-{i:05d}", controllers, token, counters, slots=args.slots,
                             missed_heartbeats=args.missed_heartbeats)
              for i in range(args.first, args.first + args.count)]

    async def start_all() -> None:
        gap = args.ramp / max(1, len(agents))
        for agent in agents:
            tg.start_soon(agent.run)
            await anyio.sleep(gap)

    async with anyio.create_task_group() as tg:
        tg.start_soon(start_all)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line or line.strip() == "stop":
                break
            print(json.dumps(counters.snap()), flush=True)
        tg.cancel_scope.cancel()


# -- the controller quorum ---------------------------------------------------------------------


class ControllerQuorum:
    """Three ``quorus-controller`` processes (Raft, fsync on) on loopback."""

    def __init__(self, root: Path, size: int, *, heartbeat: float, missed: int,
                 tick_ms: int, election_ticks: tuple[int, int],
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.token = secrets.token_urlsafe(24)
        self.token_file = root / "token"
        self.token_file.write_text(self.token + "\n")
        self.token_file.chmod(0o600)
        self.ids = [f"c{i}" for i in range(1, size + 1)]
        self.peers = {
            n: {"raft": f"127.0.0.1:{free_port()}", "agents": f"127.0.0.1:{free_port()}",
                "http": f"127.0.0.1:{free_port()}"} for n in self.ids
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for node in self.ids:
            config = {
                "node_id": node, "consensus": "raft", "data_dir": str(root / node),
                "listen_agents": self.peers[node]["agents"],
                "listen_http": self.peers[node]["http"],
                "listen_raft": self.peers[node]["raft"], "peers": self.peers,
                "token": self.token, "heartbeat_interval": heartbeat,
                "missed_heartbeats": missed,
                "raft_options": {"tick_ms": tick_ms, "election_ticks": list(election_ticks)},
            }
            path = root / f"{node}.yaml"
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)

    @property
    def agent_addresses(self) -> str:
        return ",".join(f"{n}={self.peers[n]['agents']}" for n in self.ids)

    def start(self, node: str) -> None:
        with (self.root / f"{node}.log").open("ab") as log:
            self.procs[node] = subprocess.Popen(
                [*CONTROLLER, "--config", str(self.root / f"{node}.yaml")],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for node, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            del self.procs[node]

    def log_tail(self, node: str) -> str:
        return (self.root / f"{node}.log").read_text(errors="replace")[-3000:]

    def rss_kib(self, node: str) -> int:
        for line in Path(f"/proc/{self.procs[node].pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) of each running controller."""
        out = {}
        for node, proc in self.procs.items():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[node] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return out

    async def readyz(self, node: str) -> dict[str, Any] | None:
        try:
            status, body = await http_once(self.peers[node]["http"], "GET", "/readyz", None, None)
        except (OSError, h11.ProtocolError, TimeoutError, anyio.EndOfStream):
            return None
        return json.loads(body) if status in (200, 503) else None

    async def leader(self, within: float = 20.0, *, not_: str | None = None) -> str:
        """The controller that leads and has started its duties."""
        with anyio.fail_after(within):
            while True:
                for node in list(self.procs):
                    if node == not_:
                        continue
                    if self.procs[node].poll() is not None:
                        raise RuntimeError(f"{node} exited:\n{self.log_tail(node)}")
                    ready = await self.readyz(node)
                    if ready and ready.get("leading"):
                        return node
                await anyio.sleep(0.02)

    async def wait_ready(self, node: str, within: float = 30.0) -> None:
        with anyio.fail_after(within):
            while True:
                if self.procs[node].poll() is not None:
                    raise RuntimeError(f"{node} exited:\n{self.log_tail(node)}")
                ready = await self.readyz(node)
                if ready and ready.get("ready"):
                    return
                await anyio.sleep(0.05)


# -- the REST client -----------------------------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (h11 over an anyio TCP stream)."""

    def __init__(self, address: str, token: str | None) -> None:
        self.address = address
        self.token = token
        self._stream: ByteStream | None = None
        self._conn: h11.Connection | None = None

    async def request(self, method: str, path: str, body: bytes | None,
                      within: float = 10.0) -> tuple[int, bytes]:
        with anyio.fail_after(within):
            if self._stream is None or self._conn is None:
                self._stream = await anyio.connect_tcp(*split_address(self.address))
                self._conn = h11.Connection(h11.CLIENT)
            stream, conn = self._stream, self._conn
            try:
                return await self._exchange(stream, conn, method, path, body)
            except BaseException:
                await self.aclose()
                raise

    async def _exchange(self, stream: ByteStream, conn: h11.Connection, method: str, path: str,
                        body: bytes | None) -> tuple[int, bytes]:
        headers = [("Host", self.address), ("Content-Length", str(len(body or b"")))]
        if self.token:
            headers.append(("Authorization", f"Bearer {self.token}"))
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        data = conn.send(h11.Request(method=method, target=path, headers=headers)) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send(data)
        status = 0
        chunks: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive(65536))
                except anyio.EndOfStream:
                    conn.receive_data(b"")
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise anyio.EndOfStream
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.aclose()
        return status, b"".join(chunks)

    async def aclose(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError, anyio.BrokenResourceError):
                await self._stream.aclose()
        self._stream = None
        self._conn = None


async def http_once(address: str, method: str, path: str, token: str | None,
                    body: bytes | None, within: float = 5.0) -> tuple[int, bytes]:
    connection = HttpConnection(address, token)
    try:
        return await connection.request(method, path, body, within)
    finally:
        await connection.aclose()


@dataclass
class Submissions:
    """Jobs submitted: when each submission was sent and whether it was acknowledged."""

    sent_at: dict[str, float] = field(default_factory=dict)
    acked_at: dict[str, float] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


# With --tenant-quotas the jobs go to a tenant three levels deep with every quota set
# (quorus.tenant.testing), so admission checks and reserves each, never refusing; without it
# the same jobs (the same paths, inside that tenant's storage root) go to the default tenant.
QUOTA_TENANT = "team"
QUOTA_ROOT = f"/data/tenants/{QUOTA_TENANT}"


class Submitter:
    """Submits jobs over the REST API, ``rate`` per second (0: as fast as ``concurrency``
    connections go), retrying each job id on another controller until acknowledged. With
    ``batch`` above 1 it sends ``batch`` jobs per request (``POST /v1/jobs/batch``), each
    request when the last of its jobs is due; a job's latencies count from the request that
    carried it."""

    def __init__(self, quorum: ControllerQuorum, prefix: str, concurrency: int,
                 batch: int = 1, tenant: str | None = None) -> None:
        self.quorum = quorum
        self.prefix = prefix
        self.concurrency = concurrency
        self.batch = batch
        self.tenant = tenant
        self.numbers = itertools.count()
        self.log = Submissions()
        self.target: str = quorum.ids[0]

    def item(self, job_id: str) -> dict[str, Any]:
        # Inside the quota tenant's default storage root, which admission checks too (the
        # same paths without tenants, so both runs carry the same bytes).
        source = f"{QUOTA_ROOT}/in/{job_id}"
        size, sha256 = fake_content(source)
        item = {
            "id": job_id, "source": source, "destination": f"{QUOTA_ROOT}/out/{job_id}",
            "checksum": f"sha256:{sha256}", "expected_size": size, "overwrite": "overwrite",
        }
        if self.tenant is not None:
            item.update(tenant=self.tenant, bandwidth_mbps=100)
        return item

    async def submit(self, connection: HttpConnection, job_ids: list[str], deadline: float
                     ) -> HttpConnection:
        """Submit ``job_ids`` (one request: alone, or as a batch) until each is acknowledged
        or ``deadline`` passes."""
        now = time.time()
        for job_id in job_ids:
            self.log.sent_at.setdefault(job_id, now)
        pending = list(job_ids)
        while pending and time.monotonic() < deadline:
            if len(pending) == 1 and self.batch == 1:
                path, body = "/v1/jobs", json.dumps(self.item(pending[0])).encode()
            else:
                path = "/v1/jobs/batch"
                body = json.dumps({"jobs": [self.item(j) for j in pending]}).encode()
            try:
                status, answer = await connection.request("POST", path, body)
            except (OSError, TimeoutError, h11.ProtocolError, anyio.EndOfStream,
                    anyio.BrokenResourceError) as exc:
                status, answer = 0, type(exc).__name__.encode()
            refused: list[str] = []
            if status == 201:
                self._acked(pending[0])
                return connection
            if status == 200 and path.endswith("/batch"):
                for job_id, result in zip(pending, json.loads(answer)["results"], strict=True):
                    if result["status"] == 201:
                        self._acked(job_id)
                    else:
                        refused.append(job_id)
                        self._error(result["status"], result.get("message", "").encode())
                if not refused:
                    return connection
                status = 503  # retried elsewhere, as a whole request refused would be
            else:
                self._error(status, answer)
                refused = pending
            pending = refused
            self.log.retries += len(pending)
            # Try another controller: a follower forwards to the leader, a dead node fails fast.
            await connection.aclose()
            ids = [n for n in self.quorum.procs]
            if self.target in ids and status in (0, 503):
                self.target = ids[(ids.index(self.target) + 1) % len(ids)]
            elif self.target not in ids:
                self.target = ids[0]
            connection = HttpConnection(self.quorum.peers[self.target]["http"], self.quorum.token)
            await anyio.sleep(0.02)
        return connection

    def _acked(self, job_id: str) -> None:
        self.log.acked.add(job_id)
        self.log.acked_at[job_id] = time.time()

    def _error(self, status: int, answer: bytes) -> None:
        key = f"{status} {answer[:60].decode(errors='replace')}"
        self.log.errors[key] = self.log.errors.get(key, 0) + 1

    async def run(self, seconds: float, rate: float, *, settle: float = 30.0) -> float:
        """Submit for ``seconds``; returns the time the last submission was sent."""
        start = time.monotonic()
        stop = start + seconds
        last = start

        async def connection_loop(worker: int) -> None:
            nonlocal last
            connection = HttpConnection(self.quorum.peers[self.target]["http"], self.quorum.token)
            try:
                while True:
                    first = next(self.numbers) * self.batch
                    numbers = range(first, first + self.batch)
                    if rate > 0:
                        numbers = range(first, min(first + self.batch,
                                                   math.ceil((stop - start) * rate)))
                        if not numbers:
                            return
                        await anyio.sleep(max(0.0, start + numbers[-1] / rate
                                              - time.monotonic()))
                    elif time.monotonic() >= stop:
                        return
                    last = time.monotonic()
                    job_ids = [f"{self.prefix}-{number:07d}" for number in numbers]
                    if connection.address != self.quorum.peers[self.target]["http"]:
                        await connection.aclose()
                        connection = HttpConnection(self.quorum.peers[self.target]["http"],
                                                    self.quorum.token)
                    connection = await self.submit(connection, job_ids, stop + settle)
            finally:
                await connection.aclose()

        async with anyio.create_task_group() as tg:
            for worker in range(self.concurrency):
                tg.start_soon(connection_loop, worker)
        return last


# -- the orchestrator ----------------------------------------------------------------------------


class Generator:
    """One generator process and its line protocol."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self.reader = BufferedByteReceiveStream(process.stdout)

    async def snap(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        await self.process.stdin.send(b"snap\n")
        line = await self.reader.receive_until(b"\n", 256 * 1024 * 1024)
        result: dict[str, Any] = json.loads(line)
        return result

    async def stop(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await self.process.stdin.send(b"stop\n")
        with anyio.move_on_after(10):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@dataclass
class Fleet:
    """The generators and everything they reported so far."""

    generators: list[Generator]
    assigns: list[tuple[str, int, float, str]] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=dict)
    last: list[dict[str, Any]] = field(default_factory=list)

    async def snap(self) -> dict[str, Any]:
        snaps = [await g.snap() for g in self.generators]
        self.last = snaps
        for snap in snaps:
            self.assigns.extend(tuple(a) for a in snap["assigns"])
            for job, count in snap["accepted"].items():
                self.accepted[job] = self.accepted.get(job, 0) + count
        total: dict[str, Any] = {"cpu_s": [s["cpu_s"] for s in snaps], "by_controller": {}}
        for key in ("registered", "heartbeats_sent", "heartbeat_acks", "connects",
                    "connect_failures", "redirects", "rejected_results", "aborts",
                    "controller_errors", "protocol_errors"):
            total[key] = sum(s[key] for s in snaps)
        for snap in snaps:
            for controller, count in snap["by_controller"].items():
                total["by_controller"][controller] = total["by_controller"].get(controller, 0) + count
        return total


@dataclass
class Meter:
    """CPU of every process over a phase."""

    quorum: ControllerQuorum
    started: float = 0.0
    controllers: dict[str, float] = field(default_factory=dict)
    generators: list[float] = field(default_factory=list)
    own: float = 0.0

    def start(self, fleet_snap: dict[str, Any]) -> None:
        self.started = time.monotonic()
        self.controllers = self.quorum.cpu_s()
        self.generators = list(fleet_snap["cpu_s"])
        self.own = time.process_time()

    def stop(self, fleet_snap: dict[str, Any]) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        now = self.quorum.cpu_s()
        return {
            "wall_s": round(wall, 2),
            "controllers_cpu_pct": {n: round(100 * (now[n] - self.controllers[n]) / wall, 1)
                                    for n in now if n in self.controllers},
            "generators_cpu_pct": [round(100 * (b - a) / wall, 1)
                                   for a, b in zip(self.generators, fleet_snap["cpu_s"],
                                                   strict=True)],
            "submitter_cpu_pct": round(100 * (time.process_time() - self.own) / wall, 1),
        }


async def cluster_jobs(quorum: ControllerQuorum, leader: str) -> dict[str, int]:
    status, body = await http_once(quorum.peers[leader]["http"], "GET", "/v1/cluster",
                                   quorum.token, None)
    if status != 200:
        raise RuntimeError(f"/v1/cluster answered {status}: {body[:200]!r}")
    jobs: dict[str, int] = json.loads(body)["jobs"]
    return jobs


#: Histograms of the leader's /metrics read around a phase: (name, label filter, short name).
PROBES = (
    ("quorus_event_loop_lag_seconds", "", "loop_lag"),
    ("quorus_consensus_queue_seconds", "", "commit_queue"),
    ("quorus_consensus_commit_seconds", "", "commit"),
    ("quorus_gc_pause_seconds", 'generation="2",', "full_gc"),
)


async def probes(quorum: ControllerQuorum, node: str) -> dict[str, dict[str, float]]:
    """``node``'s probe histograms: cumulative count per bucket bound, and ``sum``."""
    status, body = await http_once(quorum.peers[node]["http"], "GET", "/metrics",
                                   quorum.token, None)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:200]!r}")
    found: dict[str, dict[str, float]] = {short: {} for _, _, short in PROBES}
    for line in body.decode().splitlines():
        for name, labels, short in PROBES:
            if line.startswith(f'{name}_bucket{{{labels}le="'):
                found[short][line.rsplit('le="', 1)[1].split('"')[0]] = float(line.rsplit()[-1])
            elif line.startswith(f"{name}_sum") and (not labels or labels[:-1] in line):
                found[short]["sum"] = float(line.rsplit()[-1])
    return found


def probes_between(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
                   ) -> dict[str, Any]:
    """Per probe between two scrapes: observations, and the bucket bounds their p50 and p99
    fall under (the histograms' resolution); for full collections their count and total."""
    out: dict[str, Any] = {}
    for _, _, short in PROBES:
        delta = {bound: value - before.get(short, {}).get(bound, 0.0)
                 for bound, value in after.get(short, {}).items()}
        seconds = delta.pop("sum", 0.0)
        total = delta.get("+Inf", 0.0)

        def under(p: float, delta: dict[str, float] = delta, total: float = total) -> str:
            for bound, count in delta.items():
                if total and count >= p / 100 * total:
                    return "more" if bound == "+Inf" else f"<= {float(bound) * 1000:g} ms"
            return "n/a"

        if short == "full_gc":
            out["full_gc_count"] = int(total)
            out["full_gc_ms"] = round(seconds * 1000, 1)
            out["full_gc_longest"] = under(100)
        else:
            out[f"{short}_count"] = int(total)
            out[f"{short}_p50"] = under(50)
            out[f"{short}_p99"] = under(99)
    return out


async def wait_settled(quorum: ControllerQuorum, leader: str, expected: int, within: float
                       ) -> tuple[dict[str, int], float]:
    """Wait until ``expected`` jobs are completed and none is queued, assigned or running."""
    started = time.monotonic()
    jobs: dict[str, int] = {}
    with anyio.move_on_after(within):
        while True:
            with contextlib.suppress(OSError, RuntimeError, TimeoutError, h11.ProtocolError,
                                     anyio.EndOfStream):
                jobs = await cluster_jobs(quorum, leader)
                busy = sum(jobs.get(s, 0) for s in ("queued", "assigned", "running"))
                if jobs.get("completed", 0) >= expected and busy == 0:
                    break
            await anyio.sleep(0.05)
    return jobs, time.monotonic() - started


async def completed_ids(quorum: ControllerQuorum, leader: str) -> set[str]:
    """Every completed job id, page by page."""
    ids: set[str] = set()
    cursor: str | None = None
    connection = HttpConnection(quorum.peers[leader]["http"], quorum.token)
    try:
        for _ in range(10_000):
            path = "/v1/jobs?state=completed&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, body = await connection.request("GET", path, None, within=60)
            if status != 200:
                raise RuntimeError(f"/v1/jobs answered {status}: {body[:200]!r}")
            page = json.loads(body)
            ids.update(job["id"] for job in page["jobs"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        await connection.aclose()
    return ids


async def wait_registered(fleet: Fleet, agents: int, controller: str | None, within: float
                          ) -> tuple[bool, float, dict[str, Any]]:
    started = time.monotonic()
    snap: dict[str, Any] = {}
    with anyio.move_on_after(within):
        while True:
            snap = await fleet.snap()
            count = (snap["registered"] if controller is None
                     else snap["by_controller"].get(controller, 0))
            if controller is None and snap["by_controller"]:
                count = max(snap["by_controller"].values())
            if count >= agents:
                return True, time.monotonic() - started, snap
            await anyio.sleep(0.05)
    return False, time.monotonic() - started, snap


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": {
        k: getattr(args, k) for k in ("agents", "workers", "seconds", "rounds", "job_rate",
                                      "failover_rate", "http_concurrency", "heartbeat",
                                      "missed_heartbeats", "slots", "tick_ms", "election_ticks",
                                      "ramp", "controller_path", "controller_uvloop",
                                      "submit_batch", "tenant_quotas")
    }}
    results["machine"] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="quorus-fleet-") as tmp:
        root = Path(tmp) if args.keep is None else args.keep
        root.mkdir(parents=True, exist_ok=True)
        quorum = ControllerQuorum(root, 3, heartbeat=args.heartbeat,
                                  missed=args.missed_heartbeats, tick_ms=args.tick_ms,
                                  election_ticks=args.election_ticks,
                                  env=controller_env(args))
        generators: list[Generator] = []
        try:
            for node in quorum.ids:
                quorum.start(node)
            leader = await quorum.leader(within=30)
            for node in quorum.ids:
                await quorum.wait_ready(node)
            await anyio.sleep(1.0)
            rss_empty = quorum.rss_kib(leader)
            print(f"quorum up, leader {leader}; starting {args.agents} agents", file=sys.stderr)

            share = [args.agents // args.workers + (1 if i < args.agents % args.workers else 0)
                     for i in range(args.workers)]
            first = 0
            for count in share:
                process = await anyio.open_process(
                    [sys.executable, __file__, "--worker", "--first", str(first),
                     "--count", str(count), "--controllers", quorum.agent_addresses,
                     "--token-file", str(quorum.token_file), "--slots", str(args.slots),
                     "--missed-heartbeats", str(args.missed_heartbeats),
                     "--ramp", str(args.ramp)],
                    stderr=None,
                )
                generators.append(Generator(process))
                first += count
            fleet = Fleet(generators)

            # -- connect -----------------------------------------------------------------------
            ok, took, snap = await wait_registered(fleet, args.agents, None,
                                                   args.ramp + 60 + args.agents / 20)
            if not ok:
                raise RuntimeError(f"only {snap['registered']} of {args.agents} agents registered "
                                   f"with one controller: {snap}")
            elected = leader
            leader = max(snap["by_controller"], key=snap["by_controller"].get)
            if leader != elected:
                print(f"leadership moved from {elected} to {leader} while the fleet registered",
                      file=sys.stderr)
                rss_empty = math.nan
            await anyio.sleep(args.idle)
            rss_idle = quorum.rss_kib(leader)
            results["connect"] = {
                "registered": args.agents, "seconds": round(took, 2),
                "leader_rss_empty_mib": round(rss_empty / 1024, 1),
                "leader_rss_idle_fleet_mib": round(rss_idle / 1024, 1),
                "rss_per_idle_agent_kib": round((rss_idle - rss_empty) / args.agents, 2),
                "connect_failures": snap["connect_failures"], "redirects": snap["redirects"],
            }
            print(f"connect: {results['connect']}", file=sys.stderr)

            # -- heartbeats --------------------------------------------------------------------
            meter = Meter(quorum)
            before = await fleet.snap()
            probes_before = await probes(quorum, leader)
            meter.start(before)
            await anyio.sleep(args.seconds)
            after = await fleet.snap()
            cpu = meter.stop(after)
            lag = probes_between(probes_before, await probes(quorum, leader))
            acks = after["heartbeat_acks"] - before["heartbeat_acks"]
            sent = after["heartbeats_sent"] - before["heartbeats_sent"]
            results["heartbeats"] = {
                "agents": args.agents, "interval_s": args.heartbeat,
                "offered_per_s": round(args.agents / args.heartbeat, 1),
                "sent_per_s": round(sent / cpu["wall_s"], 1),
                "acked_per_s": round(acks / cpu["wall_s"], 1),
                "still_registered": after["registered"],
                "leader_after": await quorum.leader(), **lag, **cpu,
            }
            print(f"heartbeats: {results['heartbeats']}", file=sys.stderr)

            # -- jobs --------------------------------------------------------------------------
            rss_before_jobs = quorum.rss_kib(leader)
            tenant = None
            if args.tenant_quotas:
                from quorus.tenant.testing import QUOTA_TENANTS  # the tenant plugin's

                status, body = await http_once(
                    quorum.peers[leader]["http"], "PUT", "/v1/tenants", quorum.token,
                    json.dumps({"yaml": QUOTA_TENANTS}).encode())
                if status != 200:
                    raise RuntimeError(f"applying the tenants answered {status}: {body[:300]!r}")
                tenant = QUOTA_TENANT
            submitter = Submitter(quorum, "job", args.http_concurrency, args.submit_batch,
                                  tenant)
            submitter.target = leader
            profiler = None
            if args.profile_leader:  # py-spy on the leader for the submission phase
                spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
                profiler = await anyio.open_process(
                    [spy, "record", "--nonblocking", "-r", "200", "-f", "raw",
                     "-d", str(max(1, int(args.seconds))), "-o", str(args.profile_leader),
                     "-p", str(quorum.procs[leader].pid)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            before = await fleet.snap()
            probes_before = await probes(quorum, leader)
            meter.start(before)
            first_sent = time.monotonic()
            await submitter.run(args.seconds, args.job_rate)
            if profiler is not None:
                with anyio.fail_after(30):
                    await profiler.wait()
            submit_wall = time.monotonic() - first_sent
            acked = len(submitter.log.acked)
            jobs, settle = await wait_settled(quorum, leader, acked, 60 + acked / 100)
            done_wall = time.monotonic() - first_sent
            after = await fleet.snap()
            cpu = meter.stop(after)
            lag = probes_between(probes_before, await probes(quorum, leader))
            await anyio.sleep(1.0)
            rss_after_jobs = quorum.rss_kib(leader)
            latencies = job_latencies(fleet, submitter.log, "job-")
            acks = [submitter.log.acked_at[j] - submitter.log.sent_at[j]
                    for j in submitter.log.acked_at]
            completed = jobs.get("completed", 0)
            results["jobs"] = {
                "offered_per_s": args.job_rate or "max", "submitted": acked,
                "submitted_per_s": round(acked / submit_wall, 1),
                "completed": completed,
                "completed_per_s": round(completed / done_wall, 1),
                "settle_after_last_submit_s": round(settle, 2),
                "assign_latency_p50_ms": round(pct(latencies, 50) * 1000, 1),
                "assign_latency_p99_ms": round(pct(latencies, 99) * 1000, 1),
                "assign_latency_max_ms": round(max(latencies, default=math.nan) * 1000, 1),
                "submit_ack_p50_ms": round(pct(acks, 50) * 1000, 1),
                "submit_ack_p99_ms": round(pct(acks, 99) * 1000, 1),
                "assigned": len(latencies), "submit_retries": submitter.log.retries,
                "submit_errors": submitter.log.errors, "states": jobs,
                "leader_rss_before_mib": round(rss_before_jobs / 1024, 1),
                "leader_rss_after_mib": round(rss_after_jobs / 1024, 1),
                "rss_per_finished_job_kib": round((rss_after_jobs - rss_before_jobs)
                                                  / max(completed, 1), 3),
                "leader_after": await quorum.leader(),
                **lag, **cpu,
            }
            print(f"jobs: {results['jobs']}", file=sys.stderr)

            # -- failover ----------------------------------------------------------------------
            rounds = []
            all_acked: set[str] = set(submitter.log.acked)
            for number in range(args.rounds):
                failure = ""
                try:
                    rounds.append(await failover_round(args, quorum, fleet, leader, number))
                except* (RuntimeError, TimeoutError) as group:
                    failure = "; ".join(str(e) for e in group.exceptions)
                if failure:
                    # A controller that dies on its own (not killed here) ends the rounds; the
                    # report says why instead of losing what was measured.
                    results["failover_error"] = f"round {number + 1}: {failure}"[:4000]
                    print(f"failover {number + 1} failed: {failure}", file=sys.stderr)
                    break
                all_acked |= rounds[-1].pop("acked_ids")
                print(f"failover {number + 1}: {rounds[-1]}", file=sys.stderr)
                leader = rounds[-1]["new_leader"]
            if rounds and "failover_error" in results:
                times = [r["assignments_resume_s"] for r in rounds]
                results["failover"] = {
                    "rounds": rounds, "resume_p50_s": round(pct(times, 50), 3),
                    "resume_p99_s": round(pct(times, 99), 3), "resume_max_s": round(max(times), 3),
                    "acknowledged_jobs": len(all_acked), "lost": None, "lost_examples": [],
                    "accepted_twice": None, "final_states": None,
                }
            elif rounds:
                jobs, _ = await wait_settled(quorum, leader, len(all_acked), 60)
                done = await completed_ids(quorum, leader)
                await fleet.snap()
                twice = sorted(j for j, n in fleet.accepted.items() if n > 1)
                times = [r["assignments_resume_s"] for r in rounds]
                results["failover"] = {
                    "rounds": rounds,
                    "resume_p50_s": round(pct(times, 50), 3),
                    "resume_p99_s": round(pct(times, 99), 3),
                    "resume_max_s": round(max(times), 3),
                    "acknowledged_jobs": len(all_acked),
                    "lost": len(all_acked - done), "lost_examples": sorted(all_acked - done)[:5],
                    "accepted_twice": len(twice), "final_states": jobs,
                }
            results["machine"]["load_after"] = os.getloadavg()
        finally:
            for generator in generators:
                with anyio.CancelScope(shield=True):
                    await generator.stop()
            quorum.stop_all()
    return results


def controller_env(args: argparse.Namespace) -> dict[str, str]:
    """The controllers' environment beyond this process's: another checkout's sources first on
    the path (``--controller-path``, to compare two versions of the controller against the
    same generators), uvloop (``--controller-uvloop``)."""
    env: dict[str, str] = {}
    if args.controller_path:
        paths = [str(Path(p).resolve()) for p in args.controller_path.split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(
            [*paths, *filter(None, [os.environ.get("PYTHONPATH", "")])])
    if args.controller_uvloop:
        env["QUORUS_UVLOOP"] = "1"
    return env


def job_latencies(fleet: Fleet, log: Submissions, prefix: str) -> list[float]:
    """Submission sent -> first ``assign`` received, per job with ``prefix``."""
    first: dict[str, float] = {}
    for job_id, attempt, at, _ in fleet.assigns:
        if job_id.startswith(prefix) and attempt == 1 and job_id not in first:
            first[job_id] = at
    return [first[j] - log.sent_at[j] for j in first if j in log.sent_at]


async def failover_round(args: argparse.Namespace, quorum: ControllerQuorum, fleet: Fleet,
                         leader: str, number: int) -> dict[str, Any]:
    prefix = f"fo{number}"
    submitter = Submitter(quorum, prefix, max(4, args.http_concurrency // 4),
                          args.submit_batch)
    submitter.target = leader
    killed_at = 0.0
    result: dict[str, Any] = {}

    async def kill_and_watch() -> None:
        nonlocal killed_at
        await anyio.sleep(args.failover_lead)
        await fleet.snap()
        killed_at = time.time()
        quorum.kill(leader)
        new_leader = await quorum.leader(within=30, not_=leader)
        elected = time.time() - killed_at
        resumed = math.nan
        with anyio.move_on_after(30):
            while math.isnan(resumed):
                await fleet.snap()
                after = [at for _, _, at, c in fleet.assigns if at > killed_at and c != leader]
                if after:
                    resumed = min(after) - killed_at
                await anyio.sleep(0.02)
        ok, _, snap = await wait_registered(fleet, args.agents, new_leader, 60)
        result.update({
            "killed": leader, "new_leader": new_leader,
            "leader_known_s": round(elected, 3),
            "assignments_resume_s": round(resumed, 3),
            "fleet_reregistered_s": round(time.time() - killed_at, 3) if ok else None,
            "reregistered": snap["by_controller"].get(new_leader, 0),
        })

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_and_watch)
        await submitter.run(args.failover_lead + args.failover_after, args.failover_rate)
    # Restart the killed controller and let it catch up before the next round.
    quorum.start(leader)
    await quorum.wait_ready(leader, within=60)
    result["acked_ids"] = set(submitter.log.acked)
    result["submitted"] = len(submitter.log.acked)
    result["submit_retries"] = submitter.log.retries
    return result


def _pair(phase: dict[str, Any], short: str) -> str:
    return f"{phase.get(short + '_p50', '-')} / {phase.get(short + '_p99', '-')}"


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        "# Fleet load", "",
        f"{s['agents']} simulated agents in {s['workers']} generator processes against a "
        f"3-controller Raft quorum (fsync on), heartbeat every {s['heartbeat']} s "
        f"({s['missed_heartbeats']} missed = dead), {os.cpu_count()} CPUs, load before "
        f"{results['machine']['load_before'][0]:.2f}."
        + (f" Jobs submitted in tenant {QUOTA_TENANT}, three levels deep, every quota set "
           "(`--tenant-quotas`)." if s.get("tenant_quotas") else ""), "",
        "| measure | result | target |", "|---|---|---|",
    ]
    c = results.get("connect", {})
    h = results.get("heartbeats", {})
    j = results.get("jobs", {})
    f = results.get("failover", {})
    if c:
        lines.append(f"| fleet registered | {c['registered']} agents in {c['seconds']} s | |")
    if h:
        lines.append(f"| heartbeats acknowledged/s | {h['acked_per_s']:,} "
                     f"(offered {h['offered_per_s']:,}) | ≥ 10,000 |")
    if j:
        lines += [
            f"| jobs submitted/s | {j['submitted_per_s']:,} ({j['submitted']} jobs, "
            f"offered {j['offered_per_s']}) | ≥ 1,000 |",
            f"| jobs completed/s (first submit to last completion) | {j['completed_per_s']:,} "
            f"({j['completed']} completed) | ≥ 1,000 |",
            f"| assignment latency p50 / p99 / max | {j['assign_latency_p50_ms']} / "
            f"{j['assign_latency_p99_ms']} / {j['assign_latency_max_ms']} ms | p99 < 50 ms |",
            f"| submission acknowledged p50 / p99 ({s['submit_batch']} per request) | "
            f"{j['submit_ack_p50_ms']} / "
            f"{j['submit_ack_p99_ms']} ms | |",
        ]
    if f:
        lines += [
            f"| failover: assignments resume p50 / p99 / max | {f['resume_p50_s']} / "
            f"{f['resume_p99_s']} / {f['resume_max_s']} s ({len(f['rounds'])} rounds) "
            "| p99 < 2 s |",
            f"| failover: jobs lost / completed twice | {f['lost']} / {f['accepted_twice']} "
            f"of {f['acknowledged_jobs']} | 0 / 0 |",
        ]
    if c:
        lines.append(f"| leader RSS per idle agent | {c['rss_per_idle_agent_kib']} KiB "
                     f"({c['leader_rss_empty_mib']} → {c['leader_rss_idle_fleet_mib']} MiB) | |")
    if j:
        lines.append(f"| leader RSS per finished job | {j['rss_per_finished_job_kib']} KiB "
                     f"({j['leader_rss_before_mib']} → {j['leader_rss_after_mib']} MiB) | |")
    lines += ["", "CPU per phase (% of one core); on the leader (p50 / p99 to its histograms' "
              "resolution): how late its event loop woke a timer due every 50 ms, how long "
              "commands waited to be proposed and proposals took to commit, and its full "
              "garbage collections (count, total pause, longest):", "",
              "| phase | wall s | controllers | generators | submitter | loop lag | "
              "proposal wait | commit | full GCs |", "|---|---|---|---|---|---|---|---|---|"]
    for name, phase in (("heartbeats", h), ("jobs", j)):
        if phase:
            ctl = ", ".join(f"{n} {v}" for n, v in phase["controllers_cpu_pct"].items())
            gen = ", ".join(str(v) for v in phase["generators_cpu_pct"])
            lines.append(f"| {name} | {phase['wall_s']} | {ctl} | {gen} | "
                         f"{phase['submitter_cpu_pct']} | {_pair(phase, 'loop_lag')} | "
                         f"{_pair(phase, 'commit_queue')} | {_pair(phase, 'commit')} | "
                         f"{phase.get('full_gc_count', '-')}, {phase.get('full_gc_ms', '-')} ms, "
                         f"longest {phase.get('full_gc_longest', '-')} |")
    if f:
        lines += ["", "| round | killed | new leader | leader known s | assignments resume s | "
                  "fleet re-registered s | jobs |", "|---|---|---|---|---|---|---|"]
        for i, r in enumerate(f["rounds"], 1):
            lines.append(f"| {i} | {r['killed']} | {r['new_leader']} | {r['leader_known_s']} | "
                         f"{r['assignments_resume_s']} | {r['fleet_reregistered_s']} | "
                         f"{r['submitted']} |")
    if "failover_error" in results:
        lines += ["", f"Failover stopped: {results['failover_error'].splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of the heartbeat and job phases")
    parser.add_argument("--rounds", type=int, default=5, help="failover rounds")
    parser.add_argument("--job-rate", type=float, default=1000.0,
                        help="jobs/s offered in the job phase (0: as fast as possible)")
    parser.add_argument("--failover-rate", type=float, default=200.0,
                        help="jobs/s offered during failover rounds")
    parser.add_argument("--failover-lead", type=float, default=1.5,
                        help="seconds of load before the leader is killed")
    parser.add_argument("--failover-after", type=float, default=3.0,
                        help="seconds of load after the kill")
    parser.add_argument("--http-concurrency", type=int, default=64)
    parser.add_argument("--submit-batch", type=int, default=1, metavar="N",
                        help="jobs per submission request: 1 POST /v1/jobs each (default), "
                             "more in one POST /v1/jobs/batch (at most 1000)")
    parser.add_argument("--tenant-quotas", action="store_true",
                        help="submit the jobs phase's jobs in a tenant three levels deep with "
                             "every quota set, so admission checks and reserves each (needs "
                             "the tenant plugin); without it jobs go to the default tenant")
    parser.add_argument("--heartbeat", type=float, default=0.1, help="heartbeat interval, s")
    parser.add_argument("--missed-heartbeats", type=int, default=10)
    parser.add_argument("--slots", type=int, default=4, help="concurrent transfers per agent")
    parser.add_argument("--tick-ms", type=int, default=50, help="Raft tick (its heartbeat)")
    parser.add_argument("--election-ticks", type=lambda text: tuple(map(int, text.split(","))),
                        default=(10, 20), help="Raft election timeout range in ticks: LOW,HIGH "
                        "(default 10,20: 0.5-1 s at 50 ms ticks; the backend's own is 3,6)")
    parser.add_argument("--ramp", type=float, default=3.0, help="seconds to start the fleet")
    parser.add_argument("--idle", type=float, default=2.0,
                        help="seconds the idle fleet runs before memory is read")
    parser.add_argument("--controller-path", metavar="DIRS",
                        help="source directories (os.pathsep-separated) put first on the "
                        "controllers' PYTHONPATH: run another checkout's controller against the "
                        "same generators")
    parser.add_argument("--controller-uvloop", action="store_true",
                        help="run the controllers on uvloop (QUORUS_UVLOOP=1)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile-leader", type=Path, metavar="FILE",
                        help="record the leader with py-spy during the job submissions "
                             "(collapsed stacks, py-spy's raw format)")
    parser.add_argument("--keep", type=Path,
                        help="keep the controllers' data, configs and logs in this directory")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--controllers", help=argparse.SUPPRESS)
    parser.add_argument("--token-file", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The generators run on uvloop: they must not be the bottleneck.
    backend, options = "asyncio", {"use_uvloop": True}
    if args.worker:
        anyio.run(run_worker, args, backend=backend, backend_options=options)
        return 0
    results = anyio.run(orchestrate, args, backend=backend, backend_options=options)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
