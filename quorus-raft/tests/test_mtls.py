"""Mutual TLS between Raft peers, with real certificates from a test CA: with ``tls_ca`` a node
accepts only peers whose certificate that CA issued and that has not expired; a peer with a
certificate from another CA, an expired one or none cannot send a message nor join the
cluster (even with the right cluster token), and both sides log why."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from quorus.core.consensus import ConsensusConfig, NotLeader
from quorus.core.errors import ConfigurationError
from quorus.core.testing.fixtures import free_port
from quorus.core.testing.pki import IssuedCertificate, TestCa
from quorus.raft.kv import KeyValueStateMachine, put_command
from quorus.raft.node import RaftNode
from quorus.raft.settings import RaftSettings
from quorus.raft.transport import PeerTransport

pytestmark = pytest.mark.anyio

TOKEN = "cluster-secret"
TRANSPORT_LOG = "quorus.raft.transport"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "pki")


@pytest.fixture
def rogue(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "rogue", "Rogue CA")


def tls_options(ca: TestCa, cert: IssuedCertificate | None, **more: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"token": TOKEN, "tls_ca": str(ca.ca_file), **more}
    if cert is not None:
        options.update(tls_cert=str(cert.cert), tls_key=str(cert.key))
    return options


class Node:
    """A peer transport configured from raft options, as a RaftNode configures it."""

    def __init__(self, node_id: str, members: dict[str, str], options: dict[str, Any]) -> None:
        settings = RaftSettings.from_options(options)
        self.inbox: list[tuple[str, Any]] = []
        self.transport = PeerTransport(
            node_id, members[node_id], deliver=lambda s, m: self.inbox.append((s, m)),
            encode=lambda m: m, decode=dict, is_member=lambda n: n in members,
            token=settings.token(), server_tls=settings.server_tls(),
            client_tls=settings.client_tls(), max_backoff=0.1,
        )
        self.transport.set_peers(members)


@asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        for node in nodes:
            await tg.start(node.transport.run)
        yield
        tg.cancel_scope.cancel()


def members(*ids: str) -> dict[str, str]:
    return {i: f"127.0.0.1:{free_port()}" for i in ids}


async def eventually(condition: Any, within: float = 10.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - bounded by fail_after
            await anyio.sleep(0.02)


def logged(caplog: pytest.LogCaptureFixture, *fragments: str) -> bool:
    return any(r.name == TRANSPORT_LOG and all(f in r.getMessage() for f in fragments)
               for r in caplog.records)


# -- settings -------------------------------------------------------------------------------------


def test_with_a_ca_the_server_requires_a_peer_certificate(ca: TestCa) -> None:
    settings = RaftSettings.from_options(tls_options(ca, ca.issue("a", "a")))
    server, client = settings.server_tls(), settings.client_tls()
    assert server is not None and client is not None
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert client.verify_mode == ssl.CERT_REQUIRED and not client.check_hostname
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_without_a_ca_the_server_asks_for_no_certificate(ca: TestCa) -> None:
    cert = ca.issue("a", "a")
    settings = RaftSettings.from_options(
        {"token": TOKEN, "tls_cert": str(cert.cert), "tls_key": str(cert.key)})
    server = settings.server_tls()
    assert server is not None and server.verify_mode == ssl.CERT_NONE
    assert RaftSettings.from_options({"token": TOKEN}).server_tls() is None


def test_bad_tls_options_are_named(tmp_path: Path, ca: TestCa) -> None:
    with pytest.raises(ConfigurationError, match="tls_ca without tls_cert"):
        RaftSettings.from_options({"token": TOKEN, "tls_ca": str(ca.ca_file)})
    missing = {**tls_options(ca, ca.issue("a", "a")), "tls_ca": str(tmp_path / "nope.pem")}
    with pytest.raises(ConfigurationError, match=r"raft tls_ca: '.*nope\.pem' is not a"):
        RaftSettings.from_options(missing).server_tls()
    locked = ca.issue("locked", "a", key_password="pw")
    options = tls_options(ca, locked, tls_key_password="pw")
    assert RaftSettings.from_options(options).client_tls() is not None
    with pytest.raises(ConfigurationError, match="password is right"):
        RaftSettings.from_options({**options, "tls_key_password": "wrong"}).server_tls()


# -- transports -----------------------------------------------------------------------------------


async def test_peers_with_certificates_from_the_ca_talk(ca: TestCa) -> None:
    m = members("a", "b")
    a = Node("a", m, tls_options(ca, ca.issue("a", "a")))
    b = Node("b", m, tls_options(ca, ca.issue("b", "b")))
    async with running(a, b):
        a.transport.send("b", {"type": "ping"})
        b.transport.send("a", {"type": "pong"})
        await eventually(lambda: b.inbox and a.inbox)
    assert b.inbox == [("a", {"type": "ping"})] and a.inbox == [("b", {"type": "pong"})]


@pytest.mark.parametrize(
    ("intruder", "server_says", "intruder_says"),
    [
        ("rogue", "the peer's certificate was not issued by the configured CA",
         "b refused our certificate: it was not issued by a CA b trusts"),
        ("expired", "the peer's certificate has expired",
         "b refused our certificate: it has expired"),
        ("none", "the peer presented no certificate",
         "b requires a client certificate and we presented none"),
    ],
)
async def test_a_peer_without_a_good_certificate_sends_nothing(
    ca: TestCa, rogue: TestCa, caplog: pytest.LogCaptureFixture, intruder: str,
    server_says: str, intruder_says: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger=TRANSPORT_LOG)
    cert = {"rogue": rogue.issue("a", "a"), "expired": ca.issue("a", "a", expired=True),
            "none": None}[intruder]
    m = members("a", "b")
    # The intruder knows the cluster token and trusts the cluster's CA: only its own
    # certificate is wrong. (With no certificate it dials with a context of its own.)
    options = tls_options(ca, cert or ca.issue("unused", "a"))
    a = Node("a", m, options)
    if cert is None:
        a.transport._client_tls = ssl.create_default_context(cafile=str(ca.ca_file))
        a.transport._client_tls.check_hostname = False
    b = Node("b", m, tls_options(ca, ca.issue("b", "b")))
    async with running(a, b):
        for _ in range(20):
            a.transport.send("b", {"type": "ping"})
        await eventually(lambda: b.transport.stats.tls_refused >= 2
                         and logged(caplog, server_says) and logged(caplog, intruder_says))
        await anyio.sleep(0.2)
    assert b.inbox == []
    assert b.transport.stats.received == 0
    refusal = next(r for r in caplog.records if server_says in r.getMessage())
    assert refusal.levelno == logging.WARNING
    assert refusal.getMessage().startswith("raft: refused a connection from 127.0.0.1:")


async def test_a_peer_that_cannot_verify_the_server_sends_nothing(
    ca: TestCa, rogue: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    m = members("a", "b")
    a = Node("a", m, tls_options(ca, ca.issue("a", "a")))
    b = Node("b", m, tls_options(ca, rogue.issue("b", "b")))  # b's own certificate is rogue
    async with running(a, b):
        a.transport.send("b", {"type": "ping"})
        await eventually(lambda: logged(
            caplog, "cannot connect to b", "b's certificate was not issued by the configured CA"))
    assert b.inbox == []
    # Warned once, not once per retry.
    assert sum("cannot connect to b" in r.getMessage() for r in caplog.records) == 1


# -- whole nodes ----------------------------------------------------------------------------------


class Nodes:
    """Raft nodes in this process, each in a task of its own until the block ends."""

    def __init__(self, root: Path, task_group: anyio.abc.TaskGroup, voters: list[str]) -> None:
        self.root, self.task_group = root, task_group
        self.members = {v: f"127.0.0.1:{free_port()}" for v in voters}
        self.nodes: dict[str, RaftNode] = {}
        self.machines: dict[str, KeyValueStateMachine] = {}

    async def start(self, node_id: str, **options: Any) -> RaftNode:
        address = self.members.get(node_id) or f"127.0.0.1:{free_port()}"
        members = {**self.members, node_id: address}
        if options.get("join"):
            options["listen"] = address
        machine = KeyValueStateMachine()
        node = RaftNode(ConsensusConfig(node_id=node_id, members=members,
                                        data_dir=self.root / node_id, options=options), machine)
        self.nodes[node_id], self.machines[node_id] = node, machine

        async def run(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                      ) -> None:
            async with node:
                task_status.started()
                await anyio.sleep_forever()

        await self.task_group.start(run)
        return node

    async def leader(self) -> RaftNode:
        with anyio.fail_after(10):
            while not any(n.is_leader for n in self.nodes.values()):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        return next(n for n in self.nodes.values() if n.is_leader)

    async def put(self, key: str, value: Any) -> None:
        with anyio.fail_after(20):
            while True:
                try:
                    await (await self.leader()).propose(put_command(key, value))
                    return
                except NotLeader:
                    await anyio.sleep(0.05)

    async def seen(self, node_id: str, key: str, value: Any) -> None:
        with anyio.fail_after(10):
            while self.machines[node_id].get(key) != value:  # noqa: ASYNC110 - polling state
                await anyio.sleep(0.02)


async def test_a_node_with_a_rogue_certificate_cannot_join(
    tmp_path: Path, ca: TestCa, rogue: TestCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=TRANSPORT_LOG)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            nodes = Nodes(tmp_path, tg, ["a", "b"])
            for node_id in ("a", "b"):
                await nodes.start(node_id, **tls_options(ca, ca.issue(node_id, node_id)))
            await nodes.put("before", 1)

            # The intruder has the cluster token, trusts the cluster's CA and is added by the
            # leader, but its own certificate is from another CA: nothing reaches it, nothing
            # of it is accepted.
            bad = await nodes.start("bad", join=True,
                                    **tls_options(ca, rogue.issue("bad", "bad")))
            await (await nodes.leader()).add_member("bad", bad.settings.listen, voter=False)
            await nodes.put("after", 2)
            for node_id in ("a", "b"):
                await nodes.seen(node_id, "after", 2)
            await anyio.sleep(0.5)
            assert nodes.machines["bad"].get("before") is None
            assert nodes.machines["bad"].get("after") is None
            assert logged(caplog, "refused a connection",
                          "the peer's certificate was not issued by the configured CA")
            assert logged(caplog, "cannot connect to bad",
                          "bad's certificate was not issued by the configured CA")

            # The same, with a certificate from the cluster's CA: it joins and catches up.
            good = await nodes.start("good", join=True,
                                     **tls_options(ca, ca.issue("good", "good")))
            await (await nodes.leader()).add_member("good", good.settings.listen)
            await nodes.put("last", 3)
            await nodes.seen("good", "last", 3)
            assert nodes.machines["good"].get("before") == 1
            assert nodes.machines["bad"].get("last") is None
            tg.cancel_scope.cancel()
