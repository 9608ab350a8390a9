"""Frames over an anyio byte stream (TCP, TLS, or an in-memory pair in tests)."""

from __future__ import annotations

import ssl
from collections import deque
from typing import Any

import anyio
from anyio.abc import ByteStream
from quorus.core.tls import explain
from quorus.core.wire.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, WireError, encode_frame

_RECEIVE_SIZE = 256 * 1024


class ConnectionClosedError(WireError):
    """The peer closed the connection (mid-frame, or while a message was awaited)."""


class FramedStream:
    """Sends and receives whole messages over ``stream``.

    ``receive`` raises :class:`ConnectionClosedError` when the peer closes the connection,
    :class:`~quorus.core.wire.framing.FrameTooLargeError` or
    :class:`~quorus.core.wire.framing.MalformedFrameError` when it sends something invalid.
    A TLS session the peer ends with an alert (e.g. it refused this side's certificate) is a
    :class:`ConnectionClosedError` saying why, naming the peer as ``peer``. Sends are
    serialised so frames from concurrent tasks never interleave.
    """

    def __init__(self, stream: ByteStream, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 peer: str = "the peer") -> None:
        self.stream = stream
        self.max_frame_size = max_frame_size
        self.peer = peer
        self._decoder = FrameDecoder(max_frame_size)
        self._ready: deque[Any] = deque()
        self._send_lock = anyio.Lock()

    async def send(self, message: Any) -> None:
        frame = encode_frame(message, max_size=self.max_frame_size)
        async with self._send_lock:
            await self.stream.send(frame)

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

    async def aclose(self) -> None:
        await self.stream.aclose()


__all__ = ["ConnectionClosedError", "FramedStream"]
