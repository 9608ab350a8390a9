"""The data path of one transfer: read chunks, then hash and write them, overlapped.

The event loop reads chunks from the source and hands each one, an immutable ``bytes``, to
the consuming stages; the reading of the next chunks goes on while they work:

- SHA-256 runs in a worker thread of its own (hashlib releases the GIL for large buffers).
- A destination that writes with blocking calls (:meth:`WriteStream.thread_writer`, e.g.
  local files) is written from a second worker thread (``os.write`` releases the GIL too),
  so hashing chunk *n* and writing chunk *n* (or *n - 1*) proceed at the same time instead
  of one after the other: the slower of the two, not their sum, bounds the throughput.
  Otherwise (network destinations) the asynchronous write runs as a task beside the hashing.

Each worker thread takes its chunks from a queue of its own, in order, so the hash is of
exactly the bytes written, in the order written. At most ``depth`` chunks are in flight (read
and not yet both hashed and written), whatever the file's size: when the window is full the
reader waits until half of it has drained (one wake-up for several chunks, not one per
chunk). A worker thread loops over its queue rather than being handed each chunk by a
separate thread call, which keeps the per-chunk cost to a queue put and get.

The first failure of a consuming stage stops the others: the reader is cancelled, the worker
threads drop what is still queued and return after the chunk in hand, and the failure
propagates. A failure of the source lets the stages finish the chunks already read (they are
good, and a retry resumes after them) before it propagates; cancellation stops at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream
from quorus.core.engine.ratelimit import RateLimiter
from quorus.core.protocol import ReadStream, WriteStream

#: Chunks in flight per transfer. With 1 MiB chunks this caps buffered data near 8 MiB.
DEFAULT_DEPTH = 8

_END: Final = None


class Lanes:
    """Worker-thread stages fed the same chunks in order, at most ``depth`` chunks in flight.

    The event loop calls :meth:`put` (after :meth:`full` said there is room, or after
    :meth:`wait_for_room` in a worker thread), then :meth:`finish` when the input ended or
    :meth:`abort` when the pipeline is being torn down; each stage runs :meth:`run` in a
    thread of its own.
    """

    def __init__(self, works: list[Callable[[bytes], None]], depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._works = works
        self._queues: list[queue.SimpleQueue[bytes | None]] = [queue.SimpleQueue() for _ in works]
        #: Chunks each stage has finished; only that stage's thread increases its entry.
        self.done = [0] * len(works)
        self._sent = 0
        self._depth = depth
        #: The reader, once blocked on a full window, resumes when this many or fewer remain.
        self._resume_at = depth - max(1, depth // 2)
        self._cond = threading.Condition(threading.Lock())
        self._waiting = False
        self.aborted = False

    def _in_flight(self) -> int:
        return self._sent - min(self.done)

    def full(self) -> bool:
        """True when the window is full (a stale answer errs on the side of full)."""
        return self._in_flight() >= self._depth

    def put(self, chunk: bytes) -> None:
        with self._cond:
            self._sent += 1
        for lane in self._queues:
            lane.put(chunk)

    def wait_for_room(self) -> None:
        """Block (in a worker thread) until half the window drained or the lanes stopped."""
        with self._cond:
            self._waiting = True
            try:
                while not self.aborted and self._in_flight() > self._resume_at:
                    self._cond.wait()
            finally:
                self._waiting = False

    def finish(self) -> None:
        """No more chunks: each stage returns once it has worked through its queue."""
        for lane in self._queues:
            lane.put(_END)

    def abort(self) -> None:
        """Stop: stages drop what is still queued and return after the chunk in hand."""
        with self._cond:
            self.aborted = True
            self._cond.notify_all()
        self.finish()

    def run(self, index: int) -> None:
        """Stage ``index``'s thread: work through its queue in order until the end."""
        lane, work, cond = self._queues[index], self._works[index], self._cond
        try:
            while (chunk := lane.get()) is not _END and not self.aborted:
                work(chunk)
                with cond:
                    self.done[index] += 1
                    if self._waiting and self._in_flight() <= self._resume_at:
                        cond.notify()
        except BaseException:
            self.abort()
            raise


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

    ``on_chunk`` is called (in the event loop's thread) with each chunk's size once it is
    written (or, without a writer, hashed): progress accounting. The first failure of any
    side stops the others and propagates as itself, not wrapped in an exception group.
    """
    thread_write = writer.thread_writer() if writer is not None else None
    works: list[Callable[[bytes], None]] = [hasher.update]
    if thread_write is not None:
        works.append(thread_write)
    lanes = Lanes(works, depth)
    # Progress follows the writing lane (or the hashing lane when nothing is written); an
    # asynchronous writer reports its own.
    reported_here = writer is None or thread_write is not None
    progress = _Progress(lanes, len(works) - 1, on_chunk) if reported_here else None
    async_writer = writer if thread_write is None else None
    total = 0
    try:
        async with anyio.create_task_group() as tg:
            send: MemoryObjectSendStream[bytes] | None = None
            if async_writer is not None:
                send, receive = anyio.create_memory_object_stream[bytes](depth)
                tg.start_soon(_write_stage, async_writer, receive, on_chunk)
            with send if send is not None else contextlib.nullcontext():
                # Every way out of the try below ends the lanes (finish or abort).
                for index in range(len(works)):
                    tg.start_soon(_run_lane, lanes, index)
                try:
                    total = await _read_loop(reader, lanes, send, limiter, progress)
                except Exception:
                    # The source failed: what was read before is good, so the lanes still
                    # write (and hash) it, which a retry then resumes after.
                    lanes.finish()
                    raise
                except BaseException:  # cancelled: stop at once
                    lanes.abort()
                    raise
                lanes.finish()
    except BaseExceptionGroup as group:
        # The first side to fail stops the others; callers want that failure itself.
        raise first_error(group) from None
    if progress is not None:
        progress.report()
    return total


class _Progress:
    """Calls ``on_chunk`` in the event loop for chunks the lane ``index`` has finished."""

    def __init__(
        self, lanes: Lanes, index: int, on_chunk: Callable[[int], None] | None
    ) -> None:
        self._lanes = lanes
        self._index = index
        self._on_chunk = on_chunk
        self._sizes: deque[int] = deque()
        self._reported = 0

    def sent(self, size: int) -> None:
        if self._on_chunk is not None:
            self._sizes.append(size)

    def report(self) -> None:
        on_chunk = self._on_chunk
        if on_chunk is None:
            return
        done = self._lanes.done[self._index]
        while self._reported < done and self._sizes:
            self._reported += 1
            on_chunk(self._sizes.popleft())


async def _run_lane(lanes: Lanes, index: int) -> None:
    # A limiter of its own: a lane holds its thread for the whole transfer and must not take
    # a token of the shared default limiter that reads and writes elsewhere wait for.
    # Shielded: a lane ends when told (finish or abort, which every exit of the reader does),
    # so chunks already read when the source fails are still written, even if this task
    # had not started yet.
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(lanes.run, index, limiter=anyio.CapacityLimiter(1))


async def _write_stage(
    writer: WriteStream,
    chunks: ObjectReceiveStream[bytes],
    on_chunk: Callable[[int], None] | None,
) -> None:
    async with chunks:
        async for chunk in chunks:
            await writer.write(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))


async def _read_loop(
    reader: ReadStream,
    lanes: Lanes,
    send: MemoryObjectSendStream[bytes] | None,
    limiter: RateLimiter | None,
    progress: _Progress | None,
) -> int:
    total = 0
    waiter = anyio.CapacityLimiter(1)
    while chunk := await reader.read():
        if limiter is not None:
            await limiter.consume(len(chunk))
        total += len(chunk)
        if lanes.full():
            # Abandoned on cancellation: the aborted lanes wake the thread, which then ends.
            await anyio.to_thread.run_sync(
                lanes.wait_for_room, limiter=waiter, abandon_on_cancel=True
            )
            if lanes.aborted:  # a lane failed: its error is what the task group raises
                break
        if progress is not None:
            progress.sent(len(chunk))
        lanes.put(chunk)
        if progress is not None:
            progress.report()
        if send is not None:
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


__all__ = ["DEFAULT_DEPTH", "Lanes", "first_error", "pump"]
