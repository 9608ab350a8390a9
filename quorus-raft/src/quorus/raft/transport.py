"""Raft peer connections: msgpack frames over TCP (optionally TLS), one connection per peer.

Every node listens on its own address and keeps one outgoing connection to each peer, on
which it sends; what a peer sends back arrives on the connection that peer opened. So each
pair of nodes shares two connections, one per direction, and neither side ever waits on a
reply in line: Raft is asynchronous messages, not calls.

A connection opens with a :class:`~quorus.core.wire.Hello` naming ``quorus-raft``, the
versions spoken, the node id and the cluster token; the accepting side answers with its own
hello or closes the connection with a reason. A node that is not a member of the configuration
is refused at the hello. After that each frame is one message (or a list of messages, when a
sender flushes a batch); frames over the size limit, malformed frames and unknown message
types close the connection, which the sender then re-opens with backoff.

Outgoing messages wait in a bounded queue per peer; when it is full (the peer is down or slow)
new messages are dropped and counted, as Raft tolerates message loss and retransmits.

With TLS the handshake comes first, before the hello: a server context that requires client
certificates (:meth:`~quorus.raft.settings.RaftSettings.server_tls` with ``tls_ca``) refuses a
peer with no certificate, one from another CA or an expired one, logging why; the peer's
sender logs the alert it got and retries with backoff.
"""

from __future__ import annotations

import hmac
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from quorus.core import tls
from quorus.core.netaddr import split_host_port
from quorus.core.wire import (
    DEFAULT_MAX_FRAME_SIZE,
    ConnectionClosedError,
    FramedStream,
    Hello,
    WireError,
    encode_frame,
    negotiate_version,
)

log = logging.getLogger(__name__)

PROTOCOL = "quorus-raft"
VERSIONS = (1,)
#: Messages waiting for one peer before new ones are dropped.
QUEUE_LIMIT = 4096


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) to a pair; :class:`ValueError` naming the input."""
    try:
        return split_host_port(address, allow_port_zero=True)
    except ValueError:
        raise ValueError(f"invalid peer address {address!r}: expected host:port") from None


@dataclass
class TransportStats:
    """Counters for metrics and tests."""

    sent: int = 0
    received: int = 0
    dropped: int = 0
    connects: int = 0
    refused: int = 0
    bad_frames: int = 0
    flushes: int = 0
    tls_refused: int = 0


@dataclass
class _Peer:
    node_id: str
    address: str
    send: MemoryObjectSendStream[Any]
    receive: MemoryObjectReceiveStream[Any]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class PeerTransport:
    """Sends messages to peers and hands received ones to ``deliver(from_id, message)``.

    - ``encode``/``decode`` turn messages into msgpack-able objects and back; ``decode``
      raises :class:`ValueError` (or a subclass) for anything it does not understand.
    - ``is_member(node_id)`` says whether a connecting node may talk to this one.
    - ``token``: the cluster's shared secret, compared in constant time.
    - ``server_tls``/``client_tls``: optional TLS contexts for accepting and connecting.
    """

    def __init__(
        self,
        node_id: str,
        listen_address: str,
        *,
        deliver: Callable[[str, Any], None],
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        is_member: Callable[[str], bool],
        token: str,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        server_tls: ssl.SSLContext | None = None,
        client_tls: ssl.SSLContext | None = None,
        max_backoff: float = 1.0,
    ) -> None:
        self.node_id = node_id
        self.listen_address = listen_address
        self._deliver = deliver
        self._encode = encode
        self._decode = decode
        self._is_member = is_member
        self._token = token
        self.max_frame_size = max_frame_size
        self._server_tls = server_tls
        self._client_tls = client_tls
        self._max_backoff = max_backoff
        self._peers: dict[str, _Peer] = {}
        self._task_group: TaskGroup | None = None
        self.stats = TransportStats()
        #: The port actually bound (useful when listening on port 0).
        self.port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and keep peer connections until cancelled."""
        host, port = split_address(self.listen_address)
        listener: Any = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
        self.port = int(listener.extra(SocketAttribute.local_port))
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                for peer in self._peers.values():
                    tg.start_soon(self._sender, peer)
                tg.start_soon(listener.serve, self._serve_inbound)
                task_status.started()
        finally:
            self._task_group = None
            for peer in self._peers.values():
                peer.send.close()
                peer.receive.close()
            self._peers.clear()
            with anyio.CancelScope(shield=True):
                await listener.aclose()

    def set_peers(self, peers: dict[str, str]) -> None:
        """Connect to exactly these peers (node id → ``host:port``); others are dropped."""
        for node_id in list(self._peers):
            if node_id not in peers or peers[node_id] != self._peers[node_id].address:
                peer = self._peers.pop(node_id)
                peer.scope.cancel()
                peer.send.close()
                peer.receive.close()
        for node_id, address in peers.items():
            if node_id == self.node_id or node_id in self._peers:
                continue
            split_address(address)
            send, receive = anyio.create_memory_object_stream[Any](QUEUE_LIMIT)
            peer = _Peer(node_id, address, send, receive)
            self._peers[node_id] = peer
            if self._task_group is not None:
                self._task_group.start_soon(self._sender, peer)

    def send(self, to: str, message: Any) -> None:
        """Queue ``message`` for ``to``; dropped (and counted) if its queue is full."""
        peer = self._peers.get(to)
        if peer is None:
            self.stats.dropped += 1
            return
        try:
            peer.send.send_nowait(message)
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self.stats.dropped += 1

    # -- outgoing ------------------------------------------------------------------------------

    def _hello(self) -> Hello:
        return Hello(PROTOCOL, VERSIONS, self.node_id, "token", {"token": self._token})

    async def _connect(self, peer: _Peer) -> FramedStream:
        host, port = split_address(peer.address)
        stream: ByteStream = await anyio.connect_tcp(host, port)
        if self._client_tls is not None:
            stream = await tls.connect(stream, self._client_tls, host, peer=peer.node_id)
        framed = FramedStream(stream, max_frame_size=self.max_frame_size, peer=peer.node_id)
        try:
            await framed.send(self._hello().to_wire())
            with anyio.fail_after(5):
                reply = await framed.receive()
            if isinstance(reply, dict) and reply.get("type") == "refused":
                raise WireError(f"{peer.node_id} refused the connection: {reply.get('reason')}")
            hello = Hello.from_wire(reply)
            negotiate_version(PROTOCOL, VERSIONS, hello)
            if hello.node_id != peer.node_id:
                raise WireError(f"{peer.address} is {hello.node_id!r}, expected {peer.node_id!r}")
        except BaseException:
            await framed.aclose()
            raise
        return framed

    async def _sender(self, peer: _Peer) -> None:
        delay = 0.05
        warned: str | None = None
        with peer.scope:
            while True:
                try:
                    framed = await self._connect(peer)
                except (OSError, WireError, TimeoutError, ssl.SSLError,
                        tls.TlsHandshakeError) as exc:
                    if isinstance(exc, tls.TlsHandshakeError) and str(exc) != warned:
                        # Worth an operator's eye (once): a certificate problem does not heal
                        # by itself.
                        warned = str(exc)
                        log.warning("raft: cannot connect to %s at %s: %s", peer.node_id,
                                    peer.address, exc)
                    log.debug("raft: cannot reach %s at %s: %s", peer.node_id, peer.address, exc)
                    # A peer down for a while would otherwise get a backlog of stale messages
                    # while fresh ones are dropped: past half the queue, start afresh.
                    if peer.receive.statistics().current_buffer_used > QUEUE_LIMIT // 2:
                        self._drain(peer)
                    await anyio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self._max_backoff)
                    continue
                delay, warned = 0.05, None
                self.stats.connects += 1
                try:
                    await self._pump(peer, framed)
                except (OSError, WireError, anyio.BrokenResourceError, ssl.SSLError) as exc:
                    log.debug("raft: connection to %s lost: %s", peer.node_id, exc)
                except anyio.EndOfStream:
                    return
                finally:
                    with anyio.CancelScope(shield=True):
                        await framed.aclose()

    def _drain(self, peer: _Peer) -> None:
        while True:
            try:
                peer.receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            self.stats.dropped += 1

    async def _pump(self, peer: _Peer, framed: FramedStream) -> None:
        """Send queued messages; everything waiting is written with one system call."""
        encode, limit = self._encode, self.max_frame_size
        while True:
            first = await peer.receive.receive()
            frames = [encode_frame(encode(first), max_size=limit)]
            while len(frames) < 256:
                try:
                    message = peer.receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                frames.append(encode_frame(encode(message), max_size=limit))
            await framed.stream.send(b"".join(frames))
            self.stats.sent += len(frames)
            self.stats.flushes += 1

    # -- incoming -------------------------------------------------------------------------------

    async def _serve_inbound(self, stream: ByteStream) -> None:
        if self._server_tls is not None:
            address = stream.extra(SocketAttribute.remote_address, None)
            source = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            try:
                stream = await tls.accept(stream, self._server_tls, peer="the peer")
            except tls.TlsHandshakeError as exc:
                self.stats.tls_refused += 1
                log.warning("raft: refused a connection from %s: %s", source, exc)
                return
        framed = FramedStream(stream, max_frame_size=self.max_frame_size)
        peer_id = "?"
        try:
            async with framed.stream:
                with anyio.fail_after(5):
                    hello = Hello.from_wire(await framed.receive())
                peer_id = hello.node_id
                reason = self._refusal(hello)
                if reason is not None:
                    self.stats.refused += 1
                    log.warning("raft: refused a connection from %r: %s", peer_id, reason)
                    await framed.send({"type": "refused", "reason": reason})
                    return
                await framed.send(
                    Hello(PROTOCOL, VERSIONS, self.node_id).to_wire()
                )
                while True:
                    raw = await framed.receive()
                    try:
                        message = self._decode(raw)
                    except (ValueError, TypeError, KeyError) as exc:
                        self.stats.bad_frames += 1
                        log.warning("raft: bad message from %s, closing: %s", peer_id, exc)
                        return
                    self.stats.received += 1
                    self._deliver(peer_id, message)
        except ConnectionClosedError:
            pass
        except (WireError, TimeoutError, OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            self.stats.bad_frames += 1
            log.warning("raft: connection from %s closed: %s", peer_id, exc)

    def _refusal(self, hello: Hello) -> str | None:
        try:
            negotiate_version(PROTOCOL, VERSIONS, hello)
        except WireError as exc:
            return str(exc)
        token = hello.credentials.get("token", "")
        if hello.auth_method != "token" or not hmac.compare_digest(token.encode(), self._token.encode()):
            return "wrong cluster token"
        if not self._is_member(hello.node_id):
            return f"{hello.node_id!r} is not a member of this cluster"
        return None


__all__ = ["PROTOCOL", "VERSIONS", "PeerTransport", "TransportStats", "split_address"]

