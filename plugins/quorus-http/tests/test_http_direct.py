"""The direct path for large bodies: read straight off the connection, past h11 and httpx.

:class:`~quorus.protocols.http.transport.LargeReadStream` stops h11 at the end of each
response header block; a large identity-coded ``Content-Length`` body is then read raw and
its connection closed, while small, chunked or otherwise unusual bodies keep the h11 path
(and connection reuse). These tests check both paths, the split of header blocks however
the bytes arrive, and the faults a direct read must turn into resumable errors.
"""

# The `timeout` parameters below are httpcore's network-stream interface.
# ruff: noqa: ASYNC109

from __future__ import annotations

import gzip
import hashlib
import socket
import time
from pathlib import Path

import h11
import httpcore
import pytest
from quorus.core import RetryPolicy, TransferEngine, TransferRequest, TransferStatus
from quorus.core.errors import TransientError
from quorus.core.protocol import ReadStream
from quorus.core.testing import payload_bytes
from quorus.core.uri import parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.reading import DIRECT_MIN_SIZE, HttpReadStream
from quorus.protocols.http.testing.nginx import NginxServer
from quorus.protocols.http.testing.scripted import (
    Handler,
    Version,
    scripted_server,
    send_file,
    wait_until,
)
from quorus.protocols.http.transport import READ_SIZE, LargeReadStream

pytestmark = pytest.mark.anyio

LARGE = DIRECT_MIN_SIZE + 3 * 1024 * 1024 + 4321  # direct path
SMALL = 256 * 1024 + 17  # h11 path
BIG = Version(payload_bytes(LARGE, seed=11), '"big"')
LITTLE = Version(payload_bytes(SMALL, seed=12), '"little"')
assert SMALL < DIRECT_MIN_SIZE < LARGE and LARGE - DIRECT_MIN_SIZE - 1000 > 2 * 1024 * 1024
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def read_all(stream: ReadStream) -> bytes:
    chunks = []
    for _ in range(10_000):  # bounded: far more chunks than any test file has
        chunk = await stream.read()
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def read_until_error(stream: ReadStream, chunks: list[bytes]) -> None:
    """Read into ``chunks`` until the stream fails (bounded; the end of the body fails too)."""
    for _ in range(10_000):
        chunk = await stream.read()
        if not chunk:
            raise AssertionError("the body ended without an error")
        chunks.append(chunk)


@pytest.fixture
def direct_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the direct reads made (through the engine too): proof of the path."""
    sizes: list[int] = []
    original = LargeReadStream.read_body

    async def counting(self: LargeReadStream, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await original(self, max_bytes, timeout)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(LargeReadStream, "read_body", counting)
    return sizes


# --- the header block split, against h11 itself -----------------------------------------


class _Scripted(httpcore.AsyncNetworkStream):
    """A network stream that returns the given pieces (one, or some of one, per read), then
    end of stream."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)
        self.written = b""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > max_bytes:
            piece, rest = piece[:max_bytes], piece[max_bytes:]
            self.pieces.insert(0, rest)
        return piece

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer


INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
HEADERS = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Blank: \r\n\r\n"
BODY = b"0123456789"


async def parse_with_h11(stream: LargeReadStream) -> h11.Response:
    """Read a response's head through ``stream`` the way httpcore does."""
    connection = h11.Connection(our_role=h11.CLIENT)
    await stream.write(connection.send(h11.Request(method="GET", target="/", headers=[
        ("Host", "x")])) or b"")
    connection.send(h11.EndOfMessage())
    for _ in range(1000):
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.read(65536))
        elif isinstance(event, h11.Response):
            assert connection.trailing_data == (b"", False)  # h11 has no body byte
            return event
    raise AssertionError("no response")


@pytest.mark.parametrize("head", [HEADERS, INTERIM + HEADERS,
                                  HEADERS.replace(b"\r\n", b"\n")])
async def test_header_block_ends_where_h11_ends_it_wherever_reads_split(head: bytes) -> None:
    raw = head + BODY
    # Every one- and two-cut split of the bytes, so each boundary falls inside every marker.
    splits = [[raw[:i], raw[i:]] for i in range(1, len(raw))]
    splits += [[raw[:i], raw[i:j], raw[j:]] for i in range(1, len(head) + 2)
               for j in range(i + 1, min(i + 4, len(raw)))]
    splits.append([bytes([b]) for b in raw])  # byte by byte
    for pieces in splits:
        stream = LargeReadStream(_Scripted(pieces))
        response = await parse_with_h11(stream)
        assert response.status_code == 200, pieces
        assert stream.claim_body(), pieces
        body = b""
        while piece := await stream.read_body(4):
            assert len(piece) <= 4
            body += piece
        assert body == BODY, pieces


async def test_body_cannot_be_claimed_once_h11_read_past_the_headers() -> None:
    stream = LargeReadStream(_Scripted([HEADERS + BODY]))
    await parse_with_h11(stream)
    assert await stream.read(65536) == BODY  # what httpcore's body path would get
    assert not stream.claim_body()
    # Nor twice, nor before the next response's header block is over.
    stream = LargeReadStream(_Scripted([HEADERS + BODY]))
    await parse_with_h11(stream)
    assert stream.claim_body()
    assert not stream.claim_body()


async def test_upgrade_ends_the_header_block() -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw bytes"
    stream = LargeReadStream(_Scripted([raw]))
    assert await stream.write(b"GET / HTTP/1.1\r\n\r\n") is None
    assert await stream.read(65536) == raw[: -len(b"raw bytes")]
    assert await stream.read(65536) == b"raw bytes"


# --- through the protocol -----------------------------------------------------------------


async def test_large_body_is_read_directly_and_its_connection_not_reused(
    direct_reads: list[int],
) -> None:
    chunk_size = 1024 * 1024
    with scripted_server(lambda handler: send_file(handler, BIG)) as server:
        location = parse_location(server.url())
        async with HttpProtocol({"chunk_size": chunk_size}) as protocol:
            for _ in range(2):
                async with await protocol.open_read(location) as stream:
                    assert isinstance(stream, HttpReadStream)
                    assert stream.direct
                    chunks = []
                    while chunk := await stream.read():
                        chunks.append(chunk)
                assert b"".join(chunks) == BIG.data
                # Chunks of about chunk_size, however the socket delivered the bytes.
                assert all(chunk_size <= len(chunk) < chunk_size + READ_SIZE
                           for chunk in chunks[:-1])
        peers = [seen.peer for seen in server.seen]
    assert sum(direct_reads) == 2 * LARGE
    # h11 never saw those bodies: each connection was closed, not returned to the pool.
    assert len(set(peers)) == 2


async def read_through_httpx(url: str, *, times: int, expected: bytes) -> None:
    """Read ``url`` ``times`` times with one protocol instance; each read must take the
    httpx path (not the direct one) and return ``expected``."""
    location = parse_location(url)
    async with HttpProtocol() as protocol:
        for _ in range(times):
            async with await protocol.open_read(location) as stream:
                assert isinstance(stream, HttpReadStream)
                assert not stream.direct
                assert await read_all(stream) == expected


async def test_small_bodies_go_through_httpx_and_reuse_the_connection(
    direct_reads: list[int],
) -> None:
    with scripted_server(lambda handler: send_file(handler, LITTLE)) as server:
        await read_through_httpx(server.url(), times=3, expected=LITTLE.data)
        peers = {seen.peer for seen in server.seen}
    assert direct_reads == []
    assert len(peers) == 1


async def test_small_read_after_a_direct_one_uses_a_fresh_connection() -> None:
    def respond(handler: Handler) -> None:
        send_file(handler, BIG if handler.path == "/big.bin" else LITTLE)

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            for path in ("/little.bin", "/big.bin", "/little.bin", "/little.bin"):
                async with await protocol.open_read(parse_location(server.url(path))) as stream:
                    expected = BIG if path == "/big.bin" else LITTLE
                    assert await read_all(stream) == expected.data
        peers = [seen.peer for seen in server.seen]
    assert peers[0] == peers[1]  # the small read's connection served the big one
    assert peers[2] != peers[1]  # which was closed after it
    assert peers[3] == peers[2]


@pytest.mark.parametrize(("offset", "length"), [
    (123_457, None),
    (1_000_001, DIRECT_MIN_SIZE + 99_999),
    (LARGE - DIRECT_MIN_SIZE - 5, DIRECT_MIN_SIZE),
])
async def test_ranged_read_of_a_large_file_is_exact(
    offset: int, length: int | None, direct_reads: list[int]
) -> None:
    with scripted_server(lambda handler: send_file(handler, BIG)) as server:
        async with HttpProtocol({"chunk_size": 700_001}) as protocol:
            stream = await protocol.open_read(parse_location(server.url()), offset, length)
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct
                data = await read_all(stream)
        assert server.seen[-1].headers["Range"].startswith(f"bytes={offset}-")
    end = None if length is None else offset + length
    assert data == BIG.data[offset:end]
    assert direct_reads


@pytest.mark.parametrize(("offset", "length"), [(3_000_001, None), (5, DIRECT_MIN_SIZE + 7)])
async def test_whole_answer_to_a_ranged_read_is_skipped_and_cut_directly(
    offset: int, length: int | None, direct_reads: list[int]
) -> None:
    """A server that ignores Range: the skip and the length are applied on the direct path."""
    with scripted_server(lambda handler: send_file(handler, BIG, ranges=False)) as server:
        async with HttpProtocol() as protocol:
            stream = await protocol.open_read(parse_location(server.url()), offset, length)
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct
                data = await read_all(stream)
    end = None if length is None else offset + length
    assert data == BIG.data[offset:end]
    # Never more off the connection than the skip and the length need.
    assert sum(direct_reads) == (LARGE if length is None else offset + length)


def send_slowly(handler: Handler, head: bytes, body: bytes, *, pause: float = 0.001) -> None:
    """Send ``head`` one byte per TCP segment, then ``body`` at once."""
    handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in head:
        handler.wfile.write(bytes([byte]))
        time.sleep(pause)
    handler.wfile.write(body)


@pytest.mark.parametrize("version", [BIG, LITTLE], ids=["large", "small"])
async def test_header_block_sent_byte_by_byte(version: Version, direct_reads: list[int]) -> None:
    size = len(version.data)
    head = (b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: " + str(size).encode() +
            b"\r\nETag: " + version.etag.encode() + b"\r\nX-Filler: " + b"x" * 40 + b"\r\n\r\n")

    def respond(handler: Handler) -> None:
        send_slowly(handler, head, version.data)

    with scripted_server(respond) as server:
        location = parse_location(server.url())
        async with HttpProtocol() as protocol:
            for _ in range(2):
                async with await protocol.open_read(location) as stream:
                    assert isinstance(stream, HttpReadStream)
                    assert stream.direct is (version is BIG)
                    assert stream.info.etag == version.etag
                    assert await read_all(stream) == version.data
        peers = [seen.peer for seen in server.seen]
    assert (sum(direct_reads) == 2 * size) is (version is BIG)
    assert (peers[0] == peers[1]) is (version is LITTLE)


async def test_chunked_large_body_goes_through_httpx(direct_reads: list[int]) -> None:
    def respond(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        step = 1024 * 1024
        for start in range(0, LARGE, step):
            piece = BIG.data[start : start + step]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")

    with scripted_server(respond) as server:
        await read_through_httpx(server.url(), times=2, expected=BIG.data)
        peers = {seen.peer for seen in server.seen}
    assert direct_reads == []
    assert len(peers) == 1


async def test_connection_lost_mid_body_returns_what_arrived_then_a_transient_error() -> None:
    cut = LARGE // 2 + 1

    def respond(handler: Handler) -> None:
        send_file(handler, BIG, drop_after=cut)

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            stream = await protocol.open_read(parse_location(server.url()))
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct
                received: list[bytes] = []
                with pytest.raises(TransientError) as excinfo:
                    await read_until_error(stream, received)
    assert b"".join(received) == BIG.data[:cut]
    assert excinfo.value.retryable
    message = str(excinfo.value)
    assert "broke off" in message and f"received {cut} bytes, expected {LARGE}" in message
    assert server.url() in message


async def test_silent_server_mid_body_times_out_as_transient() -> None:
    def respond(handler: Handler) -> None:
        send_file(handler, BIG, drop_after=LARGE // 3, before_drop=lambda: time.sleep(1.0))

    with scripted_server(respond) as server:
        async with HttpProtocol({"timeout": 0.3}) as protocol:
            stream = await protocol.open_read(parse_location(server.url()))
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct
                with pytest.raises(TransientError, match="read timeout"):
                    await read_until_error(stream, [])


async def test_dropped_large_download_resumes_through_the_engine(
    tmp_path: Path, direct_reads: list[int]
) -> None:
    out = tmp_path / "out.bin"
    partial = tmp_path / ".out.bin.quorus-partial"
    drops: list[str] = []

    def respond(handler: Handler) -> None:
        if handler.command == "GET" and not drops:
            drops.append(handler.path)

            def written() -> bool:
                return partial.exists() and partial.stat().st_size >= 2 * 1024 * 1024

            send_file(handler, BIG, drop_after=LARGE - DIRECT_MIN_SIZE - 1000,
                      before_drop=lambda: wait_until(written))
        else:
            send_file(handler, BIG)

    with scripted_server(respond) as server:
        async with TransferEngine() as engine:
            result = await engine.transfer(
                TransferRequest.create(server.url(), str(out), retry=FAST_RETRY))
        ranged = [r for r in server.seen if r.method == "GET" and "Range" in r.headers]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert result.resumed_from > 0
    assert result.sha256 == sha256(BIG.data)
    assert out.read_bytes() == BIG.data
    assert ranged[-1].headers["Range"] == f"bytes={result.resumed_from}-"
    # Both attempts read directly (the resumed one still has more than the threshold left).
    assert sum(direct_reads) == LARGE - DIRECT_MIN_SIZE - 1000 + LARGE - result.resumed_from


async def test_large_download_from_nginx_over_http_and_https(
    nginx: NginxServer, tmp_path: Path, direct_reads: list[int]
) -> None:
    data = payload_bytes(LARGE, seed=13)
    (nginx.www / "public" / "direct.bin").write_bytes(data)
    options = {"ca_bundle": str(nginx.ca_bundle)}
    for tls in (False, True):
        url = nginx.url("/public/direct.bin", tls=tls)
        async with HttpProtocol(options) as protocol:
            async with await protocol.open_read(parse_location(url)) as stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct, url
                assert await read_all(stream) == data
            async with await protocol.open_read(parse_location(url), 777, LARGE - 1000) as stream:
                assert isinstance(stream, HttpReadStream)
                assert stream.direct, url
                assert await read_all(stream) == data[777 : LARGE - 223]
        scheme = "https" if tls else "http"
        async with TransferEngine(protocol_options={scheme: options}) as engine:
            result = await engine.transfer(
                TransferRequest.create(url, str(tmp_path / f"{scheme}.bin")))
        assert result.status is TransferStatus.COMPLETED, result.error
        assert result.sha256 == sha256(data)
        assert (tmp_path / f"{scheme}.bin").read_bytes() == data
    assert sum(direct_reads) == 2 * (LARGE + LARGE + LARGE - 1000)


async def test_content_coded_large_body_goes_through_httpx(direct_reads: list[int]) -> None:
    packed = gzip.compress(BIG.data, compresslevel=1)

    def respond(handler: Handler) -> None:
        handler.reply(200, packed, {"Content-Encoding": "gzip"})

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            stream = await protocol.open_read(parse_location(server.url()))
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert not stream.direct
                assert await read_all(stream) == BIG.data
    assert direct_reads == []


async def test_no_content_answer_has_no_body_whatever_its_length_header() -> None:
    def respond(handler: Handler) -> None:
        handler.send_response(204)
        handler.send_header("Content-Length", str(LARGE))
        handler.end_headers()

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            stream = await protocol.open_read(parse_location(server.url()))
            async with stream:
                assert isinstance(stream, HttpReadStream)
                assert not stream.direct
                assert await read_all(stream) == b""
