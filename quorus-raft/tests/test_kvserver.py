"""The key-value server of the real-process tests and benchmarks, in process: puts answered by
the Raft runtime's completion callback, reads through a barrier, the token, bad requests."""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute
from quorus.core.consensus import ConsensusConfig
from quorus.core.testing.fixtures import free_port
from quorus.core.wire import FramedStream
from quorus.raft.kv import KeyValueStateMachine
from quorus.raft.kvclient import KeyValueClient, RequestFailed
from quorus.raft.kvserver import KeyValueServer
from quorus.raft.node import RaftNode

pytestmark = pytest.mark.anyio

TOKEN = "kv-test-token"


@asynccontextmanager
async def server(tmp_path: Path) -> AsyncIterator[str]:
    """A one-node cluster serving clients; yields the client address."""
    config = ConsensusConfig(node_id="a", members={"a": f"127.0.0.1:{free_port()}"},
                             data_dir=tmp_path, options={"token": TOKEN})
    machine = KeyValueStateMachine()
    port = free_port()
    async with RaftNode(config, machine) as node, anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            while not node.is_leader:  # noqa: ASYNC110 - polling the role
                await anyio.sleep(0.01)
        await tg.start(KeyValueServer(node, machine, TOKEN).serve, "127.0.0.1", port)
        yield f"127.0.0.1:{port}"
        tg.cancel_scope.cancel()


async def test_puts_cas_and_gets_are_answered(tmp_path: Path) -> None:
    async with server(tmp_path) as address, KeyValueClient({"a": address}, TOKEN) as kv:
        assert await kv.put("k", 1) is None
        assert await kv.put("k", 2) == 1
        assert await kv.cas("k", 2, 3) is True
        assert await kv.cas("k", 2, 4) is False
        assert await kv.get("k") == 3
        with pytest.raises(RequestFailed, match="unknown request 'drop'"):
            await kv.request("drop", "k")


async def test_pipelined_puts_each_get_their_answer(tmp_path: Path) -> None:
    async with server(tmp_path) as address:
        host, port = address.rsplit(":", 1)
        framed = FramedStream(await anyio.connect_tcp(host, int(port)))
        await framed.send({"token": TOKEN})
        assert await framed.receive() == {"ok": "a"}
        for i in range(50):
            await framed.send([i, "put", f"k{i}", i])
        await framed.send([99, "put", "k"])  # too short: an error, the connection stays
        replies = {}
        with anyio.fail_after(5):
            while len(replies) < 51:
                reply = await framed.receive()
                replies[reply[0]] = reply
        await framed.aclose()
    assert all(replies[i] == [i, "ok", None] for i in range(50))
    assert replies[99][1] == "error"


async def test_a_wrong_token_is_refused_and_the_connection_closed(tmp_path: Path) -> None:
    async with server(tmp_path) as address:
        host, port = address.rsplit(":", 1)
        framed = FramedStream(await anyio.connect_tcp(host, int(port)))
        await framed.send({"token": "wrong"})
        assert await framed.receive() == {"error": "wrong token"}
        with anyio.fail_after(5), pytest.raises(Exception, match="closed"):
            await framed.receive()
        await framed.aclose()


async def test_a_client_that_resets_its_connection_does_not_stop_the_server(tmp_path: Path) -> None:
    async with server(tmp_path) as address:
        host, port = address.rsplit(":", 1)
        for _ in range(3):
            stream = await anyio.connect_tcp(host, int(port))
            framed = FramedStream(stream)
            await framed.send({"token": TOKEN})
            assert await framed.receive() == {"ok": "a"}
            await framed.send([1, "put", "k", "v"])
            # Close with a reset (RST) rather than a FIN, before the answer is read.
            raw = stream.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()
        async with KeyValueClient({"a": address}, TOKEN) as kv:
            assert await kv.put("k", "after") == "v"
