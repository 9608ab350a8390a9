"""The data path of one transfer: read chunks, hash them and write them, all overlapped.

A reader task pulls chunks from the source and fans each out to two bounded queues: one
drained by a hashing task (SHA-256 in a worker thread; hashlib releases the GIL for large
buffers) and one drained by the writer. Hashing therefore runs alongside network and disk I/O
instead of after it, and memory stays bounded by ``depth`` chunks per queue whatever the
file's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from quorus.core.engine.ratelimit import RateLimiter
from quorus.core.protocol import ReadStream, WriteStream

#: Chunks queued per consumer. With 1 MiB chunks this caps buffered data near 2 x 4 MiB.
DEFAULT_DEPTH = 4
#: Hash small chunks on the event loop: a thread hop costs more than hashing them.
_INLINE_HASH_LIMIT = 64 * 1024


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

    ``on_chunk`` is called with each chunk's size once it is written (progress accounting).
    The first failure of any side cancels the others and propagates.
    """
    total = 0
    hash_send, hash_recv = anyio.create_memory_object_stream[bytes](depth)
    write_send: ObjectSendStream[bytes] | None = None
    write_recv: ObjectReceiveStream[bytes] | None = None
    if writer is not None:
        write_send, write_recv = anyio.create_memory_object_stream[bytes](depth)

    async def hash_loop() -> None:
        hash_limiter = anyio.CapacityLimiter(1)
        async with hash_recv:
            async for chunk in hash_recv:
                if len(chunk) <= _INLINE_HASH_LIMIT:
                    hasher.update(chunk)
                else:
                    await anyio.to_thread.run_sync(hasher.update, chunk, limiter=hash_limiter)

    async def write_loop(recv: ObjectReceiveStream[bytes], out: WriteStream) -> None:
        async with recv:
            async for chunk in recv:
                await out.write(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hash_loop)
            if writer is not None and write_recv is not None:
                tg.start_soon(write_loop, write_recv, writer)
            async with hash_send:
                if write_send is not None:
                    async with write_send:
                        total = await _read_loop(reader, hash_send, write_send, limiter)
                else:
                    total = await _read_loop(reader, hash_send, None, limiter, on_chunk)
    except BaseExceptionGroup as group:
        # The first side to fail cancels the others; callers want that failure itself.
        raise first_error(group) from None
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


async def _read_loop(
    reader: ReadStream,
    hash_send: ObjectSendStream[bytes],
    write_send: ObjectSendStream[bytes] | None,
    limiter: RateLimiter | None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    total = 0
    while True:
        chunk = await reader.read()
        if not chunk:
            return total
        if limiter is not None:
            await limiter.consume(len(chunk))
        total += len(chunk)
        await hash_send.send(chunk)
        if write_send is not None:
            await write_send.send(chunk)
        elif on_chunk is not None:
            on_chunk(len(chunk))


__all__ = ["DEFAULT_DEPTH", "first_error", "pump"]
