"""Raft peer connections over loopback TCP: hello, token, membership, reconnects, bad
frames and TLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trustme
from quorus.core.testing.fixtures import free_port
from quorus.core.wire import FramedStream, Hello, encode_frame
from quorus.raft.transport import PROTOCOL, PeerTransport, split_address

pytestmark = pytest.mark.anyio


def decode(raw: Any) -> Any:
    if not isinstance(raw, dict) or raw.get("type") not in {"ping", "pong"}:
        raise ValueError(f"unknown message {raw!r}")
    return raw


class Node:
    def __init__(self, node_id: str, members: dict[str, str], token: str = "cluster-secret", **kw: Any) -> None:
        self.inbox: list[tuple[str, Any]] = []
        self.arrived = anyio.Event()
        self.transport = PeerTransport(
            node_id, members[node_id], deliver=self._deliver, encode=lambda m: m, decode=decode,
            is_member=lambda n: n in members, token=token, **kw,
        )
        self.transport.set_peers(members)

    def _deliver(self, sender: str, message: Any) -> None:
        self.inbox.append((sender, message))
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(5):
            while len(self.inbox) < count:
                await self.arrived.wait()
                self.arrived = anyio.Event()


@asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[anyio.abc.TaskGroup]:
    async with anyio.create_task_group() as tg:
        for node in nodes:
            await tg.start(node.transport.run)
        yield tg
        tg.cancel_scope.cancel()


def members(*ids: str) -> dict[str, str]:
    return {i: f"127.0.0.1:{free_port()}" for i in ids}


async def test_messages_flow_both_ways_in_order() -> None:
    m = members("a", "b")
    a, b = Node("a", m), Node("b", m)
    async with running(a, b):
        for i in range(500):
            a.transport.send("b", {"type": "ping", "n": i})
        b.transport.send("a", {"type": "pong", "n": 0})
        await b.wait_for(500)
        await a.wait_for(1)
    assert [msg["n"] for _, msg in b.inbox] == list(range(500))
    assert {sender for sender, _ in b.inbox} == {"a"}
    assert a.inbox == [("b", {"type": "pong", "n": 0})]
    # Queued messages go out in batches, not one system call each.
    assert a.transport.stats.flushes < 500


async def wait_connected(node: Node, peer: str) -> None:
    with anyio.fail_after(5):
        while node.transport._peers[peer].sock is None:  # noqa: ASYNC110 - polling the state
            await anyio.sleep(0.01)


async def test_a_connected_peer_gets_each_message_written_at_once() -> None:
    m = members("a", "b")
    a, b = Node("a", m), Node("b", m)
    async with running(a, b):
        await wait_connected(a, "b")
        flushes = a.transport.stats.flushes
        for i in range(3):
            a.transport.send("b", {"type": "ping", "n": i})
            # Written by send itself, in this task: nothing was left for the sender task.
            assert not a.transport._peers["b"].pending
        assert a.transport.stats.flushes == flushes + 3
        await b.wait_for(3)
    assert [msg["n"] for _, msg in b.inbox] == [0, 1, 2]


class Addressed(dict[str, Any]):
    @property
    def dst(self) -> str:
        return str(self["to"])


async def test_send_all_writes_once_per_peer_and_batches_are_announced_once_per_read() -> None:
    m = members("a", "b", "c")
    a, b, c = Node("a", m), Node("b", m), Node("c", m)
    batches: list[int] = []
    b.transport.on_batch_delivered(lambda: batches.append(len(b.inbox)))
    async with running(a, b, c):
        await wait_connected(a, "b")
        await wait_connected(a, "c")
        flushes = a.transport.stats.flushes
        a.transport.send_all(
            [Addressed(type="ping", n=i, to="b") for i in range(10)]
            + [Addressed(type="ping", n=i, to="c") for i in range(10)]
        )
        assert a.transport.stats.flushes == flushes + 2
        await b.wait_for(10)
        await c.wait_for(10)
    assert [msg["n"] for _, msg in b.inbox] == list(range(10))
    assert [msg["n"] for _, msg in c.inbox] == list(range(10))
    # One write arrives in one read here: one call after all ten were delivered.
    assert batches == [10]


async def test_a_message_larger_than_the_socket_takes_arrives_whole() -> None:
    """The kernel takes part of a big frame at once; the sender task writes the rest, and
    messages sent meanwhile follow it in order."""
    m = members("a", "b")
    a, b = Node("a", m), Node("b", m)
    big = "x" * (8 << 20)
    async with running(a, b):
        await wait_connected(a, "b")
        a.transport.send("b", {"type": "ping", "n": 0, "blob": big})
        a.transport.send("b", {"type": "ping", "n": 1})
        await b.wait_for(2)
    assert [msg["n"] for _, msg in b.inbox] == [0, 1]
    assert b.inbox[0][1]["blob"] == big


async def test_a_message_over_the_frame_limit_is_dropped_and_counted() -> None:
    m = members("a", "b")
    a, b = Node("a", m, max_frame_size=1000), Node("b", m, max_frame_size=1000)
    async with running(a, b):
        a.transport.send("b", {"type": "ping", "blob": "x" * 2000})
        a.transport.send("b", {"type": "ping", "n": 1})
        await b.wait_for(1)
    assert a.transport.stats.dropped == 1
    assert b.inbox == [("a", {"type": "ping", "n": 1})]


async def test_a_peer_that_goes_away_is_reconnected_and_later_messages_arrive() -> None:
    m = members("a", "b")
    a = Node("a", m, max_backoff=0.1)
    async with running(a):
        b1 = Node("b", m)
        async with running(b1):
            await wait_connected(a, "b")
            a.transport.send("b", {"type": "ping", "n": 1})
            await b1.wait_for(1)
        # The connection is dead but a does not know yet: its next writes fail, and it
        # reconnects to the new b.
        b2 = Node("b", m)
        async with running(b2):
            with anyio.fail_after(5):
                while not b2.inbox:
                    a.transport.send("b", {"type": "ping", "n": 2})
                    await anyio.sleep(0.05)
    assert a.transport.stats.connects >= 2


async def test_a_wrong_token_is_refused() -> None:
    m = members("a", "b")
    a, b = Node("a", m, token="right"), Node("b", m, token="wrong")
    async with running(a, b):
        b.transport.send("a", {"type": "ping"})
        with anyio.fail_after(5):
            while a.transport.stats.refused == 0:  # noqa: ASYNC110 - polling a counter
                await anyio.sleep(0.01)
    assert a.inbox == []


async def test_a_node_outside_the_configuration_is_refused() -> None:
    m = members("a")
    a = Node("a", m)
    async with running(a):
        stream = await anyio.connect_tcp(*split_address(m["a"]))
        framed = FramedStream(stream)
        await framed.send(Hello(PROTOCOL, (1,), "intruder", "token", {"token": "cluster-secret"}).to_wire())
        reply = await framed.receive()
        await framed.aclose()
    assert reply == {"type": "refused", "reason": "'intruder' is not a member of this cluster"}


@pytest.mark.parametrize(
    "garbage",
    [
        encode_frame({"type": "launch-missiles"}),  # unknown message type
        b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",  # malformed msgpack
        (2**31).to_bytes(4, "big"),  # oversized frame header
    ],
)
async def test_bad_frames_close_the_connection_and_nothing_is_delivered(garbage: bytes) -> None:
    m = members("a", "b")
    a = Node("a", m)
    async with running(a):
        stream = await anyio.connect_tcp(*split_address(m["a"]))
        framed = FramedStream(stream)
        await framed.send(Hello(PROTOCOL, (1,), "b", "token", {"token": "cluster-secret"}).to_wire())
        assert (await framed.receive())["node_id"] == "a"
        await stream.send(garbage)
        # The node closes the connection: the next read sees its end.
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stream.receive()
        await stream.aclose()
    assert a.inbox == []
    assert a.transport.stats.bad_frames == 1


async def test_the_sender_reconnects_after_the_peer_restarts() -> None:
    m = members("a", "b")
    a = Node("a", m, max_backoff=0.1)
    async with running(a):
        b1 = Node("b", m)
        async with running(b1):
            a.transport.send("b", {"type": "ping", "n": 1})
            await b1.wait_for(1)
        # b is down: messages meanwhile are dropped, not piled up.
        for _ in range(5):
            a.transport.send("b", {"type": "ping", "n": -1})
            await anyio.sleep(0.02)
        b2 = Node("b", m)
        async with running(b2):
            with anyio.fail_after(5):
                while not any(msg.get("n") == 2 for _, msg in b2.inbox):
                    a.transport.send("b", {"type": "ping", "n": 2})
                    await anyio.sleep(0.05)
    assert a.transport.stats.connects >= 2


def tls_contexts() -> tuple[Callable[[], ssl.SSLContext], Callable[[], ssl.SSLContext]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")

    def server() -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    def client() -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    return server, client


async def test_tls_between_peers() -> None:
    server, client = tls_contexts()
    m = members("a", "b")
    a = Node("a", m, server_tls=server(), client_tls=client())
    b = Node("b", m, server_tls=server(), client_tls=client())
    async with running(a, b):
        a.transport.send("b", {"type": "ping"})
        await b.wait_for(1)


async def test_tls_with_an_untrusted_certificate_delivers_nothing() -> None:
    server, _ = tls_contexts()
    _, other_client = tls_contexts()
    m = members("a", "b")
    a = Node("a", m, server_tls=server(), client_tls=other_client())
    b = Node("b", m, server_tls=server(), client_tls=other_client())
    async with running(a, b):
        a.transport.send("b", {"type": "ping"})
        await anyio.sleep(0.3)
    assert b.inbox == [] and a.transport.stats.connects == 0


def test_addresses_are_checked() -> None:
    assert split_address("[::1]:7000") == ("::1", 7000)
    with pytest.raises(ValueError, match="expected host:port"):
        split_address("nohost")
