"""The ``ftp`` and explicit-FTPS ``ftps`` protocols.

Control connections (login, commands, replies, the TLS upgrade with ``AUTH TLS`` and
``PBSZ 0``/``PROT P``) are aioftp's; they are pooled per server and user (:mod:`.pool`).
Data connections are opened here rather than by aioftp: aioftp completes the TLS handshake
of a protected data connection *before* sending ``RETR``/``STOR``, while servers such as
vsftpd only start their side of the handshake after that command, so every protected
transfer hangs until it times out. Here the data connection is plain TCP until the server
answers ``150``, and is then upgraded with the control connection's TLS settings.

aioftp runs on asyncio only, so this plugin does too (it does not work under trio).
"""

from __future__ import annotations

import contextlib
import posixpath
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import aioftp
import anyio
from quorus.core.errors import (
    DestinationExistsError,
    InvalidURIError,
    NotAFileError,
    NotFoundError,
    TransferError,
)
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.secrets import Secret
from quorus.core.uri import Location
from quorus.protocols.ftp.data import DataSocket
from quorus.protocols.ftp.errors import for_exception, for_reply, mapped, reply_of
from quorus.protocols.ftp.listing import parse_list_line
from quorus.protocols.ftp.pool import Connection, ConnectionPool, Endpoint
from quorus.protocols.ftp.settings import DEFAULT_IDLE_CHECK, FtpSettings
from quorus.protocols.ftp.streams import DataChannel, EmptyReadStream, FtpReadStream, FtpWriteStream

DEFAULT_PORT = 21
ANONYMOUS = "anonymous"


class FtpProtocol(TransferProtocol):
    """FTP and explicit FTPS (``AUTH TLS``, certificate verified, data channel protected)."""

    schemes: ClassVar[tuple[str, ...]] = ("ftp", "ftps")

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.settings = FtpSettings.from_options(self.options)
        # What callers may print: credentials replaced by their Secret objects.
        shown: dict[str, Any] = dict(self.options)
        for name in ("username", "password"):
            if getattr(self.settings, name) is not None:
                shown[name] = getattr(self.settings, name)
        self.options = shown
        self._ssl: ssl.SSLContext | None = None
        self.pool = ConnectionPool(
            self._login,
            max_connections=self.settings.max_connections,
            idle_check=DEFAULT_IDLE_CHECK,
        )

    def __repr__(self) -> str:
        return f"FtpProtocol({self.settings!r})"

    def capabilities(self, location: Location) -> Capabilities:
        return Capabilities(
            ranged_read=True,
            write_at_offset=True,
            rename=True,
            listing=True,
            delete=True,
            chunk_size=self.settings.chunk_size,
        )

    def check_location(self, location: Location) -> None:
        if not location.host:
            raise InvalidURIError(f"{location.redacted()}: an FTP location needs a host")
        if any(char in location.path for char in "\r\n\0"):
            raise InvalidURIError(f"{location.redacted()}: the path holds a control character")

    # --- connections ---------------------------------------------------------------------

    def _endpoint(self, location: Location) -> Endpoint:
        self.check_location(location)
        if location.username is not None:
            username = location.username
            password = Secret(location.password, "uri") if location.password is not None else None
        elif self.settings.username is not None:
            username = self.settings.username.reveal()
            password = self.settings.password
        else:
            username, password = ANONYMOUS, self.settings.password or Secret("anonymous@", "default")
        assert location.host is not None
        return Endpoint(
            tls=location.scheme == "ftps",
            host=location.host,
            port=location.port or DEFAULT_PORT,
            username=username,
            password=password,
        )

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = self.settings.ssl_context()
        return self._ssl

    async def _login(self, endpoint: Endpoint) -> aioftp.Client:
        client = aioftp.Client(
            socket_timeout=self.settings.timeout,
            connection_timeout=self.settings.connect_timeout,
            passive_commands=self.settings.passive,
            encoding="utf-8",
        )
        try:
            await client.connect(endpoint.host, endpoint.port)
            if endpoint.tls:
                # AUTH TLS, then PBSZ 0 and PROT P: the data connections are protected too.
                await client.upgrade_to_tls(self._ssl_context())
            password = endpoint.password.reveal() if endpoint.password is not None else ""
            await client.login(endpoint.username, password)
            await client.command("TYPE I", "200")
        except BaseException:
            # Dropped at once (a TLS connection without a close_notify exchange that could
            # outlive the caller's event loop and leave the transport unclosed).
            stream = client._stream
            if stream is not None:
                stream.writer.transport.abort()
            raise
        return client

    async def _acquire(self, location: Location) -> Connection:
        with mapped(location, "login"):
            return await self.pool.acquire(self._endpoint(location))

    @contextlib.asynccontextmanager
    async def _session(self, location: Location, action: str) -> AsyncIterator[aioftp.Client]:
        """A pooled control connection for a few commands; errors become Quorus errors."""
        connection = await self._acquire(location)
        reusable = False
        try:
            with mapped(location, action), anyio.fail_after(self.settings.timeout):
                yield connection.client
            reusable = True
        except TransferError as exc:
            # A reply was read to its end: the connection is in a known state.
            reusable = not exc.retryable
            raise
        finally:
            self.pool.release(connection, reusable=reusable)

    async def _open_data(
        self, connection: Connection, location: Location, command: str, offset: int
    ) -> DataChannel:
        """Passive data connection, ``REST`` if resuming, then ``command``; TLS once the
        server has said 150 (see the module's docstring for why not before)."""
        client = connection.client
        endpoint = connection.endpoint
        host, port = await _passive_address(client, endpoint)
        data = await DataSocket.connect(
            host, port, connect_timeout=self.settings.connect_timeout,
            idle_timeout=self.settings.timeout,
        )
        channel = DataChannel(self.pool, connection, data, location, self.settings.timeout)
        try:
            if offset:
                await client.command(f"REST {offset}", "350")
            await client.command(command, "1xx")
            if endpoint.tls:
                await data.start_tls(self._ssl_context(), endpoint.host)
        except BaseException:
            data.close()
            raise
        return channel

    async def aclose(self) -> None:
        await self.pool.aclose()

    # --- files -----------------------------------------------------------------------------

    async def stat(self, location: Location) -> FileInfo:
        async with self._session(location, "stat") as client:
            return await _stat(client, location)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        connection = await self._acquire(location)
        try:
            with mapped(location, "read"), anyio.fail_after(self.settings.timeout):
                info = await _stat(connection.client, location)
                if info.is_dir:
                    raise NotAFileError(f"{location.redacted()} is a directory")
                size = info.size or 0
                wanted = size - offset if length is None else min(length, size - offset)
                if wanted <= 0:
                    self.pool.release(connection, reusable=True)
                    return EmptyReadStream(info)
                try:
                    channel = await self._open_data(
                        connection, location, f"RETR {location.path}", offset
                    )
                except aioftp.StatusCodeError as exc:
                    # The file is there (SIZE answered): a refusal now is about permissions.
                    raise for_reply(*reply_of(exc), location, "read", exists=True) from None
        except TransferError as exc:
            self.pool.release(connection, reusable=not exc.retryable)
            raise
        except BaseException:
            self.pool.release(connection, reusable=False)
            raise
        return FtpReadStream(channel, info, wanted, self.settings.chunk_size)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        connection = await self._acquire(location)
        try:
            with mapped(location, "write"), anyio.fail_after(self.settings.timeout):
                client = connection.client
                if offset:
                    info = await _stat(client, location)
                    if info.size is None or info.size < offset:
                        raise TransferError(
                            f"{location.redacted()}: cannot continue at byte {offset}: the "
                            f"partial file holds {info.size} bytes",
                            retryable=False,
                        )
                try:
                    # REST + STOR continues at the offset whatever follows it in the file.
                    channel = await self._open_data(
                        connection, location, f"STOR {location.path}", offset
                    )
                except aioftp.StatusCodeError as exc:
                    exists = await _is_dir(client, location.parent.path)
                    raise for_reply(*reply_of(exc), location, "write", exists=exists) from None
        except TransferError as exc:
            self.pool.release(connection, reusable=not exc.retryable)
            raise
        except BaseException:
            self.pool.release(connection, reusable=False)
            raise
        return FtpWriteStream(channel)

    # --- directories and names -----------------------------------------------------------

    async def list(self, location: Location) -> list[FileInfo]:
        connection = await self._acquire(location)
        try:
            with mapped(location, "list"), anyio.fail_after(self.settings.timeout):
                client = connection.client
                if not await _is_dir(client, location.path):
                    raise NotFoundError(f"{location.redacted()}: no such directory")
                try:
                    channel = await self._open_data(connection, location, f"LIST {location.path}", 0)
                except aioftp.StatusCodeError as exc:
                    raise for_reply(*reply_of(exc), location, "list", exists=True) from None
                listing = await channel.data.receive_all()  # to the end: listings are small
                channel.close_data()
                await channel.final_reply("2xx", "list")
        except TransferError as exc:
            self.pool.release(connection, reusable=not exc.retryable)
            raise
        except BaseException:
            self.pool.release(connection, reusable=False)
            raise
        entries = []
        base = location.path.rstrip("/") or "/"
        for line in listing.decode("utf-8", "replace").splitlines():
            parsed = parse_list_line(line)
            if parsed is None or parsed.name in (".", ".."):
                continue
            entries.append(FileInfo(
                location.with_path(posixpath.join(base, parsed.name)),
                size=None if parsed.is_dir else parsed.size,
                is_dir=parsed.is_dir,
                mtime=parsed.mtime,
                mode=parsed.mode,
            ))
        return entries

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        async with self._session(source, "rename") as client:
            if not replace and await _exists(client, target.path):
                raise DestinationExistsError(f"{target.redacted()} exists")
            try:
                await client.command(f"RNFR {source.path}", "350")
            except aioftp.StatusCodeError as exc:
                exists = await _exists(client, source.path)
                raise for_reply(*reply_of(exc), source, "rename", exists=exists) from None
            try:
                await client.command(f"RNTO {target.path}", "2xx")
            except aioftp.StatusCodeError as exc:
                exists = await _is_dir(client, target.parent.path)
                raise for_reply(*reply_of(exc), target, "rename", exists=exists) from None

    async def delete(self, location: Location) -> None:
        async with self._session(location, "delete") as client:
            try:
                await client.command(f"DELE {location.path}", "2xx")
            except aioftp.StatusCodeError as exc:
                exists = await _exists(client, location.path)
                raise for_reply(*reply_of(exc), location, "delete", exists=exists) from None

    async def makedirs(self, location: Location) -> None:
        async with self._session(location, "makedirs") as client:
            path = ""
            for part in location.path.strip("/").split("/"):
                if not part:
                    continue
                path += "/" + part
                if await _is_dir(client, path):
                    continue
                try:
                    await client.command(f"MKD {path}", "257")
                except aioftp.StatusCodeError as exc:
                    if await _is_dir(client, path):  # made by someone else meanwhile
                        continue
                    exists = await _is_dir(client, posixpath.dirname(path) or "/")
                    raise for_reply(
                        *reply_of(exc), location.with_path(path), "makedirs", exists=exists
                    ) from None


# --- commands on one control connection ----------------------------------------------------


async def _passive_address(client: aioftp.Client, endpoint: Endpoint) -> tuple[str, int]:
    """Where the server listens for this data connection (EPSV, else PASV)."""
    host: str | None = None
    port = 0
    for index, name in enumerate(client._passive_commands, start=1):
        try:
            if name == "epsv":
                host, port = await client._do_epsv()
            else:
                host, port = await client._do_pasv()
            break
        except aioftp.StatusCodeError as exc:
            # A server without EPSV says 50x: try PASV.
            if index == len(client._passive_commands) or not exc.received_codes[-1].matches("50x"):
                raise
    if host is None or host == "0.0.0.0":
        host = endpoint.host
    return host, port


async def _stat(client: aioftp.Client, location: Location) -> FileInfo:
    path = location.path
    try:
        _, info = await client.command(f"SIZE {path}", "213")
        size = int(info[-1].strip())
    except aioftp.StatusCodeError as exc:
        if await _is_dir(client, path):
            return FileInfo(location, None, is_dir=True)
        raise for_reply(*reply_of(exc), location, "stat", exists=False) from None
    return FileInfo(location, size, mtime=await _mtime(client, path))


async def _mtime(client: aioftp.Client, path: str) -> float | None:
    try:
        _, info = await client.command(f"MDTM {path}", "213")
    except aioftp.StatusCodeError:
        return None
    return parse_mdtm(info[-1].strip())


def parse_mdtm(text: str) -> float | None:
    """``YYYYMMDDHHMMSS[.sss]`` (UTC, RFC 3659) as a POSIX timestamp."""
    whole, _, fraction = text.partition(".")
    try:
        stamp = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return stamp + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


async def _is_dir(client: aioftp.Client, path: str) -> bool:
    try:
        await client.command(f"CWD {path or '/'}", "2xx")
    except aioftp.StatusCodeError:
        return False
    return True


async def _exists(client: aioftp.Client, path: str) -> bool:
    try:
        await client.command(f"SIZE {path}", "213")
    except aioftp.StatusCodeError:
        return await _is_dir(client, path)
    return True


__all__ = ["DEFAULT_PORT", "FtpProtocol", "for_exception", "parse_mdtm"]
