"""The ``sftp`` transfer protocol: SFTP over SSH with asyncssh, one pooled login per server.

Reads and writes keep many block-sized requests in flight on one handle
(:mod:`~quorus.protocols.sftp.streams`); connections are shared by every transfer to the same
server and user (:mod:`~quorus.protocols.sftp.pool`). Host keys are checked against a
known_hosts file unless explicitly turned off. asyncssh runs on asyncio only, and so does
this protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat as stat_module
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncssh
from quorus.core.errors import (
    ConfigurationError,
    DestinationExistsError,
    InvalidURIError,
    NotAFileError,
    TransferError,
    TransientError,
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
from quorus.protocols.sftp import padding
from quorus.protocols.sftp.errors import TRANSLATED, connection_error, io_error
from quorus.protocols.sftp.pool import Endpoint, Session, SessionPool
from quorus.protocols.sftp.settings import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_PACKET_SIZE,
    DEFAULT_WINDOW,
    SftpSettings,
)
from quorus.protocols.sftp.streams import SftpReadStream, SftpWriteStream

DEFAULT_PORT = 22
#: Paths starting with this are relative to the login directory (``sftp://host/~/file``).
HOME_PREFIX = "/~/"

T = TypeVar("T")


def remote_path(location: Location) -> str:
    """The path to send to the server: absolute, or relative to home for ``/~/...``."""
    path = location.path or "/"
    if path == "/~":
        return "."
    if path.startswith(HOME_PREFIX):
        return path[len(HOME_PREFIX):] or "."
    return path


class SftpProtocol(TransferProtocol):
    """SFTP (``sftp://[user[:password]@]host[:port]/path``).

    Options: ``username``; ``password`` and ``passphrase`` (credential references: a literal,
    ``env:NAME`` or ``file:PATH``); ``private_key`` (path of a key file, decrypted with
    ``passphrase``); ``agent`` (true: the agent at ``SSH_AUTH_SOCK``; a socket path; false:
    none); ``known_hosts`` (default ``~/.ssh/known_hosts``); ``verify_host_key`` (default
    true; false trusts any server and logs a warning each time); ``connect_timeout``,
    ``keepalive_interval`` (seconds); ``block_size``, ``max_requests`` (bytes per SFTP request
    and requests in flight per stream); ``chunk_size``; ``ciphers`` (comma-separated SSH
    cipher names, in order of preference).
    """

    schemes = ("sftp",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.settings = SftpSettings.from_options(self.options)
        # Keep resolved Secrets, not the texts given, so a printed options mapping shows
        # "<secret from env:NAME>" rather than a literal credential.
        self.options = self.settings.redact(self.options)
        # Loaded now: a missing key file or wrong passphrase is a configuration error.
        self._client_keys = self.settings.client_keys()
        self._pool = SessionPool(self._login)
        self._passwords: dict[Endpoint, Secret | None] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(verify_host_key={self.settings.verify_host_key})"

    @property
    def logins(self) -> int:
        """SSH logins made by this instance so far (a connection is reused until lost)."""
        return self._pool.logins

    async def aclose(self) -> None:
        await self._pool.aclose()

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
            raise InvalidURIError(f"{location.redacted()}: an sftp URI needs a host")

    # --- connections -----------------------------------------------------------------

    def _endpoint(self, location: Location) -> Endpoint:
        self.check_location(location)
        password = (Secret(location.password, source="uri") if location.password is not None
                    else self.settings.password)
        credential = (hashlib.sha256(password.reveal().encode()).hexdigest()
                      if password is not None else "")
        endpoint = Endpoint(
            host=location.host or "",
            port=location.port or DEFAULT_PORT,
            username=location.username or self.settings.default_username(),
            credential=credential,
        )
        self._passwords[endpoint] = password
        return endpoint

    async def _login(self, endpoint: Endpoint) -> Session:
        what = str(endpoint)
        known_hosts = self.settings.known_hosts_path() if self.settings.verify_host_key else None
        if known_hosts is not None:
            try:
                os.stat(known_hosts)
            except OSError as exc:
                raise TransferError(
                    f"cannot connect to {what}: the known_hosts file {known_hosts} cannot be "
                    f"read ({exc.strerror}); give one that lists the server's host key "
                    "(option known_hosts), or turn checking off with verify_host_key=false",
                    retryable=False,
                ) from None
        padding.install()
        arguments = self.settings.connect_arguments(
            endpoint.username, self._passwords.get(endpoint), self._client_keys
        )
        try:
            connection = await asyncssh.connect(endpoint.host, endpoint.port, **arguments)
        except TRANSLATED as exc:
            raise connection_error(exc, what, known_hosts=known_hosts) from None
        try:
            # A wide channel window and large packets: many replies in flight, fewer packets.
            writer, reader, _ = await connection.open_session(
                subsystem="sftp", encoding=None,
                window=DEFAULT_WINDOW, max_pktsize=DEFAULT_PACKET_SIZE,
            )
            client = await asyncssh.sftp.start_sftp_client(
                connection, asyncio.get_running_loop(), "strict", reader, writer,
                "utf-8", "strict", asyncssh.sftp.MIN_SFTP_VERSION,
            )
        except TRANSLATED as exc:
            connection.close()
            raise connection_error(exc, what, known_hosts=known_hosts) from None
        return Session(connection, client)

    async def _session(self, location: Location) -> Session:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                "the sftp protocol runs under asyncio only (it is built on asyncssh)"
            ) from None
        return await self._pool.get(self._endpoint(location))

    async def _run(
        self,
        location: Location,
        action: str,
        operation: Callable[[asyncssh.SFTPClient], Awaitable[T]],
    ) -> T:
        """Run ``operation`` on the location's session, translating failures."""
        session = await self._session(location)
        try:
            return await operation(session.client)
        except TRANSLATED as exc:
            raise self._failure(session, exc, action, location) from None

    def _failure(
        self, session: Session, exc: BaseException, action: str, location: Location
    ) -> TransferError:
        known_hosts = self.settings.known_hosts if self.settings.verify_host_key else None
        error = io_error(exc, action, location.redacted(), known_hosts=known_hosts)
        if isinstance(error, TransientError) or not session.alive:
            self._pool.discard(session)
        return error

    def _block_size(self, session: Session, limit: int) -> int:
        if self.settings.block_size is not None:
            return self.settings.block_size
        return min(limit, 4 * 1024 * 1024) if limit else DEFAULT_BLOCK_SIZE

    # --- reading ---------------------------------------------------------------------

    async def stat(self, location: Location) -> FileInfo:
        attrs = await self._run(
            location, "stat", lambda client: client.stat(remote_path(location)))
        return _info(location, attrs)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        what = location.redacted()
        if offset < 0 or (length is not None and length < 0):
            raise TransferError(f"cannot read {what}: invalid range {offset}+{length}")
        session = await self._session(location)
        try:
            file = await session.client.open(remote_path(location), "rb", block_size=0)
        except TRANSLATED as exc:
            raise self._failure(session, exc, "read", location) from None
        try:
            info = _info(location, await file.stat())
            if info.is_dir:
                raise NotAFileError(f"cannot read {what}: it is a directory")
        except BaseException as exc:
            await _close_quietly(file)
            if isinstance(exc, TRANSLATED):
                raise self._failure(session, exc, "read", location) from None
            raise
        size = info.size or 0
        end = size if length is None else min(size, offset + length)
        session.streams += 1

        def closed() -> None:
            session.streams -= 1

        return SftpReadStream(
            file,
            info,
            offset=offset,
            end=max(end, offset),
            block_size=self._block_size(session, session.client.limits.max_read_len),
            max_requests=self.settings.max_requests,
            chunk_size=self.settings.chunk_size,
            translate=lambda exc: self._failure(session, exc, "read", location),
            on_close=closed,
        )

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        if offset < 0:
            raise TransferError(f"cannot write {location.redacted()}: invalid offset {offset}")
        session = await self._session(location)
        path = remote_path(location)
        attrs = asyncssh.SFTPAttrs(permissions=mode & 0o7777) if mode is not None else None
        try:
            if offset == 0:
                file = await session.client.open(
                    path, "wb", attrs or asyncssh.SFTPAttrs(), block_size=0)
            else:
                # Continue a partial file: keep its first ``offset`` bytes, drop the rest.
                file = await session.client.open(path, "r+b", block_size=0)
                try:
                    await file.truncate(offset)
                except BaseException:
                    await _close_quietly(file)
                    raise
        except TRANSLATED as exc:
            raise self._failure(session, exc, "write", location) from None
        session.streams += 1

        def closed() -> None:
            session.streams -= 1

        return SftpWriteStream(
            file,
            offset=offset,
            block_size=self._block_size(session, session.client.limits.max_write_len),
            max_requests=self.settings.max_requests,
            translate=lambda exc: self._failure(session, exc, "write", location),
            on_close=closed,
        )

    # --- directory operations --------------------------------------------------------

    async def list(self, location: Location) -> list[FileInfo]:
        names = await self._run(
            location, "list", lambda client: client.readdir(remote_path(location)))
        base = location.path.rstrip("/")
        return sorted(
            (
                _info(location.with_path(f"{base}/{_text(name.filename)}"), name.attrs)
                for name in names
                if _text(name.filename) not in (".", "..")
            ),
            key=lambda info: info.name,
        )

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        old, new = remote_path(source), remote_path(target)

        async def move(client: asyncssh.SFTPClient) -> None:
            if replace:
                # posix-rename@openssh.com replaces the target atomically; plain SFTPv3
                # rename refuses an existing target.
                await client.posix_rename(old, new)
                return
            try:
                await client.rename(old, new)
            except asyncssh.SFTPFailure:
                if await client.exists(new):
                    raise DestinationExistsError(
                        f"cannot rename {source.redacted()} to {target.redacted()}: "
                        "the target exists"
                    ) from None
                raise

        await self._run(source, "rename", move)

    async def delete(self, location: Location) -> None:
        await self._run(location, "delete", lambda client: client.remove(remote_path(location)))

    async def makedirs(self, location: Location) -> None:
        path = remote_path(location)
        if path in ("/", "."):
            return
        await self._run(location, "create directory",
                        lambda client: client.makedirs(path, exist_ok=True))


def _info(location: Location, attrs: asyncssh.SFTPAttrs) -> FileInfo:
    permissions = attrs.permissions
    is_dir = (attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY
              or (permissions is not None and stat_module.S_ISDIR(permissions)))
    mtime: float | None = attrs.mtime
    if attrs.mtime_ns is not None:
        mtime = attrs.mtime_ns / 1e9
    return FileInfo(
        location=location,
        size=None if is_dir else attrs.size,
        is_dir=is_dir,
        mtime=float(mtime) if mtime is not None else None,
        mode=stat_module.S_IMODE(permissions) if permissions is not None else None,
    )


def _text(name: str | bytes) -> str:
    return name if isinstance(name, str) else name.decode("utf-8", "surrogateescape")


async def _close_quietly(file: asyncssh.SFTPClientFile) -> None:
    with contextlib.suppress(*TRANSLATED):
        await file.close()


__all__ = ["HOME_PREFIX", "SftpProtocol", "remote_path"]
