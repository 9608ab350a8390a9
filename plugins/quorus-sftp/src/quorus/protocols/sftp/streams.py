"""Pipelined SFTP reads and writes: many block-sized requests in flight on one file handle.

SFTP moves a file as independent requests, each answered after a round trip. One request at
a time leaves the link idle most of the time, so both streams keep up to ``max_requests``
requests of ``block_size`` bytes outstanding (the remedy OpenSSH's own ``sftp`` client uses),
deliver the data in order, and hand the engine chunks of about ``chunk_size`` bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

import asyncssh
from quorus.core.errors import TransferError
from quorus.core.protocol import FileInfo, ReadStream, WriteStream


class _Block:
    """One outstanding read request: where it starts, how much it asked for, its task."""

    __slots__ = ("offset", "size", "task")

    def __init__(self, file: asyncssh.SFTPClientFile, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size
        # With block_size=0 at open, read() sends exactly one SFTP READ of this size.
        self.task: asyncio.Task[bytes] = asyncio.ensure_future(file.read(size, offset))


class SftpReadStream(ReadStream):
    """Reads ``[offset, end)`` of an open remote file with a window of requests in flight.

    ``end`` is the file's size when opened (or ``offset + length``): reads are not issued past
    it, and a server that answers end-of-file earlier ends the stream early (the engine then
    sees a short file and treats the source as changed).
    """

    def __init__(
        self,
        file: asyncssh.SFTPClientFile,
        info: FileInfo,
        *,
        offset: int,
        end: int,
        block_size: int,
        max_requests: int,
        chunk_size: int,
        translate: Callable[[BaseException], TransferError],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.info = info
        self._file = file
        self._next = offset
        self._end = end
        self._block_size = block_size
        self._max_requests = max_requests
        self._chunk_size = chunk_size
        self._translate = translate
        self._on_close = on_close
        self._window: collections.deque[_Block] = collections.deque()
        self._eof = offset >= end
        self._closed = False

    def _fill(self) -> None:
        while not self._eof and self._next < self._end and len(self._window) < self._max_requests:
            size = min(self._block_size, self._end - self._next)
            self._window.append(_Block(self._file, self._next, size))
            self._next += size

    async def read(self) -> bytes:
        if self._closed:
            return b""
        pieces: list[bytes] = []
        gathered = 0
        try:
            while gathered < self._chunk_size:
                self._fill()
                if not self._window:
                    break
                block = self._window[0]
                if pieces and not block.task.done():
                    break  # hand over what has arrived rather than wait for a full chunk
                data = await block.task
                self._window.popleft()
                if not data:
                    self._stop()  # end of file before the expected end
                    break
                pieces.append(data)
                gathered += len(data)
                if len(data) < block.size:
                    # A short read (the server caps request sizes): ask for the rest before
                    # any later block is consumed.
                    self._window.appendleft(
                        _Block(self._file, block.offset + len(data), block.size - len(data)))
        except asyncssh.SFTPEOFError:
            self._stop()
        except BaseException as exc:
            await self.aclose()
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def _stop(self) -> None:
        self._eof = True
        for block in self._window:
            _discard(block.task)
        self._window.clear()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = [block.task for block in self._window]
        self._stop()
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._file.close()
        if self._on_close is not None:
            self._on_close()


class SftpWriteStream(WriteStream):
    """Writes to an open remote file from ``offset`` on, with a window of requests in flight.

    A failed request is reported by the next :meth:`write` or by :meth:`commit`. ``commit``
    waits for every request, asks the server to fsync (when it offers ``fsync@openssh.com``)
    and closes the handle; ``abort`` closes it after the requests already sent, so what was
    written stays for a later attempt to continue.
    """

    def __init__(
        self,
        file: asyncssh.SFTPClientFile,
        *,
        offset: int,
        block_size: int,
        max_requests: int,
        translate: Callable[[BaseException], TransferError],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._file = file
        self._offset = offset
        self._block_size = block_size
        self._max_requests = max_requests
        self._translate = translate
        self._on_close = on_close
        self._pending: set[asyncio.Task[int]] = set()
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise TransferError("write after the stream was committed or aborted")
        view = memoryview(data)
        try:
            for start in range(0, len(view), self._block_size):
                while len(self._pending) >= self._max_requests:
                    await self._wait(asyncio.FIRST_COMPLETED)
                piece = bytes(view[start : start + self._block_size])
                # With block_size=0 at open, write() sends exactly one SFTP WRITE.
                self._pending.add(asyncio.ensure_future(self._file.write(piece, self._offset)))
                self._offset += len(piece)
        except BaseException as exc:
            await self._close()
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise

    async def _wait(self, when: str) -> None:
        done, self._pending = await asyncio.wait(self._pending, return_when=when)
        for task in done:
            task.result()  # raises the request's failure

    async def commit(self) -> None:
        if self._finished:
            return
        try:
            if self._pending:
                await self._wait(asyncio.ALL_COMPLETED)
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await self._file.fsync()
            await self._file.close()
        except BaseException as exc:
            await self._close()
            if isinstance(exc, Exception):
                raise self._translate(exc) from None
            raise
        self._finish()

    async def abort(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._finished:
            return
        if self._pending:
            with contextlib.suppress(Exception):
                await asyncio.wait(self._pending)
            for task in self._pending:
                if not task.cancelled():
                    task.exception()  # retrieved: nobody else will look at it
            self._pending.clear()
        with contextlib.suppress(Exception):
            await self._file.close()
        self._finish()

    def _finish(self) -> None:
        self._finished = True
        if self._on_close is not None:
            self._on_close()


def _discard(task: asyncio.Task[bytes]) -> None:
    """Cancel a request nobody will wait for; a failure it already met is dropped."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


__all__ = ["SftpReadStream", "SftpWriteStream"]
