"""Fault injection for tests: a protocol wrapper that fails on cue.

:class:`FaultyProtocol` wraps any protocol and, for the first ``times`` reads that are opened,
raises ``error`` after ``after_bytes`` bytes of the stream — the shape of a connection reset
mid-body. It also records how many streams are open at once, for concurrency tests.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from quorus.core.errors import TransferError, TransientError
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.uri import Location


class _FaultyReadStream(ReadStream):
    def __init__(self, inner: ReadStream, owner: FaultyProtocol, fail_after: int | None) -> None:
        self._inner = inner
        self._owner = owner
        self._fail_after = fail_after
        self._read = 0
        self.info = inner.info

    async def read(self) -> bytes:
        if self._fail_after is not None and self._read >= self._fail_after:
            raise self._owner.make_error()
        chunk = await self._inner.read()
        if self._fail_after is not None and self._read + len(chunk) >= self._fail_after:
            # Deliver the bytes before the cut; the next call fails, like a reset connection.
            chunk = chunk[: self._fail_after - self._read]
        self._read += len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._owner.open_streams -= 1
        await self._inner.aclose()


class FaultyProtocol(TransferProtocol):
    """Wraps ``inner``; the first ``times`` read streams (after ``healthy_first`` good ones)
    fail after ``after_bytes`` bytes. Everything else, the location check and the partial
    file lock included, is ``inner``'s; ``inner`` stays its creator's to close."""

    def __init__(
        self,
        inner: TransferProtocol,
        *,
        after_bytes: int = 0,
        times: int = 1,
        make_error: Callable[[], TransferError] | None = None,
        healthy_first: int = 0,
    ) -> None:
        super().__init__({})
        self.healthy_first = healthy_first
        self.inner = inner
        self.after_bytes = after_bytes
        self.remaining_failures = times
        self.make_error = make_error or (lambda: TransientError("connection reset by peer (injected)"))
        self.opened_reads = 0
        self.open_streams = 0
        self.max_open_streams = 0

    def capabilities(self, location: Location) -> Capabilities:
        return self.inner.capabilities(location)

    def check_location(self, location: Location) -> None:
        self.inner.check_location(location)

    def lock(self, location: Location) -> AbstractAsyncContextManager[None]:
        return self.inner.lock(location)

    async def stat(self, location: Location) -> FileInfo:
        return await self.inner.stat(location)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        stream = await self.inner.open_read(location, offset, length)
        self.opened_reads += 1
        self.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        fail_after = None
        if self.opened_reads > self.healthy_first and self.remaining_failures > 0:
            self.remaining_failures -= 1
            fail_after = self.after_bytes
        return _FaultyReadStream(stream, self, fail_after)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        return await self.inner.open_write(location, offset, size_hint=size_hint, mode=mode)

    async def list(self, location: Location) -> list[FileInfo]:
        return await self.inner.list(location)

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        await self.inner.rename(source, target, replace=replace)

    async def delete(self, location: Location) -> None:
        await self.inner.delete(location)

    async def makedirs(self, location: Location) -> None:
        await self.inner.makedirs(location)


__all__ = ["FaultyProtocol"]
