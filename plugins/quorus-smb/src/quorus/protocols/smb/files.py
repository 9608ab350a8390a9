"""Blocking file operations on one share: open, stat, list, rename, delete, mkdir.

Each function takes a logged-on :class:`~quorus.protocols.smb.session.SmbSession` and a
tree connect and sends its requests through :meth:`SmbSession.send`, so they respect the
server's credits even while large reads or writes are in flight on the same session.
Callers run them in worker threads and translate errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quorus.protocols.smb.session import SmbSession
from smbprotocol.exceptions import NoMoreFiles
from smbprotocol.file_info import (
    FileEndOfFileInformation,
    FileInformationClass,
    FileRenameInformation,
)
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    DirectoryAccessMask,
    FileAttributes,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2SetInfoRequest,
    SMB2SetInfoResponse,
)
from smbprotocol.tree import TreeConnect

SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE
READ_ACCESS = FilePipePrinterAccessMask.GENERIC_READ
WRITE_ACCESS = (FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE)
STAT_ACCESS = FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
LIST_ACCESS = DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES
DELETE_ACCESS = FilePipePrinterAccessMask.DELETE | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
#: Entries asked for per QUERY_DIRECTORY round trip.
LIST_BUFFER = 256 * 1024


@dataclass(frozen=True)
class Entry:
    """What the server says about one file or directory."""

    name: str
    size: int
    is_dir: bool
    mtime: float | None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def _call(session: SmbSession, tree: TreeConnect, prepared: tuple[Any, Callable[[Any], Any]],
          payload: int = 0) -> Any:
    """Send a prepared (message, receive) pair within the credits and return its result."""
    message, receive = prepared
    return receive(session.send(message, tree, payload))


def open_file(
    session: SmbSession,
    tree: TreeConnect,
    path: str,
    access: int,
    disposition: int,
    options: int = CreateOptions.FILE_NON_DIRECTORY_FILE,
    share: int = SHARE_ALL,
    attributes: int = FileAttributes.FILE_ATTRIBUTE_NORMAL,
) -> Open:
    """Open (or create) ``path`` on ``tree``; the caller closes it."""
    handle = Open(tree, path)
    _call(session, tree, handle.create(ImpersonationLevel.Impersonation, access, attributes,
                                       share, disposition, options, send=False))
    return handle


def close(session: SmbSession, tree: TreeConnect, handle: Open) -> None:
    """Close ``handle`` if it is open."""
    if handle._connected:
        _call(session, tree, handle.close(send=False))


def entry_of(handle: Open, name: str) -> Entry:
    """The :class:`Entry` an open handle's create response describes."""
    is_dir = bool(int(handle.file_attributes) & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
    return Entry(name, 0 if is_dir else int(handle.end_of_file), is_dir,
                 _timestamp(handle.last_write_time))


def stat(session: SmbSession, tree: TreeConnect, path: str) -> Entry:
    """Size, kind and modification time of ``path`` (a file or a directory)."""
    handle = open_file(session, tree, path, STAT_ACCESS, CreateDisposition.FILE_OPEN, options=0)
    try:
        return entry_of(handle, path.rsplit("\\", 1)[-1])
    finally:
        close(session, tree, handle)


def listdir(session: SmbSession, tree: TreeConnect, path: str) -> list[Entry]:
    """The entries of the directory ``path`` (without ``.`` and ``..``)."""
    handle = open_file(session, tree, path, LIST_ACCESS, CreateDisposition.FILE_OPEN,
                       options=CreateOptions.FILE_DIRECTORY_FILE, attributes=0)
    entries: list[Entry] = []
    try:
        for _ in range(1_000_000):  # one round trip per buffer; bounded for safety
            try:
                batch = _call(session, tree, handle.query_directory(
                    "*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION,
                    max_output=LIST_BUFFER, send=False))
            except NoMoreFiles:
                break
            for info in batch:
                name = info["file_name"].get_value().decode("utf-16-le")
                if name in (".", ".."):
                    continue
                attributes = int(info["file_attributes"].get_value())
                is_dir = bool(attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
                entries.append(Entry(
                    name, 0 if is_dir else int(info["end_of_file"].get_value()), is_dir,
                    _timestamp(info["last_write_time"].get_value())))
    finally:
        close(session, tree, handle)
    return entries


def set_info(session: SmbSession, tree: TreeConnect, handle: Open, info: Any) -> None:
    """Send a SET_INFO with ``info`` (a file information structure) on ``handle``."""
    request = SMB2SetInfoRequest()
    request["info_type"] = info.INFO_TYPE
    request["file_info_class"] = info.INFO_CLASS
    request["file_id"] = handle.file_id
    request["buffer"] = info
    response = session.receive(session.send(request, tree))
    SMB2SetInfoResponse().unpack(response["data"].get_value())


def truncate(session: SmbSession, tree: TreeConnect, handle: Open, size: int) -> None:
    """Set the end of the open file to ``size`` bytes."""
    info = FileEndOfFileInformation()
    info["end_of_file"] = size
    set_info(session, tree, handle, info)


def rename(session: SmbSession, tree: TreeConnect, source: str, target: str, replace: bool) -> None:
    """Rename ``source`` to ``target`` on the same share, in one SET_INFO (atomic)."""
    handle = open_file(session, tree, source, DELETE_ACCESS, CreateDisposition.FILE_OPEN,
                       options=0)
    try:
        info = FileRenameInformation()
        info["replace_if_exists"] = replace
        info["file_name"] = target
        set_info(session, tree, handle, info)
    finally:
        close(session, tree, handle)


def delete(session: SmbSession, tree: TreeConnect, path: str) -> None:
    """Delete the file ``path`` (deleted when the handle closes)."""
    handle = open_file(
        session, tree, path, DELETE_ACCESS, CreateDisposition.FILE_OPEN,
        options=CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE)
    close(session, tree, handle)


def makedirs(session: SmbSession, tree: TreeConnect, path: str) -> None:
    """Create the directory ``path`` and its parents; existing directories are fine."""
    parts = [part for part in path.split("\\") if part]
    for depth in range(1, len(parts) + 1):
        handle = open_file(
            session, tree, "\\".join(parts[:depth]),
            DirectoryAccessMask.FILE_READ_ATTRIBUTES, CreateDisposition.FILE_OPEN_IF,
            options=CreateOptions.FILE_DIRECTORY_FILE,
            attributes=FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
        close(session, tree, handle)


__all__ = [
    "Entry",
    "close",
    "delete",
    "entry_of",
    "listdir",
    "makedirs",
    "open_file",
    "rename",
    "set_info",
    "stat",
    "truncate",
]
