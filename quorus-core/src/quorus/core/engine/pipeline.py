"""The data path of one transfer: read chunks, then write and hash them, overlapped.

A reader task pulls chunks from the source into bounded queues drained by the consuming
stages, so memory stays bounded by ``depth`` chunks per queue whatever the file's size, and
SHA-256 (in a worker thread; hashlib releases the GIL for large buffers) never waits for the
whole file nor holds up the reading of the next chunks.

The consuming stages take one of two shapes:

- The destination writes with blocking calls (:meth:`WriteStream.thread_writer`, e.g. local
  files): one worker-thread call per chunk writes it and then hashes it, while the event loop
  reads the next chunks. Measured on a 2-core machine, 1 GiB from a loopback socket to a file
  took 1.02 s this way against 1.27 s with writing and hashing in two threads side by side
  (medians of 5; the kernel work of the write competes badly with a third busy thread).
- Otherwise (network destinations), hashing and the asynchronous write run side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream
from quorus.core.engine.ratelimit import RateLimiter
from quorus.core.protocol import ReadStream, WriteStream

#: Chunks queued per consuming stage. With 1 MiB chunks this caps buffered data near 8 MiB.
DEFAULT_DEPTH = 4

Stage = Callable[[ObjectReceiveStream[bytes]], Coroutine[Any, Any, None]]


async def pump(
    reader: ReadStream,
    hasher: hashlib._Hash,
    *,
    writer: WriteStream | None = None,
    on_chunk: Callable[[int], None] | None = None,
    limiter: RateLimiter | None = None,
    depth: int = DEFAULT_DEPTH,
) -> int:
    """Copy ``reader`` into ``writer`` (if any) while feeding ``hasher``; return the bytes moved.

    ``on_chunk`` is called with each chunk's size once it is written (or, without a writer,
    hashed): progress accounting. The first failure of any side cancels the others and
    propagates as itself, not wrapped in an exception group.
    """
    stages = _stages(hasher, writer, on_chunk)
    total = 0
    try:
        async with anyio.create_task_group() as tg:
            sends: list[MemoryObjectSendStream[bytes]] = []
            for stage in stages:
                send, receive = anyio.create_memory_object_stream[bytes](depth)
                sends.append(send)
                tg.start_soon(stage, receive)
            with contextlib.ExitStack() as closing:
                for queue in sends:
                    closing.enter_context(queue)
                total = await _read_loop(reader, sends, limiter)
    except BaseExceptionGroup as group:
        # The first side to fail cancels the others; callers want that failure itself.
        raise first_error(group) from None
    return total


def _stages(
    hasher: hashlib._Hash,
    writer: WriteStream | None,
    on_chunk: Callable[[int], None] | None,
) -> list[Stage]:
    worker = anyio.CapacityLimiter(1)  # one thread per stage keeps chunks in order
    thread_write = writer.thread_writer() if writer is not None else None
    if writer is None or thread_write is not None:

        def write_and_hash(chunk: bytes) -> None:
            if thread_write is not None:
                thread_write(chunk)
            hasher.update(chunk)

        async def write_and_hash_stage(chunks: ObjectReceiveStream[bytes]) -> None:
            async with chunks:
                async for chunk in chunks:
                    await anyio.to_thread.run_sync(write_and_hash, chunk, limiter=worker)
                    if on_chunk is not None:
                        on_chunk(len(chunk))

        return [write_and_hash_stage]

    async def hash_stage(chunks: ObjectReceiveStream[bytes]) -> None:
        async with chunks:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(hasher.update, chunk, limiter=worker)

    async def write_stage(chunks: ObjectReceiveStream[bytes]) -> None:
        async with chunks:
            async for chunk in chunks:
                await writer.write(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))

    return [hash_stage, write_stage]


async def _read_loop(
    reader: ReadStream, sends: list[MemoryObjectSendStream[bytes]], limiter: RateLimiter | None
) -> int:
    total = 0
    while chunk := await reader.read():
        if limiter is not None:
            await limiter.consume(len(chunk))
        total += len(chunk)
        for send in sends:
            await send.send(chunk)
    return total


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in ``group`` that is not a cancellation, else the first one."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    cancelled = anyio.get_cancelled_exc_class()
    return next((exc for exc in leaves if not isinstance(exc, cancelled)), leaves[0])


__all__ = ["DEFAULT_DEPTH", "first_error", "pump"]
