"""Read and write streams over one FTP data connection, each holding a pooled control
connection until the server's final reply has been read."""

from __future__ import annotations

import contextlib

import aioftp
import anyio
from quorus.core.errors import TransferError, TransientError
from quorus.core.protocol import FileInfo, ReadStream, WriteStream
from quorus.core.uri import Location
from quorus.protocols.ftp.data import DataSocket
from quorus.protocols.ftp.errors import for_exception, for_reply, reply_of
from quorus.protocols.ftp.pool import Connection, ConnectionPool

#: Replies that may end a transfer the client cut short: 226 when the server had already
#: sent everything, 426/451 when it noticed the closed data connection.
_AFTER_EARLY_CLOSE = ("2xx", "4xx")
#: How long to wait for the server's reason when a data connection breaks under a write.
_REASON_WAIT = 5.0


class DataChannel:
    """One data connection and the control connection it belongs to."""

    def __init__(
        self,
        pool: ConnectionPool,
        connection: Connection,
        data: DataSocket,
        location: Location,
        timeout: float,
    ) -> None:
        self.pool = pool
        self.connection = connection
        self.data = data
        self.location = location
        self.timeout = timeout
        self.released = False

    @property
    def client(self) -> aioftp.Client:
        return self.connection.client

    def close_data(self) -> None:
        """Drop the data connection at once (a TLS one without waiting for close_notify:
        everything wanted has been read, or the transfer is being given up)."""
        self.data.close()

    async def final_reply(self, expected: str | tuple[str, ...], action: str) -> None:
        """Read the server's reply that ends the transfer, then give the control connection
        back (reusable only when that reply arrived)."""
        try:
            with anyio.fail_after(self.timeout):
                await self.client.command(None, expected, "1xx")
        except aioftp.StatusCodeError as exc:
            self.release(reusable=True)
            raise for_reply(*reply_of(exc), self.location, action) from None
        except Exception as exc:
            self.release(reusable=False)
            raise (for_exception(exc, self.location, action) or exc) from None
        except BaseException:
            # Cancelled while waiting: the reply may still come, so the connection is dropped.
            self.release(reusable=False)
            raise
        self.release(reusable=True)

    def release(self, *, reusable: bool) -> None:
        if not self.released:
            self.released = True
            if not reusable:
                self.close_data()
            self.pool.release(self.connection, reusable=reusable)


class FtpReadStream(ReadStream):
    """``RETR`` from an offset (after ``REST``), for at most ``length`` bytes."""

    def __init__(self, channel: DataChannel, info: FileInfo, length: int, chunk_size: int) -> None:
        self.info = info
        self._channel = channel
        self._remaining = length
        self._chunk_size = chunk_size
        self._done = False

    async def read(self) -> bytes:
        if self._done:
            return b""
        if self._remaining <= 0:
            await self._finish(early=True)
            return b""
        channel = self._channel
        wanted = min(self._chunk_size, self._remaining)
        try:
            # A whole block (the socket's own timeout bounds the wait for progress).
            data = await channel.data.receive(wanted)
        except Exception as exc:
            self._done = True
            channel.release(reusable=False)
            raise (for_exception(exc, channel.location, "read") or exc) from None
        if not data:
            # The server closed the data connection: its reply says whether all was sent.
            await self._finish(early=False)
            if self._remaining > 0:
                raise TransientError(
                    f"{channel.location.redacted()}: the data connection ended "
                    f"{self._remaining} bytes early"
                )
            return b""
        self._remaining -= len(data)
        return data

    async def _finish(self, *, early: bool) -> None:
        self._done = True
        channel = self._channel
        channel.close_data()
        await channel.final_reply(_AFTER_EARLY_CLOSE if early else "2xx", "read")

    async def aclose(self) -> None:
        if self._done:
            return
        # Cut short by the caller: the reply to the cut is read so the connection stays usable.
        with contextlib.suppress(TransferError):
            await self._finish(early=True)


class EmptyReadStream(ReadStream):
    """A read past the end of the file (or of zero bytes): nothing to fetch."""

    def __init__(self, info: FileInfo) -> None:
        self.info = info

    async def read(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        return None


class FtpWriteStream(WriteStream):
    """``STOR`` (after ``REST`` when continuing a partial file); :meth:`commit` waits for
    the server to confirm it stored everything."""

    def __init__(self, channel: DataChannel) -> None:
        self._channel = channel
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        channel = self._channel
        try:
            await channel.data.send(data)
        except Exception as exc:
            self._finished = True
            raise await self._reason(exc) from None

    async def _reason(self, exc: Exception) -> TransferError | Exception:
        """Why a write failed: the server's reply if it gave one (a full disk), else the
        connection failure itself."""
        channel = self._channel
        channel.close_data()
        with anyio.move_on_after(_REASON_WAIT):
            try:
                await channel.final_reply("2xx", "write")
            except TransferError as error:
                return error
        channel.release(reusable=False)
        return for_exception(exc, channel.location, "write") or exc

    async def commit(self) -> None:
        if self._finished:
            raise TransferError(f"{self._channel.location.redacted()}: write already finished")
        self._finished = True
        channel = self._channel
        try:
            await channel.data.finish_sending()
        except Exception as exc:
            raise await self._reason(exc) from None
        await channel.final_reply("2xx", "write")

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        channel = self._channel
        # What was written stays on the server (a partial file to resume), so the data
        # connection is closed in order, flushing what is buffered (TLS included); the
        # reply is read so the control connection can be reused.
        with anyio.move_on_after(channel.timeout):
            with contextlib.suppress(Exception):
                await channel.data.finish_sending()
            with contextlib.suppress(TransferError):
                await channel.final_reply(_AFTER_EARLY_CLOSE, "write")
        channel.release(reusable=False)


__all__ = ["DataChannel", "EmptyReadStream", "FtpReadStream", "FtpWriteStream"]
