"""The engine's data path (:func:`quorus.core.engine.pipeline.pump`): hashing and writing in
worker threads side by side, the hash of exactly the bytes written in order, bounded memory,
failures surfacing as themselves and cancellation stopping both threads."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from quorus.core.engine.pipeline import Lanes, pump
from quorus.core.errors import TransferError, TransientError
from quorus.core.protocol import ReadStream, WriteStream
from quorus.core.protocols.file import FileProtocol
from quorus.core.uri import parse_location

pytestmark = pytest.mark.anyio


class ChunkReader(ReadStream):
    """Hands out the given chunks, then fails with ``fail`` (if given) or ends."""

    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self._chunks = list(chunks)
        self._fail = fail
        self.read_count = 0

    async def read(self) -> bytes:
        await anyio.lowlevel.checkpoint()
        if self._chunks:
            self.read_count += 1
            return self._chunks.pop(0)
        if self._fail is not None:
            raise self._fail
        return b""

    async def aclose(self) -> None:
        pass


class AsyncWriter(WriteStream):
    """An asynchronous writer (network destinations have no thread writer)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._finished = False

    async def write(self, data: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        self.chunks.append(data)

    async def commit(self) -> None:
        self._finished = True

    async def abort(self) -> None:
        self._finished = True

    @property
    def finished(self) -> bool:
        return self._finished


class RecordingWriter(AsyncWriter):
    """Writes with blocking calls into a list; ``on_write`` runs first in the writing thread."""

    def __init__(self, on_write: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.threads: set[int] = set()
        self._on_write = on_write

    def _write(self, data: bytes) -> None:
        self.threads.add(threading.get_ident())
        if self._on_write is not None:
            self._on_write(len(self.chunks))
        self.chunks.append(data)

    def thread_writer(self) -> Callable[[bytes], None]:
        return self._write

    async def write(self, data: bytes) -> None:
        raise AssertionError("a writer with a thread_writer is written from a thread")


def make_chunks(count: int, size: int = 64 * 1024) -> list[bytes]:
    return [os.urandom(size - (i % 7)) for i in range(count)]


async def test_hash_is_of_the_bytes_written_in_order() -> None:
    chunks = make_chunks(200)
    writer = RecordingWriter()
    hasher = hashlib.sha256()
    sizes: list[int] = []
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def on_chunk(size: int) -> None:
        sizes.append(size)
        threads.append(threading.get_ident())

    moved = await pump(ChunkReader(chunks), hasher, writer=writer, on_chunk=on_chunk, depth=3)
    data = b"".join(chunks)
    assert moved == len(data)
    assert b"".join(writer.chunks) == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    # Progress reports every chunk, in order, from the event loop's thread.
    assert sizes == [len(c) for c in chunks]
    assert set(threads) == {loop_thread}
    # The write ran in one thread, not the event loop's.
    assert len(writer.threads) == 1 and loop_thread not in writer.threads


async def test_hashing_and_writing_run_at_the_same_time() -> None:
    # The write of a chunk waits until the hash of a later chunk has run: only possible when
    # hashing does not wait for the write (one thread doing both would never finish).
    chunks = make_chunks(6)
    hashed = threading.Event()

    class Hasher:
        def __init__(self) -> None:
            self.inner = hashlib.sha256()
            self.count = 0

        def update(self, data: bytes) -> None:
            self.inner.update(data)
            self.count += 1
            if self.count == 3:
                hashed.set()

    def wait_for_hash(index: int) -> None:
        if index == 0 and not hashed.wait(timeout=10):
            raise AssertionError("the third chunk was not hashed while the first was written")

    hasher = Hasher()
    writer = RecordingWriter(wait_for_hash)
    with anyio.fail_after(20):
        await pump(ChunkReader(chunks), hasher, writer=writer)  # type: ignore[arg-type]
    assert hasher.inner.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert writer.chunks == chunks


async def test_memory_is_bounded_by_the_depth() -> None:
    # A stalled writer: the reader may only get ``depth`` chunks ahead (plus the one it holds).
    release = threading.Event()

    def stall(index: int) -> None:
        release.wait(timeout=10)

    reader = ChunkReader(make_chunks(100, 1024))
    writer = RecordingWriter(stall)

    async def watch() -> None:
        await anyio.sleep(0.3)
        assert reader.read_count <= 4 + 1
        release.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await pump(reader, hashlib.sha256(), writer=writer, depth=4)
    assert len(writer.chunks) == 100


async def test_a_failed_write_surfaces_as_itself_and_stops_the_reader() -> None:
    def fail_at_five(index: int) -> None:
        if index == 5:
            raise TransferError("disk full (injected)")

    reader = ChunkReader(make_chunks(1000, 1024))
    writer = RecordingWriter(fail_at_five)
    with pytest.raises(TransferError, match="disk full"):
        await pump(reader, hashlib.sha256(), writer=writer, depth=4)
    assert len(writer.chunks) == 5
    assert reader.read_count < 1000


async def test_a_failed_source_still_writes_what_was_read_before() -> None:
    chunks = make_chunks(10)
    writer = RecordingWriter()
    hasher = hashlib.sha256()
    with pytest.raises(TransientError, match="reset"):
        await pump(ChunkReader(chunks, TransientError("connection reset (injected)")), hasher,
                   writer=writer)
    # Everything read before the failure is written, so a retry resumes after it.
    assert writer.chunks == chunks


async def test_cancellation_stops_both_threads_promptly() -> None:
    cancelled = threading.Event()
    written_after: list[int] = []
    hashed_after: list[int] = []

    def slow_write(index: int) -> None:
        if cancelled.is_set():
            written_after.append(index)
        time.sleep(0.02)

    class SlowHasher:
        def update(self, data: bytes) -> None:
            if cancelled.is_set():
                hashed_after.append(len(data))
            time.sleep(0.02)

    writer = RecordingWriter(slow_write)
    scopes: list[anyio.CancelScope] = []

    async def run() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await pump(ChunkReader(make_chunks(10_000, 1024)), SlowHasher(),  # type: ignore[arg-type]
                       writer=writer, depth=8)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await anyio.sleep(0.3)
        cancelled.set()
        began = time.monotonic()
        scopes[0].cancel()
    # pump returned only once both threads had ended, and neither worked through the chunks
    # still queued (eight, 0.16 s each) after the cancellation: at most the one in hand.
    assert time.monotonic() - began < 1.0
    assert len(written_after) <= 2 and len(hashed_after) <= 2
    assert 0 < len(writer.chunks) < 100


async def test_hash_only_and_asynchronous_writers() -> None:
    chunks = make_chunks(30)
    data = b"".join(chunks)
    hasher = hashlib.sha256()
    sizes: list[int] = []
    assert await pump(ChunkReader(chunks), hasher, on_chunk=sizes.append) == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sum(sizes) == len(data)

    writer = AsyncWriter()
    hasher = hashlib.sha256()
    sizes = []
    await pump(ChunkReader(chunks), hasher, writer=writer, on_chunk=sizes.append)
    assert writer.chunks == chunks
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sizes == [len(c) for c in chunks]


async def test_file_destination(tmp_path: Path) -> None:
    chunks = make_chunks(40, 256 * 1024)
    target = parse_location(str(tmp_path / "out.bin"))
    hasher = hashlib.sha256()
    async with await FileProtocol().open_write(target, 0) as writer:
        await pump(ChunkReader(chunks), hasher, writer=writer)
        await writer.commit()
    data = (tmp_path / "out.bin").read_bytes()
    assert data == b"".join(chunks)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1, not 0"):
        Lanes([hashlib.sha256().update], 0)
