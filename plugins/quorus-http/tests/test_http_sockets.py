"""The protocol's own connections (:mod:`quorus.protocols.http.sockets`): reads on the event
loop and filled in a worker thread, timeouts, cancellation and closing under a running read,
connecting. Each runs over a real socket pair or a loopback listener."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel
import httpcore
import pytest
from quorus.core.testing import payload_bytes
from quorus.core.testing.fixtures import free_port
from quorus.protocols.http.sockets import CLOSE_WAIT, SocketStream, connect_tcp

pytestmark = pytest.mark.anyio


@contextmanager
def pair() -> Iterator[tuple[SocketStream, socket.socket]]:
    """A stream and its blocking peer."""
    ours, theirs = socket.socketpair()
    stream = SocketStream(ours)
    try:
        yield stream, theirs
    finally:
        theirs.close()
        ours.close()


def send_in_pieces(peer: socket.socket, data: bytes, piece: int, pause: float = 0.0) -> None:
    for start in range(0, len(data), piece):
        peer.sendall(data[start : start + piece])
        if pause:
            time.sleep(pause)


async def test_fill_returns_exactly_the_size_asked_whatever_the_pieces() -> None:
    data = payload_bytes(3 * 1024 * 1024 + 17, seed=1)
    with pair() as (stream, peer):
        sender = threading.Thread(target=send_in_pieces, args=(peer, data, 65_521))
        sender.start()
        chunks = [await stream.fill(1024 * 1024, timeout=10) for _ in range(3)]
        assert [len(c) for c in chunks] == [1024 * 1024] * 3
        sender.join()
        peer.shutdown(socket.SHUT_WR)
        chunks.append(await stream.fill(1024 * 1024, timeout=10))  # the end comes first
        assert await stream.fill(1024 * 1024, timeout=10) == b""
        assert b"".join(chunks) == data
        assert all(type(c) is bytes for c in chunks)
        await stream.aclose()


async def test_reads_on_the_event_loop_and_writes_interleave_with_fills() -> None:
    with pair() as (stream, peer):
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        assert peer.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        peer.sendall(b"head")
        assert await stream.read(100, timeout=5) == b"head"
        peer.sendall(b"0123456789")
        assert await stream.fill(10, timeout=5) == b"0123456789"
        large = payload_bytes(4 * 1024 * 1024, seed=2)
        receiver = threading.Thread(target=lambda: peer.recv(len(large), socket.MSG_WAITALL))
        receiver.start()
        await stream.write(large, timeout=10)  # far more than the socket buffers hold
        receiver.join()
        await stream.aclose()


async def test_a_stalled_fill_returns_what_arrived_then_times_out() -> None:
    with pair() as (stream, peer):
        peer.sendall(b"partial")
        started = time.monotonic()
        assert await stream.fill(1000, timeout=0.3) == b"partial"
        assert time.monotonic() - started >= 0.25
        with pytest.raises(httpcore.ReadTimeout, match=r"no data for 0\.3 s"):
            await stream.fill(1000, timeout=0.3)
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1000, timeout=0.1)
        await stream.aclose()


async def test_a_cancelled_fill_leaves_the_stream_unusable_and_closing_stops_the_thread() -> None:
    with pair() as (stream, peer):
        with anyio.move_on_after(0.2) as scope:
            await stream.fill(1000)  # the peer says nothing and there is no read timeout
        assert scope.cancelled_caught
        assert not stream._left.is_set()  # the worker thread still waits on the socket
        with pytest.raises(httpcore.ReadError, match="abandoned"):
            await stream.read(10)
        with pytest.raises(httpcore.WriteError, match="abandoned"):
            await stream.write(b"x")
        started = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - started < CLOSE_WAIT / 2  # woken, not waited out
        assert stream._left.is_set()  # the thread left before the descriptor was closed
        assert stream.get_extra_info("socket").fileno() == -1  # type: ignore[union-attr]
        assert peer.recv(10) == b""


async def test_closing_wakes_a_fill_in_another_task() -> None:
    with pair() as (stream, _):
        outcome: list[object] = []

        async def reading() -> None:
            try:
                outcome.append(await stream.fill(1000))
            except httpcore.ReadError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reading)
            await anyio.sleep(0.1)
            await stream.aclose()
        # Woken by the shutdown: the end of the stream (or the error closing raises).
        assert outcome in ([b""],) or isinstance(outcome[0], httpcore.ReadError)
        with pytest.raises(httpcore.ReadError, match="closed"):
            await stream.fill(10)


async def test_is_readable_tells_an_idle_connection_the_peer_closed() -> None:
    with pair() as (stream, peer):
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("ssl_object") is None
        peer.close()
        assert stream.get_extra_info("is_readable") is True
        assert await stream.read(10, timeout=1) == b""
        await stream.aclose()


async def test_connect_reaches_a_listener_and_reports_a_refusal_clearly() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        stream = await connect_tcp("127.0.0.1", port, timeout=5)
        sock = stream.get_extra_info("socket")
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        await stream.aclose()
    with pytest.raises(httpcore.ConnectError, match=r"[Cc]onnection refused"):
        await connect_tcp("127.0.0.1", free_port(), timeout=5)
    with pytest.raises(httpcore.ConnectError):
        await connect_tcp("no-such-host.invalid", 80, timeout=5)


async def test_reads_and_writes_that_never_wait_still_let_other_tasks_run() -> None:
    with pair() as (stream, peer):
        peer.sendall(b"x" * 100_000)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.lowlevel.checkpoint()
            before = ticks
            for _ in range(50):
                assert await stream.read(1000, timeout=5)  # the data is already there
                await stream.write(b"y" * 100, timeout=5)  # the buffer has room
            assert ticks - before >= 50
            tg.cancel_scope.cancel()
        await stream.aclose()
