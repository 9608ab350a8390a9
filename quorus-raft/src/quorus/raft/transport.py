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

Sending costs no task switch: :meth:`PeerTransport.send` encodes the frame and, on a plain TCP
connection with nothing waiting before it, writes it to the (non-blocking) socket at once, from
the caller; :meth:`PeerTransport.send_all` writes a batch with one system call per peer. Only
what the socket does not take (or what is sent while the peer is unreachable, or over TLS) waits
in the peer's bounded queue for its sender task; when the queue is full (the peer is down or
slow) new messages are dropped and counted, as Raft tolerates message loss and retransmits.
A message whose frame exceeds the size limit is dropped, counted and logged.

With TLS the handshake comes first, before the hello: a server context that requires client
certificates (:meth:`~quorus.raft.settings.RaftSettings.server_tls` with ``tls_ca``) refuses a
peer with no certificate, one from another CA or an expired one, logging why; the peer's
sender logs the alert it got and retries with backoff.
"""

from __future__ import annotations

import errno
import hmac
import logging
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup
from quorus.core import tls
from quorus.core.netaddr import split_host_port
from quorus.core.wire import (
    DEFAULT_MAX_FRAME_SIZE,
    ConnectionClosedError,
    FrameDecoder,
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
#: Bytes handed to one ``send`` system call when a sender task flushes a backlog.
_FLUSH_BYTES = 1 << 20
#: Seconds a peer may take to answer the hello.
_HELLO_TIMEOUT = 5.0
#: Bytes asked of an incoming connection per read.
_RECEIVE_BYTES = 256 * 1024


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


class _Peer:
    """One outgoing connection: its queue of encoded frames and, once connected over plain
    TCP, the raw non-blocking socket that :meth:`PeerTransport.send` writes to directly."""

    __slots__ = ("address", "broken", "node_id", "offset", "pending", "scope", "sock", "wake")

    def __init__(self, node_id: str, address: str) -> None:
        self.node_id = node_id
        self.address = address
        #: Frames not yet (wholly) written, oldest first.
        self.pending: deque[bytes] = deque()
        #: Bytes of ``pending[0]`` already written on the current connection.
        self.offset = 0
        #: The connected socket (plain TCP, hello done); None while connecting or over TLS.
        self.sock: socket.socket | None = None
        #: The connection failed under a direct write: the sender reconnects.
        self.broken = False
        self.wake = anyio.Event()
        self.scope = anyio.CancelScope()

    def queue(self, frame: bytes) -> None:
        if not self.pending:
            self.wake.set()
        self.pending.append(frame)

    def written(self, count: int) -> int:
        """Drop ``count`` written bytes from the front; the number of whole frames they ended."""
        done = 0
        count += self.offset
        pending = self.pending
        while pending and count >= len(pending[0]):
            count -= len(pending.popleft())
            done += 1
        self.offset = count
        return done

    def chunk(self) -> bytes:
        """The next bytes to write: whole frames up to about ``_FLUSH_BYTES``, from the offset."""
        pending = self.pending
        if len(pending) == 1 or len(pending[0]) - self.offset >= _FLUSH_BYTES:
            return pending[0][self.offset :] if self.offset else pending[0]
        parts, size = [], 0
        for frame in pending:
            parts.append(frame)
            size += len(frame)
            if size >= _FLUSH_BYTES:
                break
        return b"".join(parts)[self.offset :]

    def restart(self) -> None:
        """A new connection: a frame cut short on the old one is dropped (the peer discarded
        its start with that connection)."""
        if self.offset:
            self.pending.popleft()
            self.offset = 0


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
        self._delivered: Callable[[], None] | None = None
        self.stats = TransportStats()
        #: The port actually bound (useful when listening on port 0).
        self.port: int | None = None

    def on_batch_delivered(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback()`` after each batch of messages received together has been handed
        to ``deliver`` (one call per read from a connection, not per message)."""
        self._delivered = callback

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
            self._peers.clear()
            with anyio.CancelScope(shield=True):
                await listener.aclose()

    def set_peers(self, peers: dict[str, str]) -> None:
        """Connect to exactly these peers (node id → ``host:port``); others are dropped."""
        for node_id in list(self._peers):
            if node_id not in peers or peers[node_id] != self._peers[node_id].address:
                peer = self._peers.pop(node_id)
                peer.scope.cancel()
        for node_id, address in peers.items():
            if node_id == self.node_id or node_id in self._peers:
                continue
            split_address(address)
            peer = _Peer(node_id, address)
            self._peers[node_id] = peer
            if self._task_group is not None:
                self._task_group.start_soon(self._sender, peer)

    def send(self, to: str, message: Any) -> None:
        """Send ``message`` to ``to``: written at once when the connection is idle, else queued;
        dropped (and counted) if the peer is unknown or its queue is full."""
        peer = self._peers.get(to)
        if peer is None:
            self.stats.dropped += 1
            return
        frame = self._frame(message)
        if frame is not None:
            self._push(peer, frame, 1)

    def send_all(self, messages: Iterable[Any]) -> None:
        """Send each message to its ``dst``, with one write per peer for the whole batch."""
        batches: dict[str, list[bytes]] = {}
        for message in messages:
            frame = self._frame(message)
            if frame is not None:
                batches.setdefault(message.dst, []).append(frame)
        for to, frames in batches.items():
            peer = self._peers.get(to)
            if peer is None:
                self.stats.dropped += len(frames)
            elif len(frames) == 1:
                self._push(peer, frames[0], 1)
            else:
                self._push(peer, b"".join(frames), len(frames))

    def _frame(self, message: Any) -> bytes | None:
        try:
            return encode_frame(self._encode(message), max_size=self.max_frame_size)
        except WireError as exc:
            self.stats.dropped += 1
            log.error("raft: a message of type %s cannot be sent: %s", type(message).__name__, exc)
            return None

    def _push(self, peer: _Peer, data: bytes, count: int) -> None:
        """Write ``data`` (``count`` messages) now if the connection is idle; queue the rest."""
        sock = peer.sock
        if sock is not None and not peer.pending:
            try:
                written = sock.send(data)
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError as exc:
                # The connection is gone: the sender task reconnects; this data waits for it.
                log.debug("raft: connection to %s lost: %s", peer.node_id, exc)
                peer.sock, peer.broken, written = None, True, 0
                peer.wake.set()
            else:
                self.stats.flushes += 1
            if written == len(data):
                self.stats.sent += count
                return
            if written:
                peer.offset = written
        elif len(peer.pending) >= QUEUE_LIMIT:
            self.stats.dropped += count
            return
        # Counted as sent when written; a batch queued as one frame stays together.
        peer.queue(data)
        if count > 1:
            self.stats.sent += count - 1

    # -- outgoing ------------------------------------------------------------------------------

    def _hello(self) -> Hello:
        return Hello(PROTOCOL, VERSIONS, self.node_id, "token", {"token": self._token})

    async def _connect(self, peer: _Peer) -> FramedStream | socket.socket:
        """A connection to ``peer`` whose hello was answered: over TLS a framed stream; over
        plain TCP the raw non-blocking socket, which :meth:`send` writes to directly."""
        host, port = split_address(peer.address)
        if self._client_tls is None:
            return await self._connect_raw(peer, host, port)
        stream: ByteStream = await anyio.connect_tcp(host, port)
        stream = await tls.connect(stream, self._client_tls, host, peer=peer.node_id)
        framed = FramedStream(stream, max_frame_size=self.max_frame_size, peer=peer.node_id)
        try:
            await framed.send(self._hello().to_wire())
            with anyio.fail_after(_HELLO_TIMEOUT):
                reply = await framed.receive()
            self._check_hello(peer, reply)
        except BaseException:
            await framed.aclose()
            raise
        return framed

    async def _connect_raw(self, peer: _Peer, host: str, port: int) -> socket.socket:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"{host!r} has no address")
        family, _, proto, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = sock.connect_ex(address)
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, f"connect to {peer.address}: {errno.errorcode.get(error, error)}")
            with anyio.fail_after(_HELLO_TIMEOUT):
                await anyio.wait_writable(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, f"connect to {peer.address}: {errno.errorcode.get(error, error)}")
                hello = memoryview(encode_frame(self._hello().to_wire(), max_size=self.max_frame_size))
                while hello:
                    await anyio.wait_writable(sock)
                    hello = hello[sock.send(hello):]
                decoder = FrameDecoder(self.max_frame_size)
                replies: list[Any] = []
                while not replies:
                    await anyio.wait_readable(sock)
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionClosedError(f"{peer.node_id} closed the connection at the hello")
                    replies = decoder.feed(data)
            self._check_hello(peer, replies[0])
        except BaseException:
            sock.close()
            raise
        return sock

    def _check_hello(self, peer: _Peer, reply: Any) -> None:
        if isinstance(reply, dict) and reply.get("type") == "refused":
            raise WireError(f"{peer.node_id} refused the connection: {reply.get('reason')}")
        hello = Hello.from_wire(reply)
        negotiate_version(PROTOCOL, VERSIONS, hello)
        if hello.node_id != peer.node_id:
            raise WireError(f"{peer.address} is {hello.node_id!r}, expected {peer.node_id!r}")

    async def _sender(self, peer: _Peer) -> None:
        delay = 0.05
        warned: str | None = None
        with peer.scope:
            while True:
                try:
                    connection = await self._connect(peer)
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
                    if len(peer.pending) > QUEUE_LIMIT // 2:
                        self.stats.dropped += len(peer.pending)
                        peer.pending.clear()
                        peer.offset = 0
                    await anyio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self._max_backoff)
                    continue
                delay, warned = 0.05, None
                self.stats.connects += 1
                peer.restart()
                peer.broken = False
                try:
                    if isinstance(connection, socket.socket):
                        await self._pump_raw(peer, connection)
                    else:
                        await self._pump(peer, connection)
                except (OSError, WireError, anyio.BrokenResourceError, ssl.SSLError) as exc:
                    log.debug("raft: connection to %s lost: %s", peer.node_id, exc)
                finally:
                    peer.sock = None
                    if isinstance(connection, socket.socket):
                        connection.close()
                    else:
                        with anyio.CancelScope(shield=True):
                            await connection.aclose()

    async def _pump_raw(self, peer: _Peer, sock: socket.socket) -> None:
        """Write what queued up while connecting, then leave the socket to :meth:`send`,
        flushing only what it could not take at once."""
        peer.sock = sock
        while not peer.broken:
            if not peer.pending:
                await peer.wake.wait()
                peer.wake = anyio.Event()
                continue
            await anyio.wait_writable(sock)
            if peer.broken:
                break
            try:
                written = sock.send(peer.chunk())
            except (BlockingIOError, InterruptedError):
                continue
            self.stats.flushes += 1
            self.stats.sent += peer.written(written)

    async def _pump(self, peer: _Peer, framed: FramedStream) -> None:
        """Over TLS: send what is queued, everything waiting with one write."""
        while True:
            if not peer.pending:
                await peer.wake.wait()
                peer.wake = anyio.Event()
                continue
            data = peer.chunk()
            await framed.stream.send(data)
            self.stats.flushes += 1
            self.stats.sent += peer.written(len(data))

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
                # The peer sends nothing more until it has this hello, so nothing is buffered
                # in ``framed``: from here on, each read's frames are delivered as one batch.
                stream, decoder = framed.stream, FrameDecoder(self.max_frame_size)
                decode, deliver = self._decode, self._deliver
                while True:
                    try:
                        data = await stream.receive(_RECEIVE_BYTES)
                    except anyio.EndOfStream:
                        return
                    for raw in decoder.feed(data):
                        try:
                            message = decode(raw)
                        except (ValueError, TypeError, KeyError) as exc:
                            self.stats.bad_frames += 1
                            log.warning("raft: bad message from %s, closing: %s", peer_id, exc)
                            return
                        self.stats.received += 1
                        deliver(peer_id, message)
                    if self._delivered is not None:
                        self._delivered()
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

