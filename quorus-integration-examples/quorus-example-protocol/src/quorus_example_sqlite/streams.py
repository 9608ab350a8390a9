"""The read and write streams of the ``sqlite`` protocol.

Both move at most one block per database call, so memory stays bounded by the block size
whatever the file's size, and each call is one short transaction that never holds the
database's write lock across an ``await``.
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from quorus.core import FileInfo, ReadStream, TransferError, WriteStream

from quorus_example_sqlite.store import Entry, SqliteStore

log = logging.getLogger(__name__)


class SqliteReadStream(ReadStream):
    """Reads ``[offset, offset + length)`` of one version of a file, a block at a time.

    If the file is rewritten or deleted while it is read, :meth:`read` raises
    :class:`~quorus.core.SourceChangedError` rather than mixing two versions.
    """

    def __init__(
        self,
        store: SqliteStore,
        entry: Entry,
        info: FileInfo,
        offset: int,
        length: int | None,
        chunk_size: int,
    ) -> None:
        self.info = info
        self._store = store
        self._entry = entry
        self._position = offset
        self._end = entry.size if length is None else min(entry.size, offset + length)
        self._chunk_size = chunk_size
        self._closed = False

    async def read(self) -> bytes:
        if self._closed or self._position >= self._end:
            return b""
        limit = min(self._chunk_size, self._end - self._position)
        data = await anyio.to_thread.run_sync(
            self._store.read,
            self._entry.id,
            self._entry.version,
            self._position,
            limit,
            self._entry.path,
        )
        self._position += len(data)
        return data

    async def aclose(self) -> None:
        self._closed = True


class SqliteWriteStream(WriteStream):
    """Appends to a file in blocks of ``block_size`` bytes.

    Bytes are visible (and durable) block by block as they are written, like a file on disk:
    the engine writes to a partial name and renames it into place after verification, and an
    aborted partial keeps its bytes so the next attempt can resume. Less than a block is
    buffered until it fills, or until :meth:`commit` or :meth:`abort`.
    """

    def __init__(self, store: SqliteStore, entry: Entry, block_size: int) -> None:
        self._store = store
        self._file_id = entry.id
        self._path = entry.path
        self._position = entry.size
        self._block_size = block_size
        self._pending = bytearray()
        self._finished = False
        # After a failed block, later bytes must never be stored: they would land at the
        # wrong offset and a resumed transfer would trust a damaged partial file.
        self._broken = False

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        if self._finished or self._broken:
            raise TransferError(f"cannot write {self._store.uri(self._path)}: the stream is closed")
        view = memoryview(data)
        while len(self._pending) + len(view) >= self._block_size:
            take = self._block_size - len(self._pending)
            if self._pending:
                self._pending += view[:take]
                block: bytes | memoryview = bytes(self._pending)
                self._pending.clear()
            else:
                # Nothing buffered: store a slice of the caller's chunk without copying it.
                block = view[:take]
            view = view[take:]
            await self._store_block(block)
        self._pending += view

    async def _store_block(self, block: bytes | memoryview) -> None:
        try:
            await anyio.to_thread.run_sync(
                self._store.append, self._file_id, self._position, block, self._path
            )
        except BaseException:
            self._broken = True
            raise
        self._position += len(block)

    async def _flush(self) -> None:
        if self._pending:
            block = bytes(self._pending)
            self._pending.clear()
            await self._store_block(block)

    async def commit(self) -> None:
        if self._finished:
            raise TransferError(
                f"cannot commit {self._store.uri(self._path)}: the stream is already finished"
            )
        self._finished = True
        if self._broken:
            raise TransferError(
                f"cannot commit {self._store.uri(self._path)}: an earlier write failed"
            )
        # Each stored block was its own durable transaction (synchronous=FULL), so storing
        # the buffered tail is all that is left to make the file complete.
        await self._flush()

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._broken:
            return
        # Keep what was written for a resumed attempt. Shielded: abort often runs because the
        # transfer is being cancelled, and the buffered tail is at most one block.
        with anyio.CancelScope(shield=True):
            try:
                await self._flush()
            except TransferError as exc:
                # The file keeps the blocks stored before; a resume starts from its real size.
                log.warning("abort of %s could not keep its last block: %s",
                            self._store.uri(self._path), exc)


__all__ = ["SqliteReadStream", "SqliteWriteStream"]
