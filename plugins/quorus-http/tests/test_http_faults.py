"""Faults a real server causes, and what the engine makes of them through the HTTP protocol.

The server is :mod:`httptest_server`, scripted per test; transfers go to local files in
``tmp_path`` through the real :class:`~quorus.core.TransferEngine`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest
from quorus.core import (
    RetryPolicy,
    TransferEngine,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.errors import TransferError, TransientError
from quorus.core.protocol import ProtocolOptions, ReadStream
from quorus.core.testing import payload_bytes
from quorus.core.uri import parse_location
from quorus.protocols.http import HttpProtocol
from quorus.protocols.http.testing.nginx import NginxServer
from quorus.protocols.http.testing.scripted import (
    Handler,
    Version,
    scripted_server,
    send_file,
    wait_until,
)

pytestmark = pytest.mark.anyio

SIZE = 3 * 1024 * 1024 + 4321
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.01, max_delay=0.05, jitter=0)
ONE = Version(payload_bytes(SIZE, seed=1), '"v1"')
TWO = Version(payload_bytes(SIZE, seed=2), '"v2"', mtime=1_700_000_100)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def transfer(
    source: str, destination: Path, options: ProtocolOptions | None = None, **kwargs: object
) -> TransferResult:
    scheme = source.split(":", 1)[0]
    async with TransferEngine(protocol_options={scheme: options or {}}) as engine:
        request = TransferRequest.create(source, str(destination), retry=FAST_RETRY, **kwargs)
        return await engine.transfer(request)


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_dropped_connection_resumes_from_the_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    partial = tmp_path / ".out.bin.quorus-partial"
    drops = []

    def respond(handler: Handler) -> None:
        if handler.command == "GET" and not drops:
            drops.append(handler.path)

            # Cut the body only once the engine has written some of it, so the second
            # attempt has a partial file to continue (waiting is bounded).
            def written() -> bool:
                return partial.exists() and partial.stat().st_size >= 1024 * 1024

            send_file(handler, ONE, drop_after=SIZE // 2,
                      before_drop=lambda: wait_until(written))
        else:
            send_file(handler, ONE)

    with scripted_server(respond) as server:
        result = await transfer(server.url(), out)
        ranged = [r for r in server.seen if r.method == "GET" and "Range" in r.headers]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert 0 < result.resumed_from <= SIZE // 2
    assert result.sha256 == sha256(ONE.data)
    assert out.read_bytes() == ONE.data
    # The resumed GET asked for the rest, guarded by the version it had started with.
    assert ranged[-1].headers["Range"] == f"bytes={result.resumed_from}-"
    assert ranged[-1].headers["If-Range"] == ONE.etag
    assert leftovers(tmp_path) == ["out.bin"]


async def test_server_busy_then_available_is_retried(tmp_path: Path) -> None:
    busy = []

    def respond(handler: Handler) -> None:
        if not busy:
            busy.append(True)
            handler.reply(503, b"busy", {"Retry-After": "0"})
        else:
            send_file(handler, ONE)

    with scripted_server(respond) as server:
        result = await transfer(server.url(), tmp_path / "out.bin")
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert result.sha256 == sha256(ONE.data)


@pytest.mark.parametrize("retry_after", ["1", "Wed, 21 Oct 2099 07:28:00 GMT"])
async def test_retry_after_is_reported(retry_after: str) -> None:
    def respond(handler: Handler) -> None:
        handler.reply(429, headers={"Retry-After": retry_after})

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            with pytest.raises(TransientError) as excinfo:
                await protocol.stat(parse_location(server.url()))
    assert excinfo.value.retryable
    assert excinfo.value.retry_after is not None
    assert excinfo.value.retry_after >= 1
    assert server.url() in str(excinfo.value)


async def test_missing_source_fails_once_without_leaving_a_file(tmp_path: Path) -> None:
    with scripted_server(lambda handler: handler.reply(404, b"no")) as server:
        result = await transfer(server.url(), tmp_path / "out.bin")
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "NotFoundError"
    assert server.url() in (result.error or "")
    assert leftovers(tmp_path) == []


async def test_rejected_credentials_fail_once(tmp_path: Path) -> None:
    def respond(handler: Handler) -> None:
        handler.reply(401, headers={"WWW-Authenticate": 'Basic realm="x"'})

    with scripted_server(respond) as server:
        result = await transfer(server.url(), tmp_path / "out.bin", {"bearer_token": "nope"})
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert result.error_type == "AuthenticationError"
    assert leftovers(tmp_path) == []


async def test_redirect_loop_is_bounded(tmp_path: Path) -> None:
    def respond(handler: Handler) -> None:
        target = "/b" if handler.path == "/a" else "/a"
        handler.reply(302, headers={"Location": target})

    with scripted_server(respond) as server:
        result = await transfer(server.url("/a"), tmp_path / "out.bin", {"max_redirects": 3})
        requests = len(server.seen)
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert "too many redirects" in (result.error or "")
    assert requests == 4  # the first request and three redirects, then it gave up


async def test_source_changed_between_attempts_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    partial = tmp_path / ".out.bin.quorus-partial"
    current = [ONE]

    def respond(handler: Handler) -> None:
        if handler.command == "GET" and current[0] is ONE:
            def written_then_replaced() -> None:
                wait_until(lambda: partial.exists() and partial.stat().st_size > 0)
                current[0] = TWO

            send_file(handler, ONE, drop_after=SIZE // 2, before_drop=written_then_replaced)
        else:
            send_file(handler, current[0])

    with scripted_server(respond) as server:
        result = await transfer(server.url(), out)
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert result.resumed_from == 0
    assert result.sha256 == sha256(TWO.data)
    assert out.read_bytes() == TWO.data


async def test_source_changed_between_stat_and_ranged_read(tmp_path: Path) -> None:
    """If-Range: the server sends the new version whole; the engine notices and starts over."""
    out = tmp_path / "out.bin"
    partial = tmp_path / ".out.bin.quorus-partial"
    current = [ONE]

    def respond(handler: Handler) -> None:
        if handler.command == "GET" and "Range" in handler.headers:
            current[0] = TWO  # replaced just after the second attempt's HEAD
        if handler.command == "GET" and not any(
            seen.method == "GET" for seen in handler.server.script.seen[:-1]
        ):
            send_file(handler, ONE, drop_after=SIZE // 2, before_drop=lambda: wait_until(
                lambda: partial.exists() and partial.stat().st_size > 0))
        else:
            send_file(handler, current[0])

    with scripted_server(respond) as server:
        result = await transfer(server.url(), out)
        ranged = [r for r in server.seen if "Range" in r.headers]
    assert result.status is TransferStatus.COMPLETED, result.error
    assert result.attempts == 3
    assert result.sha256 == sha256(TWO.data)
    assert out.read_bytes() == TWO.data
    assert ranged and ranged[0].headers["If-Range"] == ONE.etag


async def test_ranged_read_of_a_changed_file_skips_to_the_offset() -> None:
    """A 200 to a ranged request is read from the offset, with the new identity reported."""
    current = [ONE]

    def respond(handler: Handler) -> None:
        send_file(handler, current[0])

    with scripted_server(respond) as server:
        location = parse_location(server.url())
        async with HttpProtocol() as protocol:
            assert (await protocol.stat(location)).etag == ONE.etag
            current[0] = TWO
            async with await protocol.open_read(location, 1000, 5000) as stream:
                data = await read_all(stream)
                assert stream.info.etag == TWO.etag
        assert server.seen[-1].headers["If-Range"] == ONE.etag
    assert data == TWO.data[1000:6000]


async def test_server_without_ranges_or_head(tmp_path: Path) -> None:
    """HEAD refused and Range ignored: stat falls back to GET and reads skip to the offset."""
    def respond(handler: Handler) -> None:
        if handler.command == "HEAD":
            handler.reply(405)
        else:
            send_file(handler, ONE, ranges=False)

    with scripted_server(respond) as server:
        location = parse_location(server.url())
        async with HttpProtocol() as protocol:
            info = await protocol.stat(location)
            async with await protocol.open_read(location, SIZE - 100) as stream:
                tail = await read_all(stream)
    assert info.size == SIZE
    assert info.etag == ONE.etag
    assert info.mtime == ONE.mtime
    assert tail == ONE.data[-100:]


async def test_untrusted_certificate_is_a_clear_permanent_error(
    nginx: NginxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (nginx.www / "public" / "tls.bin").write_bytes(ONE.data)
    url = nginx.url("/public/tls.bin", tls=True)
    result = await transfer(url, tmp_path / "untrusted.bin")
    assert result.status is TransferStatus.FAILED
    assert result.attempts == 1
    assert "certificate could not be verified" in (result.error or "")
    assert "ca_bundle" in (result.error or "")

    async with HttpProtocol() as protocol:
        with pytest.raises(TransferError) as excinfo:
            await protocol.stat(parse_location(url))
    assert not excinfo.value.retryable

    trusted = await transfer(url, tmp_path / "trusted.bin", {"ca_bundle": str(nginx.ca_bundle)})
    assert trusted.status is TransferStatus.COMPLETED, trusted.error
    assert trusted.sha256 == sha256(ONE.data)
    with caplog.at_level(logging.WARNING, logger="quorus.protocols.http"):
        unchecked = await transfer(url, tmp_path / "unchecked.bin", {"verify": False})
    assert unchecked.status is TransferStatus.COMPLETED, unchecked.error
    assert "TLS certificate verification is off" in caplog.text


async def test_connections_are_reused_across_transfers(tmp_path: Path) -> None:
    with scripted_server(lambda handler: send_file(handler, ONE)) as server:
        async with TransferEngine() as engine:
            for name in ("one.bin", "two.bin"):
                result = await engine.transfer(
                    TransferRequest.create(server.url(), str(tmp_path / name)))
                assert result.status is TransferStatus.COMPLETED, result.error
        peers = {seen.peer for seen in server.seen}
    assert len(server.seen) == 4  # HEAD and GET for each transfer
    assert len(peers) == 1


async def test_redirects_are_followed() -> None:
    def respond(handler: Handler) -> None:
        if handler.path == "/old.bin":
            handler.reply(301, headers={"Location": "/file.bin"})
        else:
            send_file(handler, ONE)

    with scripted_server(respond) as server:
        async with HttpProtocol() as protocol:
            location = parse_location(server.url("/old.bin"))
            assert (await protocol.stat(location)).size == SIZE
            async with await protocol.open_read(location, SIZE - 10) as stream:
                assert await read_all(stream) == ONE.data[-10:]


async def test_silent_server_times_out_as_transient() -> None:
    def respond(handler: Handler) -> None:
        time.sleep(1.0)  # longer than the client waits; bounded so the thread ends soon
        handler.reply(204)

    with scripted_server(respond) as server:
        async with HttpProtocol({"timeout": 0.2}) as protocol:
            with pytest.raises(TransientError, match="read timeout"):
                await protocol.stat(parse_location(server.url()))


async def read_all(stream: ReadStream) -> bytes:
    chunks = []
    for _ in range(10_000):  # bounded: far more chunks than any test file has
        chunk = await stream.read()
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
