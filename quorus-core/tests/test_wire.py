"""Wire framing: messages survive any split of the byte stream; bad frames are refused
early and clearly; the hello negotiates versions without leaking credentials."""

from __future__ import annotations

import contextlib
import itertools
import math
import struct
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from hypothesis import given
from hypothesis import strategies as st
from quorus.core.wire import (
    ConnectionClosedError,
    FrameDecoder,
    FramedStream,
    FrameTooLargeError,
    Hello,
    MalformedFrameError,
    ProtocolVersionError,
    WireError,
    encode_frame,
    negotiate_version,
)

messages = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False) | st.text(max_size=50) | st.binary(max_size=50),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@given(batch=st.lists(messages, max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_messages_survive_any_split(batch: list[Any], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m) for m in batch)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    received: list[Any] = []
    for start, end in itertools.pairwise(points):
        received.extend(decoder.feed(stream[start:end]))
    # msgpack turns tuples into lists; the strategies make only lists, so equality holds.
    assert received == batch
    assert decoder.at_frame_boundary()


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    decoder = FrameDecoder(max_size=1024)
    with pytest.raises(FrameTooLargeError, match="frame of 1048576 bytes; the limit is 1024"):
        decoder.feed(struct.pack(">I", 1024 * 1024))
    assert decoder.buffered == 0
    with pytest.raises(FrameTooLargeError):  # the decoder stays failed
        decoder.feed(encode_frame("fine"))


def test_encoding_refuses_oversized_and_unencodable_messages() -> None:
    with pytest.raises(FrameTooLargeError, match="exceeds the frame limit of 10 bytes"):
        encode_frame("x" * 100, max_size=10)
    with pytest.raises(MalformedFrameError, match="cannot encode object"):
        encode_frame(object())


@pytest.mark.parametrize(
    ("body", "fragment"),
    [(b"\xc1", "not valid msgpack"), (b"\x01\x02", "more than one msgpack value"),
     (b"\x92\x01", "not valid msgpack")],
)
def test_malformed_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(MalformedFrameError, match=fragment):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


@given(garbage=st.binary(min_size=1, max_size=200))
def test_garbage_never_crashes_the_decoder(garbage: bytes) -> None:
    decoder = FrameDecoder(max_size=64)
    with contextlib.suppress(WireError):  # refusing is fine; any other exception is a bug
        decoder.feed(garbage)


def test_hello_round_trip_hides_credentials() -> None:
    hello = Hello("quorus-agent", (1, 2), "agent-7", "token", {"token": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(hello)
    wire = hello.to_wire()
    assert Hello.from_wire(wire) == hello
    assert negotiate_version("quorus-agent", [2, 3], hello) == 2


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ("hi", "expected a hello"),
        ({"type": "hello", "protocol": "", "versions": [1], "node_id": "n"}, "'protocol'"),
        ({"type": "hello", "protocol": "p", "versions": [], "node_id": "n"}, "'versions'"),
        ({"type": "hello", "protocol": "p", "versions": [True], "node_id": "n"}, "'versions'"),
        ({"type": "hello", "protocol": "p", "versions": [1], "node_id": 5}, "'node_id'"),
        ({"type": "hello", "protocol": "p", "versions": [1], "node_id": "n", "auth": {"x": 1}},
         "'auth'"),
    ],
)
def test_bad_hellos_are_named(message: Any, fragment: str) -> None:
    with pytest.raises(WireError, match=fragment):
        Hello.from_wire(message)


def test_version_negotiation_failures() -> None:
    old = Hello("quorus-agent", (1,), "agent-1")
    with pytest.raises(ProtocolVersionError, match=r"versions \[1\], this side \[2, 3\]"):
        negotiate_version("quorus-agent", [2, 3], old)
    with pytest.raises(ProtocolVersionError, match="speaks 'quorus-raft'"):
        negotiate_version("quorus-agent", [1], Hello("quorus-raft", (1,), "c1"))


def _pipe() -> tuple[ByteStream, ByteStream]:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](math.inf)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](math.inf)
    return _Bytes(a_send, a_receive), _Bytes(b_send, b_receive)


class _Bytes(ByteStream):
    """An in-memory socket: a byte stream over a pair of memory object streams, delivering
    every write in 7-byte pieces so frames must be reassembled across receives."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send, self._receive = send, receive

    async def send(self, item: bytes) -> None:
        for start in range(0, len(item), 7):
            await self._send.send(item[start : start + 7])

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._receive.receive()

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


@pytest.mark.anyio
async def test_framed_stream_end_to_end() -> None:
    left, right = _pipe()
    a, b = FramedStream(left), FramedStream(right)
    await a.send({"type": "hello", "n": 1})
    await a.send([1, 2, b"\x00" * 100])
    assert await b.receive() == {"type": "hello", "n": 1}
    assert await b.receive() == [1, 2, b"\x00" * 100]
    await left.send(encode_frame("half")[:5])
    await left.send_eof()
    with pytest.raises(ConnectionClosedError, match="mid-frame"):
        await b.receive()
    await a.aclose()
    await b.aclose()
