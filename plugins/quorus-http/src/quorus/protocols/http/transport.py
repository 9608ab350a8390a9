"""The transport under the protocol's httpx client: httpcore's pool, reading sockets in large pieces.

httpcore reads 64 KiB per socket receive, and each piece then passes through h11, httpcore
and httpx in Python. Receiving up to 1 MiB at once makes that per-piece work rarer: on
loopback it roughly halves the CPU time per downloaded byte, which is what leaves room for
hashing and writing on the same cores.

h11 still copies every body byte twice (into its buffer, out as an event), so a large body
can skip it altogether: the stream stops h11 at the end of each response header block, and
:func:`direct_body` lets the reader take the body raw off the connection, which httpcore
then closes instead of reusing. Everything else is httpcore's standard
:class:`httpcore.AsyncConnectionPool`, wired to httpx the way ``httpx.AsyncHTTPTransport``
does it, through public APIs only.
"""

# The `timeout` parameters below are httpcore's network-backend interface, not a choice here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import anyio
import httpcore
import httpx
from quorus.protocols.http.sockets import SocketStream, connect_tcp

#: Bytes asked for per socket receive (TLS still delivers one record, 16 KiB, at a time).
READ_SIZE = 1024 * 1024

# The end of a header block, as h11 finds it (bare LF line ends are accepted too).
_BLANK_LINE = re.compile(rb"\n\r?\n")
# An interim response's status line starts so ("HTTP/1.1 100"); 101 ends the exchange.
_INTERIM_STATUS = re.compile(rb"HTTP/\d\.\d 1\d\d")
_STATUS_PREFIX = len(b"HTTP/1.1 100")

# httpcore's exceptions and their httpx counterparts, as httpx maps them.
_EXCEPTIONS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextlib.contextmanager
def _mapped_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        target = next((_EXCEPTIONS[c] for c in type(exc).__mro__ if c in _EXCEPTIONS), None)
        if target is None:
            raise
        raise target(str(exc)) from exc


class LargeReadStream(httpcore.AsyncNetworkStream):
    """A network stream that receives up to :data:`READ_SIZE` bytes whatever is asked, and
    that can hand the body of a response over without h11 seeing it.

    From each request written until the end of its response's header block (past interim
    1xx responses), a read returns only the bytes up to and including the blank line that
    ends the block, and stashes the rest; later reads return the stash first. h11 thus gets
    every byte it asks for, in order, while the body of the response it has just parsed is
    still untouched: :func:`direct_body` can claim it and :meth:`read_body` read it raw.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._stash = b""  # received, not yet returned
        self._in_headers = False  # a response header block is being read
        self._block_start = b""  # its first bytes: enough to tell an interim 1xx status
        self._carry = b""  # its last bytes so far: a blank line may straddle two reads
        self._at_body = False  # the last read ended a final header block; no read since

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._at_body = False
        if self._stash:
            data, self._stash = self._stash, b""
        else:
            data = await self._stream.read(max(max_bytes, READ_SIZE), timeout)
        if self._in_headers and data:
            data = self._through_headers(data)
        return data

    def _through_headers(self, data: bytes) -> bytes:
        """``data`` up to the end of the final header block in it, stashing what follows."""
        offset = 0
        while True:
            missing = _STATUS_PREFIX - len(self._block_start)
            if missing > 0:
                self._block_start += data[offset : offset + missing]
            end = -1
            if self._carry:  # a blank line begun in an earlier read ends within 2 bytes
                match = _BLANK_LINE.search(self._carry + data[offset : offset + 2])
                if match is not None:
                    end = offset + match.end() - len(self._carry)
            if end < 0:
                match = _BLANK_LINE.search(data, offset)
                if match is None:
                    self._carry = (self._carry + data[max(offset, len(data) - 2) :])[-2:]
                    return data
                end = match.end()
            status = self._block_start
            self._block_start = self._carry = b""
            interim = _INTERIM_STATUS.fullmatch(status) is not None and status[9:] != b"101"
            if not interim:
                self._in_headers = False
                self._at_body = True
                if end == len(data):
                    return data
                self._stash = data[end:]
                return data[:end]
            offset = end
            if offset == len(data):
                return data

    def claim_body(self) -> bool:
        """Take the body that follows the header block just read, for :meth:`read_body`.

        False when h11 has read from the stream since (it may hold body bytes already).
        The connection must then be closed, never reused: h11 has not seen the body.
        """
        if not self._at_body:
            return False
        self._at_body = False
        return True

    @property
    def fills(self) -> bool:
        """Whether :meth:`read_body` fills its ``max_bytes`` (in a worker thread) rather than
        returning what one receive gives."""
        return isinstance(self._stream, SocketStream)

    async def read_body(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes`` raw body bytes (stashed first), ``b""`` at end of stream
        (all ``max_bytes`` unless the body ends or stalls first, when :attr:`fills`).

        Failures are httpx's: :class:`httpx.ReadTimeout`, :class:`httpx.ReadError`.
        """
        if self._stash:
            data = self._stash
            if len(data) <= max_bytes:
                self._stash = b""
                return data
            self._stash = data[max_bytes:]
            return data[:max_bytes]
        with _mapped_exceptions():
            try:
                if isinstance(self._stream, SocketStream):
                    return await self._stream.fill(max_bytes, timeout)
                return await self._stream.read(max_bytes, timeout)
            except anyio.EndOfStream:
                return b""
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "read timeout") from exc
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not self._in_headers:  # a new request: its response's header block comes next
            self._in_headers = True
            self._block_start = self._carry = b""
        self._at_body = False
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        self._stash = b""
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return LargeReadStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable" and self._stash:
            # Bytes nobody asked for on an idle connection: httpcore then drops it.
            return True
        return self._stream.get_extra_info(info)


def direct_body(response: httpx.Response) -> LargeReadStream | None:
    """The connection of an HTTP/1.1 ``response`` from :class:`LargeReadTransport`, claimed
    for reading the body with :meth:`LargeReadStream.read_body`; ``None`` if it cannot be.

    Once claimed, only ``read_body`` may read the body, and closing ``response`` closes the
    connection (h11 has not seen the body, so httpcore does not return it to the pool).
    """
    if response.http_version != "HTTP/1.1" or response.request.method == "HEAD":
        return None
    if response.status_code < 200 or response.status_code in (204, 304):
        return None  # no body whatever the headers say
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, LargeReadStream) or not stream.claim_body():
        return None
    return stream


class _LargeReadBackend(httpcore.AsyncNetworkBackend):
    """TCP connections of the protocol's own (:mod:`~quorus.protocols.http.sockets`), Unix
    sockets through httpcore's anyio backend, each as a :class:`LargeReadStream`."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return LargeReadStream(
            await connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return LargeReadStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    """A response body from httpcore, with httpcore's exceptions turned into httpx's."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream
        self._pieces: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._pieces is None:
            self._pieces = aiter(self._stream)
        with _mapped_exceptions():
            return await anext(self._pieces)

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _mapped_exceptions():
                await close()


class LargeReadTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore connection pool with large socket reads."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_LargeReadBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("an async client needs an async request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_exceptions():
            response = await self._pool.handle_async_request(core_request)
        if not isinstance(response.stream, AsyncIterable):
            raise TypeError("httpcore returned a response without an async body")
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


__all__ = ["READ_SIZE", "LargeReadStream", "LargeReadTransport", "direct_body"]
