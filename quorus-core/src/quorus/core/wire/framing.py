"""Length-prefixed msgpack frames, without I/O.

A frame is a 4-byte big-endian length followed by that many bytes holding exactly one msgpack
value. :class:`FrameDecoder` takes bytes as they arrive, however they are split, and returns
whole messages. A length above the limit is refused as soon as the 4 bytes are seen, before
anything is buffered, so a hostile or broken peer cannot make a node allocate more than the
limit. After any error the decoder refuses further input: the connection must be closed,
since where the next frame starts is no longer known.

Both directions are on every message's path (a large fleet's leader handles tens of thousands
of frames a second), so the common cases are short: whole frames arriving in one read are
decoded straight from the received bytes, without going through the buffer, and
:func:`encode_frames` packs several messages into one write.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable
from typing import Any

import msgpack
from quorus.core.errors import QuorusError

HEADER = struct.Struct(">I")
#: Default limit on one frame's body. Raft snapshots travel in chunks well below it.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024


class WireError(QuorusError):
    """A peer sent something that is not a valid Quorus frame or handshake."""


class FrameTooLargeError(WireError):
    """A frame is larger than the connection's limit."""


class MalformedFrameError(WireError):
    """A frame's body is not exactly one valid msgpack value."""


_packers = threading.local()


def _packer() -> msgpack.Packer:
    # A packer per thread, reused: building one per message costs more than packing a
    # small message.
    packer: msgpack.Packer | None = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer


def encode_frame(message: Any, *, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The frame carrying ``message`` (msgpack types: None, bool, int, float, str, bytes,
    lists and maps of them)."""
    packer = _packer()
    try:
        body: bytes = packer.pack(message)
    except (TypeError, ValueError, OverflowError) as exc:
        packer.reset()
        raise MalformedFrameError(f"cannot encode {type(message).__name__} as msgpack: {exc}") from None
    if len(body) > max_size:
        raise FrameTooLargeError(
            f"message of {len(body)} bytes exceeds the frame limit of {max_size} bytes"
        )
    return HEADER.pack(len(body)) + body


def encode_frames(messages: Iterable[Any], *, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The frames carrying ``messages``, in order, as one string of bytes (one write)."""
    return b"".join([encode_frame(message, max_size=max_size) for message in messages])


def decode_body(body: bytes) -> Any:
    """The one msgpack value in ``body``; :class:`MalformedFrameError` otherwise."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except msgpack.ExtraData:
        raise MalformedFrameError("frame holds more than one msgpack value") from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise MalformedFrameError(f"frame is not valid msgpack: {exc}") from None


class FrameDecoder:
    """Turns a byte stream into messages. Sans-IO: feed it bytes, collect messages."""

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self._buffer = bytearray()
        self._expected: int | None = None  # body length of the frame being read
        self._failed: WireError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """Add received bytes; return the messages they complete, in order."""
        if self._failed is not None:
            raise self._failed
        messages: list[Any] = []
        if not self._buffer and self._expected is None:
            # Nothing partial is held: decode the whole frames in ``data`` where they lie and
            # buffer only what is left of the last one.
            data = self._whole_frames(data, messages)
            if not data:
                return messages
        self._buffer += data
        try:
            while True:
                if self._expected is None:
                    if len(self._buffer) < HEADER.size:
                        break
                    (length,) = HEADER.unpack_from(self._buffer)
                    if length > self.max_size:
                        raise FrameTooLargeError(
                            f"peer announced a frame of {length} bytes; the limit is "
                            f"{self.max_size} bytes"
                        )
                    del self._buffer[: HEADER.size]
                    self._expected = length
                if len(self._buffer) < self._expected:
                    break
                body = bytes(self._buffer[: self._expected])
                del self._buffer[: self._expected]
                self._expected = None
                messages.append(decode_body(body))
        except WireError as exc:
            self._failed = exc
            self._buffer.clear()
            raise
        return messages

    def _whole_frames(self, data: bytes, messages: list[Any]) -> bytes:
        """Decode the whole frames at the start of ``data`` into ``messages``; return the rest."""
        size = len(data)
        at = 0
        try:
            while size - at >= HEADER.size:
                (length,) = HEADER.unpack_from(data, at)
                if length > self.max_size:
                    raise FrameTooLargeError(
                        f"peer announced a frame of {length} bytes; the limit is "
                        f"{self.max_size} bytes"
                    )
                end = at + HEADER.size + length
                if end > size:
                    break
                messages.append(decode_body(data[at + HEADER.size:end]))
                at = end
        except WireError as exc:
            self._failed = exc
            raise
        return data[at:] if at else data

    def at_frame_boundary(self) -> bool:
        """True when no partial frame is buffered (a clean place for the stream to end)."""
        return self._expected is None and not self._buffer


__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HEADER",
    "FrameDecoder",
    "FrameTooLargeError",
    "MalformedFrameError",
    "WireError",
    "decode_body",
    "encode_frame",
    "encode_frames",
]
