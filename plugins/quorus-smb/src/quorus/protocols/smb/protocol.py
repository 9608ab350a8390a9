"""The ``smb`` protocol: SMB 2 and 3 shares through smbprotocol's low-level API.

``smb://host[:port]/share/path`` names a file or directory on a share. Sessions are pooled
per server and user and shared by every stream and operation of the protocol instance, so
several ranged reads of one file (or several transfers) run side by side on one logged-on
connection. smbprotocol is blocking: each operation runs in a worker thread, and the reads
and writes keep many requests outstanding (see :mod:`quorus.protocols.smb.streams`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import anyio.to_thread
from quorus.core.errors import (
    InvalidURIError,
    TransferError,
    TransientError,
    UnsupportedOperationError,
)
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.uri import Location
from quorus.protocols.smb import files
from quorus.protocols.smb.errors import connection_lost, translate
from quorus.protocols.smb.session import SessionPool, SmbSession
from quorus.protocols.smb.settings import SmbSettings
from quorus.protocols.smb.streams import SmbReadStream, SmbWriteStream, _Handle
from smbprotocol.open import CreateDisposition
from smbprotocol.tree import TreeConnect

log = logging.getLogger(__name__)

DEFAULT_PORT = 445
T = TypeVar("T")


class _QuietLostConnection(logging.Filter):
    """smbprotocol logs a traceback at ERROR when its receiver thread sees the connection
    drop; the protocol reports that loss itself (as a transient error), once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SMB receive worker died")


# smbprotocol dumps whole messages (megabytes of data) at DEBUG: keep it at WARNING unless
# the operator configured its logger explicitly.
for _name in ("smbprotocol", "spnego"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)
logging.getLogger("smbprotocol.connection").addFilter(_QuietLostConnection())


@dataclass(frozen=True)
class SessionSecurity:
    """What was negotiated with a server for one share: for logs, audits and tests."""

    dialect: str
    signed: bool
    encrypted: bool
    max_read: int
    max_write: int


def split_path(location: Location) -> tuple[str, str]:
    """``(share, path within the share)`` of ``location``, the path with backslashes."""
    parts = [part for part in location.path.split("/") if part]
    if not parts:
        raise InvalidURIError(
            f"{location.redacted()}: name a share and a path, as in smb://host/share/dir/file")
    if any(part in (".", "..") for part in parts):
        raise InvalidURIError(f"{location.redacted()}: '.' and '..' are not allowed in SMB paths")
    return parts[0], "\\".join(parts[1:])


class SmbProtocol(TransferProtocol):
    """SMB 2/3 file shares (Samba, Windows, NAS appliances)."""

    schemes: ClassVar[tuple[str, ...]] = ("smb",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.settings = SmbSettings.from_options(self.options)
        # The raw options may hold literal credentials: keep only their resolved, masked form.
        self.options = self.settings.redact(self.options)
        self._pool = SessionPool(self.settings)

    def __repr__(self) -> str:
        user = "set" if self.settings.username is not None else "from the URI"
        return f"SmbProtocol(user {user}, signing={self.settings.signing}, " \
               f"encrypt={self.settings.encrypt})"

    # --- plumbing ------------------------------------------------------------------------

    def capabilities(self, location: Location) -> Capabilities:
        return Capabilities(
            ranged_read=True,
            write_at_offset=True,
            rename=True,
            listing=True,
            delete=True,
            chunk_size=self.settings.block_size,
        )

    def check_location(self, location: Location) -> None:
        share, path = split_path(location)
        if not path:
            raise InvalidURIError(
                f"{location.redacted()}: name a file within share {share!r}, as in "
                f"smb://host/{share}/dir/file")

    def _credentials(self, location: Location) -> tuple[str | None, str | None]:
        username = self.settings.username.reveal() if self.settings.username else location.username
        password = self.settings.password.reveal() if self.settings.password else location.password
        return username, password

    def _session(self, location: Location) -> SmbSession:
        username, password = self._credentials(location)
        assert location.host is not None  # parse_location requires a host for smb
        return self._pool.get(location.host, location.port or DEFAULT_PORT, username, password)

    def _blocking(self, location: Location, doing: str,
                  work: Callable[[SmbSession, TreeConnect, str], T]) -> T:
        """Run ``work(session, tree, path)``; a pooled session found dead is replaced once."""
        share, path = split_path(location)
        what = f"{location.redacted()}: {doing}"
        for attempt in range(2):
            session = self._session(location)
            try:
                tree = session.tree(share)
                return work(session, tree, path)
            except Exception as exc:
                error = translate(exc, what)
                if isinstance(exc, TransferError):
                    error = exc
                if connection_lost(exc) or session.broken:
                    self._pool.discard(session)
                    if attempt == 0 and not isinstance(exc, TransferError):
                        # The server may have restarted since the session was pooled.
                        log.debug("%s: connection lost (%s), logging on again", what, exc)
                        continue
                raise error from None
        raise TransientError(f"{what}: connection lost twice")  # pragma: no cover

    async def _run(self, location: Location, doing: str,
                   work: Callable[[SmbSession, TreeConnect, str], T]) -> T:
        return await anyio.to_thread.run_sync(self._blocking, location, doing, work)

    def _info(self, location: Location, entry: files.Entry) -> FileInfo:
        return FileInfo(location=location, size=entry.size, is_dir=entry.is_dir,
                        mtime=entry.mtime)

    # --- the protocol ----------------------------------------------------------------------

    async def stat(self, location: Location) -> FileInfo:
        entry = await self._run(location, "stat",
                                lambda session, tree, path: files.stat(session, tree, path))
        return self._info(location, entry)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")

        def work(session: SmbSession, tree: TreeConnect, path: str) -> SmbReadStream:
            handle = files.open_file(session, tree, path, files.READ_ACCESS,
                                     CreateDisposition.FILE_OPEN)
            entry = files.entry_of(handle, location.name)
            end = entry.size if length is None else min(entry.size, offset + length)
            block = session.block_size(session.max_read)
            return SmbReadStream(
                _Handle(session, tree, handle, location.redacted(), self._pool.discard),
                self._info(location, entry), offset, max(offset, end), block,
                self.settings.max_requests)

        return await self._run(location, "opening for reading", work)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        if offset < 0:
            raise ValueError("offset must not be negative")

        def work(session: SmbSession, tree: TreeConnect, path: str) -> SmbWriteStream:
            disposition = CreateDisposition.FILE_OPEN if offset else CreateDisposition.FILE_OVERWRITE_IF
            handle = files.open_file(session, tree, path, files.WRITE_ACCESS, disposition)
            if offset:
                if int(handle.end_of_file) < offset:
                    files.close(session, tree, handle)
                    raise TransferError(
                        f"{location.redacted()}: cannot continue at byte {offset}: the partial "
                        f"file has only {int(handle.end_of_file)} bytes")
                # Whatever was written past the resume point is dropped first.
                files.truncate(session, tree, handle, offset)
            block = session.block_size(session.max_write)
            return SmbWriteStream(
                _Handle(session, tree, handle, location.redacted(), self._pool.discard),
                offset, block, self.settings.max_requests)

        return await self._run(location, "opening for writing", work)

    async def list(self, location: Location) -> list[FileInfo]:
        entries = await self._run(location, "listing",
                                  lambda session, tree, path: files.listdir(session, tree, path))
        base = location.path.rstrip("/")
        return [self._info(location.with_path(f"{base}/{entry.name}"), entry)
                for entry in entries]

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        source_share, _ = split_path(source)
        target_share, target_path = split_path(target)
        if (source.host, source.port, source_share.lower()) != (
                target.host, target.port, target_share.lower()):
            raise UnsupportedOperationError(
                f"cannot rename {source.redacted()} to {target.redacted()}: SMB renames only "
                "within one share")
        await self._run(source, f"renaming to {target.redacted()}",
                        lambda session, tree, path: files.rename(
                            session, tree, path, target_path, replace))

    async def delete(self, location: Location) -> None:
        await self._run(location, "deleting",
                        lambda session, tree, path: files.delete(session, tree, path))

    async def makedirs(self, location: Location) -> None:
        _share, path = split_path(location)
        if not path:
            return  # the share's root always exists (stat would say if the share did not)
        await self._run(location, "creating the directory",
                        lambda session, tree, path: files.makedirs(session, tree, path))

    async def security(self, location: Location) -> SessionSecurity:
        """The dialect, signing, encryption and I/O sizes in force for ``location``'s share."""

        def work(session: SmbSession, tree: TreeConnect, path: str) -> SessionSecurity:
            dialect = int(session.connection.dialect)
            return SessionSecurity(
                dialect=f"{dialect >> 8:x}.{(dialect >> 4) & 0xF:x}.{dialect & 0xF:x}",
                signed=bool(session.session.signing_required),
                encrypted=bool(session.session.encrypt_data or tree.encrypt_data),
                max_read=session.max_read,
                max_write=session.max_write,
            )

        return await self._run(location, "negotiating", work)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._pool.close)


__all__ = ["DEFAULT_PORT", "SessionSecurity", "SmbProtocol", "split_path"]
