"""Streaming downloads: what a response says about the file, and the read stream over its body.

httpx hands a body over in socket-sized pieces; :class:`HttpReadStream` joins them into
chunks of about ``chunk_size`` so the engine's per-chunk work (hashing hand-off, queueing,
writing) happens a few times per MiB rather than per piece. The pieces are taken raw
(``aiter_raw``): the protocol asks for ``Accept-Encoding: identity``, so there is nothing to
decode and no reason to pay for httpx's decoder layer. A large body with a
``Content-Length`` is read past httpx and h11, straight off the connection (see
:attr:`HttpReadStream.direct`).
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import cast

import httpx
from quorus.core.errors import TransferError
from quorus.core.protocol import FileInfo, ReadStream
from quorus.core.uri import Location
from quorus.protocols.http.errors import transport_error
from quorus.protocols.http.transport import READ_SIZE, LargeReadStream, direct_body

#: Pieces pulled, at most, to end httpx's iteration of a body after its connection closed.
_DRAIN_PULLS = 64
#: Bytes to take off the connection, at least, for a body to be read directly: smaller ones
#: go through httpx, whose connection then serves the next request.
DIRECT_MIN_SIZE = 4 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ContentRange:
    """A parsed ``Content-Range``: the bytes sent (``None`` for ``*``) and the full size."""

    start: int | None
    end: int | None
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    """``bytes 0-99/1234``, ``bytes 0-99/*`` or ``bytes */1234``; ``None`` if malformed."""
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    start, end, total = match.groups()
    return ContentRange(
        int(start) if start is not None else None,
        int(end) if end is not None else None,
        int(total) if total != "*" else None,
    )


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch from an HTTP-date (``Last-Modified``), or ``None``."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def is_encoded(response: httpx.Response) -> bool:
    """True when the body is content-coded (gzip, ...) despite ``Accept-Encoding: identity``."""
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    return coding not in ("", "identity")


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit() or is_encoded(response):
        return None
    return int(value)


def response_info(location: Location, response: httpx.Response, size: int | None) -> FileInfo:
    """The identity of the file as ``response`` describes it."""
    return FileInfo(
        location=location,
        size=size,
        is_dir=False,
        mtime=parse_http_date(response.headers.get("Last-Modified")),
        etag=response.headers.get("ETag"),
    )


def validator(info: FileInfo) -> str | None:
    """What to send as ``If-Range`` for ``info``: a strong ETag, else the Last-Modified date.

    If-Range needs a strong validator (RFC 9110 13.1.5): a weak ETag may name a different
    byte sequence, so it falls back to the date.
    """
    if info.etag and not info.etag.startswith("W/"):
        return info.etag
    if info.mtime is not None:
        return email.utils.formatdate(info.mtime, usegmt=True)
    return None


class HttpReadStream(ReadStream):
    """The body of one GET, from the requested offset.

    ``skip`` bytes are dropped first (a server that ignored the ``Range`` header sent the
    whole file); at most ``length`` bytes are returned. A connection lost mid-body is a
    :class:`~quorus.core.errors.TransientError`, raised only after the bytes that did arrive
    have been returned, so a resumed transfer loses as little as possible.

    A large identity-coded HTTP/1.1 body with a ``Content-Length`` is read straight off the
    connection (:func:`~quorus.protocols.http.transport.direct_body`), sparing the copies
    h11 and httpx make of every byte; :attr:`direct` says so. Its connection is closed
    afterwards, not reused. Other bodies go through httpx.
    """

    def __init__(
        self,
        response: httpx.Response,
        info: FileInfo,
        *,
        chunk_size: int,
        skip: int = 0,
        length: int | None = None,
    ) -> None:
        self.info = info
        self._response = response
        self._chunk_size = chunk_size
        self._skip = skip
        self._remaining = length
        self._pending: TransferError | None = None
        self._pieces: AsyncGenerator[bytes, None] | None = None
        self._exhausted = False  # httpx's iteration has ended (end of body or an error)
        self._done = length == 0
        self._closed = False
        self._wire = 0  # body bytes still to come off the connection, on the direct path
        self._timeout: float | None = None  # its read timeout
        self._connection = None if self._done else self._direct(response, skip, length)
        #: Whether the body is read straight off the connection rather than through httpx.
        self.direct = self._connection is not None

    def _direct(
        self, response: httpx.Response, skip: int, length: int | None
    ) -> LargeReadStream | None:
        """The connection to read the body from directly, if the body qualifies."""
        size = content_length(response)  # None if absent, malformed or content-coded
        if size is None or "Transfer-Encoding" in response.headers:
            return None
        wanted = size if length is None else min(size, skip + length)
        if wanted < DIRECT_MIN_SIZE:
            return None
        connection = direct_body(response)
        if connection is not None:
            self._wire = size
            self._timeout = response.request.extensions.get("timeout", {}).get("read")
        return connection

    @classmethod
    def empty(cls, response: httpx.Response, info: FileInfo) -> HttpReadStream:
        """A stream with nothing to read (a read starting at the end of the file)."""
        return cls(response, info, chunk_size=1, length=0)

    async def read(self) -> bytes:
        if self._pending is not None:
            raise self._pending
        if self._done:
            await self.aclose()
            return b""
        limit = self._chunk_size
        if self._remaining is not None:
            limit = min(limit, self._remaining)
        pieces: list[bytes] = []  # filled in place, so a failure keeps what had arrived
        try:
            if self._connection is not None:
                await self._read_direct(self._connection, limit, pieces)
            else:
                await self._read_httpx(limit, pieces)
        except httpx.HTTPError as exc:
            self._exhausted = True
            error = transport_error(exc, "read", self.info.location.redacted())
            await self.aclose()
            if not pieces:
                raise error from exc
            self._pending = error
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if self._remaining is not None:
            if len(data) > self._remaining:
                data = data[: self._remaining]
            self._remaining -= len(data)
            if self._remaining == 0:
                self._done = True
        if self._done:
            await self.aclose()
        return data

    async def _read_httpx(self, limit: int, pieces: list[bytes]) -> None:
        """Pieces from httpx into ``pieces`` until ``limit`` bytes."""
        if self._pieces is None:
            raw = self._response.aiter_bytes() if is_encoded(self._response) \
                else self._response.aiter_raw()
            # Both are async generators; the precise type lets aclose() finalize them early.
            self._pieces = cast(AsyncGenerator[bytes, None], raw)
        size = 0
        try:
            while size < limit:
                size += self._keep(await anext(self._pieces), pieces)
        except StopAsyncIteration:
            self._exhausted = self._done = True

    def _keep(self, piece: bytes, pieces: list[bytes]) -> int:
        """Drop from ``piece`` what is still to be skipped, append the rest to ``pieces``;
        the number of bytes kept."""
        if self._skip:
            if len(piece) <= self._skip:
                self._skip -= len(piece)
                return 0
            piece, self._skip = piece[self._skip :], 0
        pieces.append(piece)
        return len(piece)

    async def _read_direct(
        self, connection: LargeReadStream, limit: int, pieces: list[bytes]
    ) -> None:
        """Body bytes off ``connection`` into ``pieces``: at least ``limit`` of them unless
        the body ends first, and less than ``limit`` plus :data:`READ_SIZE`, as httpx's
        pieces are joined on the other path. Bytes still to skip are read and dropped.

        Never reads past the body's ``Content-Length`` nor past ``skip`` plus ``length``.
        """
        size = 0
        while size < limit and self._wire:
            # The rest of the chunk from a connection that fills its reads (in a worker
            # thread: one hop per chunk); otherwise whatever the socket has, up to
            # READ_SIZE. Never past the body nor past `skip` + `length`.
            want = min(self._wire, limit - size if connection.fills else READ_SIZE)
            if self._remaining is not None:
                want = min(want, self._skip + self._remaining - size)
            piece = await connection.read_body(want, self._timeout)
            if not piece:
                expected = content_length(self._response) or 0
                raise httpx.RemoteProtocolError(  # worded as h11 words it on the other path
                    "peer closed connection without sending complete message body: "
                    f"received {expected - self._wire} bytes, expected {expected}"
                )
            self._wire -= len(piece)
            size += self._keep(piece, pieces)
        if not self._wire:
            self._done = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._done = True
        # A complete body read through httpx has already handed its connection back to the
        # pool; otherwise (and always on the direct path, where h11 has not seen the body)
        # closing the response drops the connection.
        await self._response.aclose()
        if self._pieces is not None and not self._exhausted:
            # httpx reads a body through a chain of async generators. One left suspended is
            # finalized by the garbage collector, which trio reports as a ResourceWarning
            # (httpx issue #3686). With the connection closed, pulling again ends the whole
            # chain at once with an error, after at most the few pieces already buffered.
            for _ in range(_DRAIN_PULLS):
                try:
                    await anext(self._pieces)
                except (StopAsyncIteration, Exception):
                    break
            self._exhausted = True


class EmptyReadStream(ReadStream):
    """A zero-length read: no request is needed for it."""

    def __init__(self, info: FileInfo) -> None:
        self.info = info

    async def read(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        return None


__all__ = [
    "DIRECT_MIN_SIZE",
    "ContentRange",
    "EmptyReadStream",
    "HttpReadStream",
    "content_length",
    "is_encoded",
    "parse_content_range",
    "parse_http_date",
    "response_info",
    "validator",
]
