"""Streaming uploads: a :class:`WriteStream` whose bytes become the body of one PUT or POST.

The request runs in a task of its own, pulling its body from a bounded memory channel that
:meth:`HttpWriteStream.write` feeds, so memory stays at a few chunks whatever the file size.
The last chunk written is held back until :meth:`~HttpWriteStream.commit`: the server sees the
end of the body only on commit, and an :meth:`~HttpWriteStream.abort` (which cancels the
request) always leaves it with an incomplete request it discards, never a complete file.

The request task lives in a task group entered by :meth:`HttpWriteStream.start` and left by
commit or abort, so those must run in the task that opened the stream, in last-in first-out
order with its other cancel scopes (``async with await protocol.open_write(...)`` does this);
:meth:`~HttpWriteStream.write` may be called from any task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
from anyio.abc import TaskGroup
from quorus.core.errors import TransferError, TransientError
from quorus.core.protocol import WriteStream
from quorus.protocols.http.errors import status_error, transport_error

#: Chunks queued between the writer and the request; with 1 MiB writes about 4 MiB in flight.
QUEUE_DEPTH = 2


class HttpWriteStream(WriteStream):
    """One upload in progress. Create with :meth:`start`.

    ``what`` is the redacted URI for messages; ``receive`` is the end of the channel the
    request body reads from.
    """

    def __init__(self, client: httpx.AsyncClient, method: str, url: str, *, what: str,
                 size_hint: int | None, auth: httpx.Auth | None) -> None:
        self._client = client
        self.what = what
        self._size_hint = size_hint
        self._auth = auth
        self._send, self.receive = anyio.create_memory_object_stream[bytes](QUEUE_DEPTH)
        self._request = client.build_request(method, url)
        if size_hint is None:
            self._request.headers.pop("Content-Length", None)
            self._request.headers["Transfer-Encoding"] = "chunked"
        else:
            self._request.headers["Content-Length"] = str(size_hint)
        self._request.stream = _UploadBody(self)
        self._task_group: TaskGroup | None = None
        self._scope = anyio.CancelScope()
        self._status: int | None = None
        self._error: TransferError | None = None
        self._written = 0
        self._committed = False
        self._finished = False

    @classmethod
    async def start(
        cls,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        what: str,
        size_hint: int | None,
        auth: httpx.Auth | None,
    ) -> HttpWriteStream:
        """Start the request and return a stream that feeds its body."""
        stream = cls(client, method, url, what=what, size_hint=size_hint, auth=auth)
        if size_hint != 0:
            # An empty body is complete as soon as the headers are sent; such a request
            # starts at commit, so that an abort never creates an empty file.
            await stream._launch()
        return stream

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise TransferError(f"cannot upload to {self.what}: the stream is already closed")
        if not data:
            return
        if self._size_hint is not None and self._written + len(data) > self._size_hint:
            # Not aborted here: write() may run in another task than the one that owns the
            # request's task group; the owner aborts (leaving `async with` does).
            # Retryable: a source that grew while it was read is re-examined next attempt.
            raise TransferError(
                f"cannot upload to {self.what}: more than the {self._size_hint} bytes "
                "announced were written (did the source grow?)",
                retryable=True,
            )
        try:
            await self._send.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The request ended before its body did: the server answered early or went away.
            raise self._failure() from None
        self._written += len(data)

    async def commit(self) -> None:
        if self._finished:
            raise TransferError(f"cannot commit the upload to {self.what}: already finished")
        if self._size_hint is not None and self._written != self._size_hint:
            await self.abort()
            raise TransferError(
                f"cannot upload to {self.what}: {self._written} bytes written but "
                f"{self._size_hint} announced; the upload was abandoned"
            )
        self._committed = self._finished = True
        if self._task_group is None:
            await self._launch()
        self._send.close()  # ends the body; the request task then reads the response
        await self._join()
        if self._status is None or not 200 <= self._status < 300:
            raise self._failure()

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        # Cancelling mid-body makes httpx drop the connection: the server sees a truncated
        # request (the held-back last chunk was never sent) and stores nothing.
        self._scope.cancel()
        self._send.close()
        await self._join()

    async def _launch(self) -> None:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._run)

    async def _join(self) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            await task_group.__aexit__(None, None, None)
        self.receive.close()  # the request task closes it too, if there ever was one

    def _failure(self) -> TransferError:
        if self._error is not None:
            return self._error
        return TransientError(f"cannot upload to {self.what}: the request ended unexpectedly")

    async def _run(self) -> None:
        """The request task. It never raises: failures are kept for write() and commit()."""
        with self._scope:
            try:
                # No redirects: a streamed body cannot be sent a second time.
                response = await self._client.send(
                    self._request,
                    auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                    stream=True,
                    follow_redirects=False,
                )
                try:
                    self._status = response.status_code
                    if not 200 <= response.status_code < 300:
                        self._error = status_error(response, "upload to", self.what)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                self._error = transport_error(exc, "upload to", self.what)
            except TransferError as exc:
                self._error = exc
            finally:
                self.receive.close()  # wakes a writer blocked on a full queue

    @property
    def committed(self) -> bool:
        return self._committed


class _UploadBody(httpx.AsyncByteStream):
    """The request body: the chunks written, the last one held back until commit.

    A class rather than an async generator: a request that ends early (the server answered,
    the upload was aborted) then leaves no suspended generator for the garbage collector,
    which trio would report as a ResourceWarning.
    """

    def __init__(self, upload: HttpWriteStream) -> None:
        self._upload = upload
        self._held: bytes | None = None
        self._ended = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._ended:
            try:
                chunk = await self._upload.receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._ended = True
                if not self._upload.committed:
                    # The channel closed without a commit: the body must never be completed.
                    raise TransferError(
                        f"upload to {self._upload.what} abandoned before commit"
                    ) from None
                break
            held, self._held = self._held, chunk
            if held is not None:
                return held
        if self._held is None:
            raise StopAsyncIteration
        held, self._held = self._held, None
        return held


__all__ = ["QUEUE_DEPTH", "HttpWriteStream"]
