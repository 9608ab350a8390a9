"""The protocol's own TCP connections: non-blocking sockets, TLS from the standard library, and
large body reads in a worker thread.

httpcore's anyio backend wraps each connection in an anyio stream; on asyncio that is a
transport which receives every piece of a body on the event loop, and on a fast link that
receive became the critical path of a download (the event loop's share, ~0.8 s of CPU per GiB
on plain asyncio, could not overlap with anything). A :class:`SocketStream` keeps the socket
itself: requests, header blocks and small bodies go through the event loop (a read that finds
nothing waits for the socket to become readable), while :meth:`SocketStream.fill` reads a
large body's chunk in a worker thread with ``recv_into`` into one buffer, beside the engine's
hashing and writing threads. Both ``http`` and ``https`` connections are such streams.

A worker thread may only be using the socket while the stream is open: :meth:`aclose` wakes a
read in progress (``shutdown``) and waits for it to leave before the descriptor is closed, so
a descriptor number is never reused under a running read.
"""

# `timeout` parameters are httpcore's network-backend interface, not a choice here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator

import anyio
import anyio.lowlevel
import httpcore

#: How long closing a stream waits for a worker-thread read it woke to leave the socket.
CLOSE_WAIT = 2.0
# Socket errors that mean "try again once the socket is ready" for plain and TLS sockets.
_WANT_READ = (BlockingIOError, ssl.SSLWantReadError)
_WANT_WRITE = (ssl.SSLWantWriteError,)


@contextlib.contextmanager
def _raising(on_timeout: type[Exception], on_error: type[Exception]) -> Iterator[None]:
    """httpcore's exceptions for a timeout and for a failed socket operation (TLS errors
    included), chained to the cause."""
    try:
        yield
    except TimeoutError as exc:
        raise on_timeout(str(exc) or "timed out") from exc
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise on_error(str(exc) or type(exc).__name__) from exc


async def connect_tcp(
    host: str,
    port: int,
    timeout: float | None = None,
    local_address: str | None = None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
) -> SocketStream:
    """A connection to ``host:port``, trying each of its addresses in turn (as
    :func:`socket.create_connection` does) without blocking the event loop."""
    options = list(socket_options or ())
    with _raising(httpcore.ConnectTimeout, httpcore.ConnectError), anyio.fail_after(timeout):
        addresses = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        failure: OSError | None = None
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                if family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for option in options:
                    sock.setsockopt(*option)
                if local_address is not None:
                    sock.bind((local_address, 0))
                await _connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            return SocketStream(sock)
        raise failure or OSError(f"no address for {host}")


async def _connect(sock: socket.socket, address: tuple[object, ...]) -> None:
    try:
        sock.connect(address)
    except BlockingIOError:
        await anyio.wait_writable(sock)
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error)) from None


class SocketStream(httpcore.AsyncNetworkStream):
    """One connection (plain or TLS) as httpcore's network stream, plus :meth:`fill`."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._lock = threading.Lock()
        self._closing = False  # aclose() has begun: no new worker-thread read may start
        self._reading = False  # a worker thread is reading (under _lock)
        self._left = threading.Event()  # ... and has left the socket
        self._left.set()
        self._broken = False  # a worker-thread read was cancelled: its bytes are lost

    # -- on the event loop ---------------------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._check_intact(httpcore.ReadError)
        with _raising(httpcore.ReadTimeout, httpcore.ReadError), anyio.fail_after(timeout):
            waited = False
            while True:
                try:
                    data = self._sock.recv(max_bytes)
                except _WANT_READ:
                    await anyio.wait_readable(self._sock)
                except _WANT_WRITE:
                    await anyio.wait_writable(self._sock)
                else:
                    if not waited:  # a stream that always has data must still let others run
                        await anyio.lowlevel.checkpoint()
                    return data
                waited = True

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._check_intact(httpcore.WriteError)
        view = memoryview(buffer)
        with _raising(httpcore.WriteTimeout, httpcore.WriteError), anyio.fail_after(timeout):
            waited = False
            while view:
                try:
                    view = view[self._sock.send(view):]
                except (BlockingIOError, ssl.SSLWantWriteError):
                    await anyio.wait_writable(self._sock)
                    waited = True
                except ssl.SSLWantReadError:
                    await anyio.wait_readable(self._sock)
                    waited = True
            if not waited:  # as in read()
                await anyio.lowlevel.checkpoint()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> SocketStream:
        """This connection under TLS: the handshake runs on the event loop; the socket moves
        to the returned stream (a failed handshake closes it)."""
        self._check_intact(httpcore.ConnectError)
        try:
            tls = ssl_context.wrap_socket(
                self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            self._sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        # wrap_socket detached the plain socket: closing it now is a no-op.
        try:
            with _raising(httpcore.ConnectTimeout, httpcore.ConnectError), \
                    anyio.fail_after(timeout):
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        await anyio.wait_readable(tls)
                    except ssl.SSLWantWriteError:
                        await anyio.wait_writable(tls)
        except BaseException:
            tls.close()
            raise
        return SocketStream(tls)

    async def aclose(self) -> None:
        with self._lock:
            self._closing = True
            reading = self._reading
        if reading:
            # Wake the worker thread (its poll or recv returns at once) and wait for it to
            # leave: closing the descriptor under it could hand its number to another socket.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)  # not SSLSocket's: it
                # drops the TLS state another thread may be using
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_WAIT):
                while not self._left.is_set():  # noqa: ASYNC110 - bounded, and a thread
                    await anyio.sleep(0.001)  # event cannot be awaited without a thread
        self._sock.close()

    def get_extra_info(self, info: str) -> object:
        sock = self._sock
        if info == "ssl_object":
            return sock if isinstance(sock, ssl.SSLSocket) else None
        if info == "socket":
            return sock
        if info == "is_readable":
            return self._readable()
        with contextlib.suppress(OSError):
            if info == "client_addr":
                return sock.getsockname()
            if info == "server_addr":
                return sock.getpeername()
        return None

    def _readable(self) -> bool:
        """Whether the socket has something to read (bytes, end of stream or an error): on an
        idle connection it means the server closed it or broke the protocol."""
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        if self._sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(0))

    def _check_intact(self, error: type[Exception]) -> None:
        if self._broken:
            raise error("the connection was abandoned in the middle of a read")

    # -- in a worker thread -----------------------------------------------------------------------

    async def fill(self, size: int, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes, read in a worker thread: exactly ``size`` unless the stream
        ends first or, with some bytes already read, nothing more arrives for ``timeout``
        seconds. ``b""`` at the end of the stream.

        Failures are httpcore's: :class:`httpcore.ReadTimeout` (nothing for ``timeout``
        seconds), :class:`httpcore.ReadError`. A cancelled fill leaves the stream unusable.
        """
        self._check_intact(httpcore.ReadError)
        try:
            with _raising(httpcore.ReadTimeout, httpcore.ReadError):
                return await anyio.to_thread.run_sync(
                    self._fill, size, timeout, abandon_on_cancel=True
                )
        except anyio.get_cancelled_exc_class():
            # The thread reads on into a buffer nobody will see; aclose() stops it.
            self._broken = True
            raise

    def _fill(self, size: int, timeout: float | None) -> bytes:
        with self._lock:
            if self._closing:
                raise OSError("the connection is closed")
            self._reading = True
            self._left.clear()
        try:
            if isinstance(self._sock, ssl.SSLSocket):
                return self._receive(size, timeout)
            return self._receive_all(size, timeout)
        finally:
            with self._lock:
                self._reading = False
                self._left.set()

    def _receive_all(self, size: int, timeout: float | None) -> bytes:
        """Plain TCP: one blocking ``recv(MSG_WAITALL)``, bounded by ``SO_RCVTIMEO``, so the
        kernel copies the chunk straight into the bytes object handed on, in one system call
        (against one call per socket-buffer's worth and a copy out of a buffer: ~0.1 s of CPU
        per GiB). It returns less than ``size`` at the end of the stream, on the timeout, or
        when a signal interrupts it once some bytes arrived."""
        sock = self._sock
        seconds = 0.0 if timeout is None else max(timeout, 0.001)  # 0: no time limit
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("@ll", int(seconds), int(seconds % 1 * 1_000_000)))
        sock.setblocking(True)
        try:
            return sock.recv(size, socket.MSG_WAITALL)
        except BlockingIOError:  # the timeout passed with nothing received
            raise TimeoutError(f"no data for {timeout:g} s") from None
        finally:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 0))

    def _receive(self, size: int, timeout: float | None) -> bytes:
        """TLS: ``recv_into`` one buffer until it is full (TLS delivers a record at a time,
        and the socket stays non-blocking for the TLS layer), polling when nothing is there."""
        sock = self._sock
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        last = time.monotonic()
        while got < size:
            try:
                received = sock.recv_into(view[got:])
            except _WANT_READ:
                wait = None if timeout is None else timeout - (time.monotonic() - last)
                if wait is not None and wait <= 0:
                    if got:
                        break
                    raise TimeoutError(f"no data for {timeout:g} s") from None
                poller.poll(None if wait is None else max(1, int(wait * 1000)))
                continue
            if not received:
                break
            got += received
            last = time.monotonic()
        # One copy, so the chunk handed on is immutable bytes.
        return bytes(view[:got]) if got < size else bytes(buffer)


__all__ = ["CLOSE_WAIT", "SocketStream", "connect_tcp"]
