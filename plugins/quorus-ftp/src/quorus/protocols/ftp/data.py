"""FTP data connections served by blocking calls in worker threads.

A data connection carries one file one way, so it needs none of the event loop's machinery:
each :meth:`DataSocket.receive` or :meth:`DataSocket.send` is one call in a worker thread
(``anyio.to_thread``) that moves a whole block with the GIL released. That is measured to be
far cheaper than an event-loop stream (see the plugin's README):

- Plain reads ask the kernel for the whole block at once (``recv(n, MSG_WAITALL)``): it copies
  the bytes straight into the ``bytes`` object handed to the engine, with no Python-level
  buffering, slicing or joining in between, and one thread hop per block rather than one
  event-loop wake-up per 256 KiB.
- Protected (TLS) reads and writes run OpenSSL in the worker thread, so decryption and
  encryption no longer share the event loop's core with the engine's work.

Timeouts are the socket's own (``SO_RCVTIMEO``/``SO_SNDTIMEO`` for plain sockets, since
``MSG_WAITALL`` needs a blocking socket; the socket timeout for TLS). A caller that is
cancelled while a thread is blocked shuts the socket down, which wakes the thread at once;
the thread closes the socket when it returns, so a descriptor is never closed under a call.
"""

from __future__ import annotations

import fcntl
import socket
import ssl
import struct
import termios
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

T = TypeVar("T")

#: Reads of a listing (its size is not known beforehand).
_LISTING_READ = 256 * 1024


class DataSocket:
    """One data connection (plain TCP, later perhaps TLS) used from worker threads."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout
        self._tls = False
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        _set_blocking_timeouts(sock, timeout)

    @classmethod
    async def connect(
        cls, host: str, port: int, *, connect_timeout: float, idle_timeout: float
    ) -> DataSocket:
        """Connect to the server's passive port (in a worker thread: a connect is bounded by
        ``connect_timeout`` and is never abandoned half-way, so no socket leaks)."""
        sock = await anyio.to_thread.run_sync(
            socket.create_connection, (host, port), connect_timeout
        )
        try:
            return cls(sock, idle_timeout)
        except BaseException:
            sock.close()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Protect the connection (the server's certificate is verified by ``context``).

        The TLS socket takes over the descriptor before the handshake, so a cancelled
        handshake is woken and closed like any other blocked call."""
        self._sock.settimeout(self._timeout)
        self._sock = context.wrap_socket(
            self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._tls = True
        await self._call(self._handshake)

    async def receive(self, size: int) -> bytes:
        """The next ``size`` bytes; fewer only where the data ends (``b""`` at its end)."""
        if not self._tls and self._queued() >= size:
            # The whole block is already here: take it without a thread hop.
            data = self._now(self._sock.recv, size, socket.MSG_DONTWAIT)
            if len(data) == size:
                await anyio.lowlevel.checkpoint()
                return data
            if not data:
                return data
            rest = await self._call(self._receive_plain, size - len(data))
            return data + rest
        return await self._call(self._receive_tls if self._tls else self._receive_plain, size)

    async def receive_all(self) -> bytes:
        """Everything up to the end of the data (for listings, which are small)."""
        return await self._call(self._receive_all)

    async def send(self, data: bytes) -> None:
        if not self._tls:
            # What fits into the socket's buffer goes at once, without a thread hop; only
            # a rest (the buffer full: the server is slower) waits in a worker thread.
            try:
                sent = self._now(self._sock.send, data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                await anyio.lowlevel.checkpoint()
                return
            if sent:
                await self._call(self._sock.sendall, memoryview(data)[sent:])
                return
        await self._call(self._sock.sendall, data)

    async def finish_sending(self) -> None:
        """End the upload in order: TLS close_notify (where used), then FIN, then close."""
        await self._call(self._finish)
        self.close()

    def close(self) -> None:
        """Drop the connection at once (safe from any thread, any number of times). A call
        blocked in a worker thread is woken by the shutdown and closes the socket itself."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            busy = self._busy
        _shutdown(self._sock)
        if not busy:
            self._sock.close()

    def _queued(self) -> int:
        """Bytes waiting in the socket's receive queue (0 if that cannot be told)."""
        try:
            (count,) = struct.unpack("i", fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))
        except (OSError, ValueError):
            return 0
        return int(count)

    def _now(self, func: Callable[..., T], *args: object) -> T:
        """``func`` on the event loop's thread: a non-blocking call, while no thread has one."""
        with self._lock:
            if self._closed or self._busy:
                raise ConnectionAbortedError("the data connection was closed")
        return func(*args)

    # --- in the worker thread --------------------------------------------------------------

    async def _call(self, func: Callable[..., T], *args: object) -> T:
        try:
            return await anyio.to_thread.run_sync(
                self._guarded, func, *args, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            self.close()  # wakes the abandoned thread
            raise

    def _guarded(self, func: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self._closed:
                raise ConnectionAbortedError("the data connection was closed")
            self._busy = True
        try:
            return func(*args)
        except BlockingIOError:
            # SO_RCVTIMEO / SO_SNDTIMEO expired with nothing moved.
            raise TimeoutError(f"no data moved for {self._timeout:g} s") from None
        finally:
            with self._lock:
                self._busy = False
                closed = self._closed
            if closed:
                self._sock.close()

    def _handshake(self) -> None:
        assert isinstance(self._sock, ssl.SSLSocket)
        self._sock.do_handshake()

    def _receive_plain(self, size: int) -> bytes:
        data = self._sock.recv(size, socket.MSG_WAITALL)
        if len(data) == size or not data:
            return data
        # Short: the end of the data, a timeout with some bytes read, or a signal.
        pieces, got = [data], len(data)
        while got < size:
            piece = self._sock.recv(size - got, socket.MSG_WAITALL)
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def _receive_tls(self, size: int) -> bytes:
        # OpenSSL hands over at most one record (16 KiB) per call: fill one buffer.
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        receive_into = self._sock.recv_into
        while got < size:
            count = receive_into(view[got:])
            if not count:
                break
            got += count
        view.release()
        if got < size:
            del buffer[got:]
        return bytes(buffer)

    def _receive_all(self) -> bytes:
        pieces = []
        while piece := self._sock.recv(_LISTING_READ):
            pieces.append(piece)
        return b"".join(pieces)

    def _finish(self) -> None:
        if isinstance(self._sock, ssl.SSLSocket):
            try:
                self._sock = self._sock.unwrap()
            except (OSError, ValueError):
                # The server closed first, or without answering close_notify: everything
                # was sent; its reply on the control connection says whether it was stored.
                return
        self._sock.shutdown(socket.SHUT_WR)


def _set_blocking_timeouts(sock: socket.socket, timeout: float) -> None:
    """A blocking socket whose calls give up after ``timeout`` without progress (what
    ``MSG_WAITALL`` needs: a socket timeout in Python makes the descriptor non-blocking)."""
    sock.settimeout(None)
    seconds = int(timeout)
    value = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def _shutdown(sock: socket.socket) -> None:
    """``shutdown(SHUT_RDWR)`` on the descriptor itself (not through an SSL object, which a
    worker thread may be using): blocked calls on it return at once."""
    try:
        fd = sock.fileno()
    except OSError:
        return
    if fd < 0:
        return
    alias = socket.socket(fileno=fd)
    try:
        alias.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more
    finally:
        alias.detach()


__all__ = ["DataSocket"]
