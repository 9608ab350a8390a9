"""Reading one large file as several ranged streams at once, delivered in order.

Some sources serve one stream slower than the link allows: a single SSH channel is bound by
one core's cipher, a single TCP connection by its window on a long path. A
:class:`StripedReader` splits the rest of the file into stripes (8 MiB by default) and keeps
up to ``streams`` ranged reads of them in flight, each on its own ``open_read(offset, length)``.
It yields the bytes strictly in file order, so the engine still writes sequentially and still
computes one SHA-256 of the whole file as it goes: nothing about verification or resume changes.

Memory is bounded: a stripe is only started when one of the ``streams`` slots is free, and a
slot is freed when the consumer has taken the whole of its stripe, so at most ``streams *
stripe_size`` bytes are buffered.

A stripe that fails raises its error when the consumer reaches it (data before it is good and
already written, so a retry resumes from there); a stripe whose source reports another size,
mtime or etag than the first raises :class:`~quorus.core.errors.SourceChangedError`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from quorus.core.errors import SourceChangedError, TransientError
from quorus.core.protocol import FileInfo, ReadStream, TransferProtocol
from quorus.core.uri import Location

DEFAULT_STRIPE_SIZE = 8 * 1024 * 1024


@dataclass(eq=False)
class _Stripe:
    start: int
    length: int
    chunks: deque[bytes] = field(default_factory=deque)
    received: int = 0
    done: bool = False
    error: BaseException | None = None
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.arrived.set()


def _same_version(a: FileInfo, b: FileInfo) -> bool:
    return all(
        x is None or y is None or x == y
        for x, y in ((a.size, b.size), (a.mtime, b.mtime), (a.etag, b.etag))
    )


class StripedReader(ReadStream):
    """A :class:`ReadStream` over ``[offset, size)`` of one file, read by several ranged
    streams; use as ``async with`` (it runs its stream tasks inside)."""

    def __init__(
        self,
        protocol: TransferProtocol,
        location: Location,
        info: FileInfo,
        offset: int,
        *,
        streams: int,
        stripe_size: int = DEFAULT_STRIPE_SIZE,
    ) -> None:
        if info.size is None:
            raise ValueError("a striped read needs the source's size")
        if streams < 1 or stripe_size < 1:
            raise ValueError("streams and stripe_size must be positive")
        self.info = info
        self._protocol = protocol
        self._location = location
        self._size = info.size
        self._streams = streams
        self._stripe_size = stripe_size
        self._next_start = offset
        self._stripes: deque[_Stripe] = deque()
        self._slots = anyio.Semaphore(streams)
        self._task_group: TaskGroup | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._dispatch, self._task_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)

    async def _dispatch(self, task_group: TaskGroup) -> None:
        """Start a stripe whenever a slot is free, until the whole range is claimed."""
        while self._next_start < self._size:
            await self._slots.acquire()
            start = self._next_start
            length = min(self._stripe_size, self._size - start)
            self._next_start += length
            stripe = _Stripe(start, length)
            self._stripes.append(stripe)
            task_group.start_soon(self._fetch, stripe)

    async def _fetch(self, stripe: _Stripe) -> None:
        try:
            async with await self._protocol.open_read(
                self._location, stripe.start, stripe.length
            ) as stream:
                if not _same_version(self.info, stream.info):
                    raise SourceChangedError(
                        f"source {self._location.redacted()} changed during a striped read"
                    )
                while stripe.received < stripe.length:
                    chunk = await stream.read()
                    if not chunk:
                        raise TransientError(
                            f"{self._location.redacted()}: range at {stripe.start} ended after "
                            f"{stripe.received} of {stripe.length} bytes"
                        )
                    over = stripe.received + len(chunk) - stripe.length
                    if over > 0:
                        chunk = chunk[: len(chunk) - over]
                    stripe.chunks.append(chunk)
                    stripe.received += len(chunk)
                    stripe.wake()
        except Exception as exc:
            stripe.error = exc
        finally:
            stripe.done = True
            stripe.wake()

    async def read(self) -> bytes:
        while True:
            if not self._stripes:
                if self._next_start >= self._size:
                    return b""
                # The dispatcher has not started the next stripe yet.
                await anyio.lowlevel.checkpoint()
                continue
            stripe = self._stripes[0]
            if stripe.chunks:
                return stripe.chunks.popleft()
            if stripe.error is not None:
                raise stripe.error
            if stripe.done:
                self._stripes.popleft()
                self._slots.release()
                continue
            await stripe.arrived.wait()
            stripe.arrived = anyio.Event()





#: Files (the part still to move) smaller than this are read as one stream.
DEFAULT_CUTOFF = 64 * 1024 * 1024


async def open_source(
    protocol: TransferProtocol,
    location: Location,
    info: FileInfo,
    offset: int,
    *,
    streams: int | None = None,
    cutoff: int = DEFAULT_CUTOFF,
    stripe_size: int = DEFAULT_STRIPE_SIZE,
) -> ReadStream:
    """The stream to read ``location`` from ``offset``: striped when the protocol serves ranged
    reads, the rest of the file is at least ``cutoff`` bytes and more than one stream is asked
    for (``streams``, by default the protocol's ``max_streams``); otherwise one plain stream."""
    caps = protocol.capabilities(location)
    wanted = caps.max_streams if streams is None else streams
    remaining = None if info.size is None else info.size - offset
    if wanted > 1 and caps.ranged_read and remaining is not None and remaining >= cutoff:
        return StripedReader(
            protocol, location, info, offset, streams=wanted, stripe_size=stripe_size
        )
    return await protocol.open_read(location, offset)
__all__ = ["DEFAULT_CUTOFF", "DEFAULT_STRIPE_SIZE", "StripedReader", "open_source"]
