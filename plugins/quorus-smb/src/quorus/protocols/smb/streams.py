"""Pipelined reads and writes: many READ or WRITE requests in flight on one open file.

A :class:`SmbReadStream` keeps up to ``depth`` READs of ``block`` bytes outstanding and hands
their data over in file order; each call of :meth:`SmbReadStream.read` collects one response
and sends the next request, in one worker-thread call. A :class:`SmbWriteStream` sends each
chunk as WRITEs at increasing offsets and only waits for the oldest response once ``depth``
are outstanding. The server's credits bound both (see :meth:`SmbSession.send`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from quorus.core.errors import TransferError
from quorus.core.protocol import FileInfo, ReadStream, WriteStream
from quorus.protocols.smb import files
from quorus.protocols.smb.errors import connection_lost, translate
from quorus.protocols.smb.session import SmbSession
from smbprotocol.exceptions import EndOfFile
from smbprotocol.open import Open, SMB2ReadRequest, SMB2WriteRequest, SMB2WriteResponse
from smbprotocol.tree import TreeConnect

log = logging.getLogger(__name__)

# SMB2 header (64 bytes) + READ response: StructureSize(2) DataOffset(1) Reserved(1)
# DataLength(4) ... The data offset is counted from the start of the SMB2 header.
_HEADER = 64


class _Handle:
    """An open file with the session, tree and name it belongs to."""

    def __init__(self, session: SmbSession, tree: TreeConnect, handle: Open, what: str,
                 on_lost: Callable[[SmbSession], None]) -> None:
        self.session = session
        self.tree = tree
        self.handle = handle
        self.what = what
        self.on_lost = on_lost

    def fail(self, exc: BaseException, doing: str) -> TransferError:
        """Translate ``exc``; a lost connection takes the session out of the pool."""
        if connection_lost(exc):
            self.on_lost(self.session)
        return translate(exc, f"{self.what}: {doing}")

    def close(self) -> None:
        if self.session.broken:
            return
        try:
            files.close(self.session, self.tree, self.handle)
        except Exception as exc:  # closing after a failure: the first error is what matters
            if connection_lost(exc):
                self.on_lost(self.session)
            log.debug("%s: close failed: %s", self.what, exc)


def read_payload(response: Any) -> bytes:
    """The data of a READ response, sliced once out of the SMB2 message."""
    raw = response["data"].get_value()
    data_offset = raw[2] - _HEADER
    length = int.from_bytes(raw[4:8], "little")
    return bytes(raw[data_offset:data_offset + length])


class SmbReadStream(ReadStream):
    """Reads ``[offset, end)`` of an open file with up to ``depth`` READs outstanding."""

    def __init__(self, handle: _Handle, info: FileInfo, offset: int, end: int, block: int,
                 depth: int) -> None:
        self.info = info
        self._file = handle
        self._next = offset
        self._end = end
        self._block = block
        self._depth = depth
        self._pending: collections.deque[tuple[Any, int]] = collections.deque()
        self._done = offset >= end
        self._closed = False

    @property
    def in_flight(self) -> int:
        """READ requests sent and not yet collected."""
        return len(self._pending)

    @property
    def block(self) -> int:
        """Bytes asked for per READ."""
        return self._block

    def _fill(self) -> None:
        session, tree, handle = self._file.session, self._file.tree, self._file.handle
        while len(self._pending) < self._depth and self._next < self._end:
            length = min(self._block, self._end - self._next)
            request = SMB2ReadRequest()
            request["length"] = length
            request["offset"] = self._next
            request["file_id"] = handle.file_id
            request["padding"] = b"\x50"
            self._pending.append((session.send(request, tree, length), length))
            self._next += length

    def _read_blocking(self) -> bytes:
        if self._done:
            return b""
        try:
            self._fill()
            if not self._pending:
                self._done = True
                return b""
            request, wanted = self._pending.popleft()
            try:
                data = read_payload(self._file.session.receive(request))
            except EndOfFile:
                data = b""
            if len(data) < wanted:
                # The file ended early (it shrank since it was opened): stop here; the
                # engine compares the size it got with the size it was promised.
                self._done = True
                self._drain()
            else:
                self._fill()
            return data
        except TransferError:
            raise
        except Exception as exc:
            self._done = True
            raise self._file.fail(exc, "reading") from None

    def _drain(self) -> None:
        """Collect the responses still outstanding (so nothing is left on the session)."""
        while self._pending and not self._file.session.broken:
            request, _ = self._pending.popleft()
            try:
                self._file.session.receive(request)
            except Exception as exc:
                if connection_lost(exc):
                    self._file.on_lost(self._file.session)
                    break
        self._pending.clear()

    async def read(self) -> bytes:
        return await anyio.to_thread.run_sync(self._read_blocking)

    def _close_blocking(self) -> None:
        self._done = True
        self._drain()
        self._file.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_blocking)


class SmbWriteStream(WriteStream):
    """Writes from ``offset`` on with up to ``depth`` WRITEs outstanding."""

    def __init__(self, handle: _Handle, offset: int, block: int, depth: int) -> None:
        self._file = handle
        self._offset = offset
        self._block = block
        self._depth = depth
        self._pending: collections.deque[tuple[Any, int]] = collections.deque()
        self._finished = False
        self._failed: TransferError | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def in_flight(self) -> int:
        """WRITE requests sent and not yet acknowledged."""
        return len(self._pending)

    @property
    def block(self) -> int:
        """Bytes sent per WRITE at most."""
        return self._block

    def _reap_one(self) -> None:
        request, wanted = self._pending.popleft()
        response = self._file.session.receive(request)
        written = SMB2WriteResponse()
        written.unpack(response["data"].get_value())
        if int(written["count"].get_value()) < wanted:
            raise TransferError(f"{self._file.what}: the server wrote fewer bytes than sent "
                                "(is the share full?)")

    def _write_blocking(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        if self._finished:
            raise TransferError(f"{self._file.what}: write after the stream was finished")
        session, tree, handle = self._file.session, self._file.tree, self._file.handle
        view = memoryview(data)
        try:
            for start in range(0, len(data), self._block):
                piece = view[start:start + self._block]
                while len(self._pending) >= self._depth:
                    self._reap_one()
                request = SMB2WriteRequest()
                request["length"] = len(piece)
                request["offset"] = self._offset
                request["file_id"] = handle.file_id
                request["buffer"] = piece.tobytes() if len(piece) != len(data) else data
                self._pending.append((session.send(request, tree, len(piece)), len(piece)))
                self._offset += len(piece)
        except TransferError as exc:
            self._failed = exc
            raise
        except Exception as exc:
            self._failed = self._file.fail(exc, "writing")
            raise self._failed from None

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._write_blocking, data)

    def thread_writer(self) -> Callable[[bytes], None] | None:
        return self._write_blocking

    def _commit_blocking(self) -> None:
        try:
            if self._failed is not None:
                raise self._failed
            while self._pending:
                self._reap_one()
            session, tree, handle = self._file.session, self._file.tree, self._file.handle
            files._call(session, tree, handle.flush(send=False))
        except TransferError as exc:
            self._failed = exc
            self._abort_blocking()
            raise
        except Exception as exc:
            self._failed = self._file.fail(exc, "finishing the write")
            self._abort_blocking()
            raise self._failed from None
        self._finished = True
        self._file.close()

    def _abort_blocking(self) -> None:
        self._finished = True
        while self._pending and not self._file.session.broken:
            try:
                self._reap_one()
            except Exception as exc:
                if connection_lost(exc):
                    self._file.on_lost(self._file.session)
                    break
        self._pending.clear()
        self._file.close()

    async def commit(self) -> None:
        await anyio.to_thread.run_sync(self._commit_blocking)

    async def abort(self) -> None:
        if self._finished:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._abort_blocking)


__all__ = ["SmbReadStream", "SmbWriteStream", "read_payload"]
