"""The wire format every Quorus TCP connection speaks: length-prefixed msgpack frames.

Agents, controllers and Raft peers all use it: a connection opens with a :class:`Hello`
carrying the protocol name, version and credentials, then carries one msgpack message per
frame. :mod:`~quorus.core.wire.framing` is sans-IO (bytes in, messages out) and
:mod:`~quorus.core.wire.stream` adapts it to anyio byte streams.
"""

from quorus.core.wire.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    FrameTooLargeError,
    MalformedFrameError,
    WireError,
    encode_frame,
)
from quorus.core.wire.hello import Hello, ProtocolVersionError, negotiate_version
from quorus.core.wire.stream import ConnectionClosedError, FramedStream

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "ConnectionClosedError",
    "FrameDecoder",
    "FrameTooLargeError",
    "FramedStream",
    "Hello",
    "MalformedFrameError",
    "ProtocolVersionError",
    "WireError",
    "encode_frame",
    "negotiate_version",
]
