"""Frames over an anyio byte stream (TCP, TLS, or an in-memory pair in tests)."""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import anyio
from anyio.abc import ByteStream
from quorus.core.tls import explain
from quorus.core.wire.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    WireError,
    encode_frame,
    encode_frames,
)

_RECEIVE_SIZE = 256 * 1024


class ConnectionClosedError(WireError):
    """The peer closed the connection (mid-frame, or while a message was awaited)."""


class _Flush:
    """Frames queued behind a write in progress, and how writing them ended."""

    __slots__ = ("done", "error", "frames")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.done = anyio.Event()
        self.error: BaseException | None = None


class FramedStream:
    """Sends and receives whole messages over ``stream``.

    ``receive`` raises :class:`ConnectionClosedError` when the peer closes the connection,
    :class:`~quorus.core.wire.framing.FrameTooLargeError` or
    :class:`~quorus.core.wire.framing.MalformedFrameError` when it sends something invalid.
    A TLS session the peer ends with an alert (e.g. it refused this side's certificate) is a
    :class:`ConnectionClosedError` saying why, naming the peer as ``peer``.

    Frames from concurrent tasks never interleave, and no lock is taken for it: a send while
    none is in progress writes at once; a send during another's write queues its frames, and
    the writing task writes everything queued in one more write before it returns (so frames
    from many tasks coalesce into few writes). Each sender returns once its frames are
    written and gets the error if writing them failed. :meth:`send_many` writes several
    messages at once.
    """

    def __init__(self, stream: ByteStream, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 peer: str = "the peer") -> None:
        self.stream = stream
        self.max_frame_size = max_frame_size
        self.peer = peer
        self._decoder = FrameDecoder(max_frame_size)
        self._ready: deque[Any] = deque()
        self._writing = False
        self._queued: _Flush | None = None
        #: Writes made to the stream (for tests and measurements of coalescing).
        self.writes = 0

    async def send(self, message: Any) -> None:
        await self._write(encode_frame(message, max_size=self.max_frame_size))

    async def send_many(self, messages: Iterable[Any]) -> None:
        """Send ``messages`` in order, in one write (nothing for none)."""
        data = encode_frames(messages, max_size=self.max_frame_size)
        if data:
            await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self._writing:
            flush = self._queued
            if flush is None:
                flush = self._queued = _Flush()
            flush.frames.append(data)
            await flush.done.wait()
            if flush.error is not None:
                raise flush.error
            return
        self._writing = True
        flush = None
        try:
            self.writes += 1
            await self.stream.send(data)
            while self._queued is not None:
                flush, self._queued = self._queued, None
                self.writes += 1
                try:
                    await self.stream.send(b"".join(flush.frames))
                except Exception as exc:
                    # Ours are written: the error is theirs (and the stream's next user's).
                    self._fail(flush, exc)
                    return
                flush.done.set()
                flush = None
        except BaseException as exc:
            # Whoever waits for frames not written gets the error (a cancelled write: the
            # connection is left in an unknown state and is broken for them).
            self._fail(flush, exc if isinstance(exc, Exception)
                       else anyio.BrokenResourceError("the write was cancelled"))
            raise
        finally:
            self._writing = False

    def _fail(self, flush: _Flush | None, error: BaseException) -> None:
        for failed in (flush, self._queued):
            if failed is not None:
                failed.error = error
                failed.done.set()
        self._queued = None

    async def receive(self) -> Any:
        while not self._ready:
            try:
                data = await self.stream.receive(_RECEIVE_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                where = "between frames" if self._decoder.at_frame_boundary() else "mid-frame"
                raise ConnectionClosedError(f"connection closed by the peer {where}") from None
            except ssl.SSLError as exc:
                raise ConnectionClosedError(
                    f"TLS session ended: {explain(exc, peer=self.peer)}"
                ) from None
            self._ready.extend(self._decoder.feed(data))
        return self._ready.popleft()

    def receive_ready(self) -> list[Any]:
        """The messages already received and decoded, taken without waiting (often none)."""
        if not self._ready:
            return []
        ready = list(self._ready)
        self._ready.clear()
        return ready

    async def aclose(self) -> None:
        await self.stream.aclose()


__all__ = ["ConnectionClosedError", "FramedStream"]
