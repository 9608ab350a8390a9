"""``nfs://host/export/path``: NFS exports the agent has mounted, served by the ``file`` protocol.

Quorus does not speak NFS on the wire (a userspace client is a later step). An agent mounts
its exports with the kernel client, and its configuration says where each export is mounted::

    mounts:
      fileserver:/srv/exports/data: /mnt/data        # host:/export -> local mount point

An ``nfs://fileserver/srv/exports/data/in/a.csv`` location then reads and writes
``/mnt/data/in/a.csv``. The longest matching export wins; a location that no mount covers, or
whose path would climb out of its export with ``..``, is refused before any I/O. With
``mounts`` unset, the kernel's own mount table (``/proc/self/mounts``) is used.

By default the mapped directory must lie on a filesystem of type ``nfs`` or ``nfs4``, so a
mount that has silently gone away (leaving an empty directory on the root disk) is an error,
not a place to write: ``verify_mount: false`` turns the check off (bind mounts, tests).

Options: ``mounts`` (a mapping, or text ``host:/export=/local,...``), ``verify_mount``
(default true), ``chunk_size`` (default 1 MiB, the largest NFS rsize/wsize).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace

from quorus.core.errors import ConfigurationError, InvalidURIError
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.protocols.file import FileProtocol
from quorus.core.uri import Location

#: The largest read and write size NFS clients negotiate (rsize/wsize).
NFS_CHUNK_SIZE = 1024 * 1024
PROC_MOUNTS = "/proc/self/mounts"


@dataclass(frozen=True)
class NfsMount:
    """One export and where it is mounted."""

    host: str
    export: str
    local: str


def _unescape(field: str) -> str:
    # /proc/mounts escapes blanks and backslashes as octal (\040, \134, ...).
    return field.encode().decode("unicode_escape") if "\\" in field else field


def read_kernel_mounts(path: str = PROC_MOUNTS) -> list[tuple[str, str, str]]:
    """``(device, mount point, fs type)`` for every line of the kernel's mount table."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def parse_mounts(value: object) -> list[NfsMount]:
    """Mounts from configuration: a mapping or ``host:/export=/local,...`` text."""
    pairs: list[tuple[str, str]]
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            remote, sep, local = item.partition("=")
            if not sep:
                raise ConfigurationError(
                    f"invalid NFS mount {item!r}: expected host:/export=/local/mount/point"
                )
            pairs.append((remote, local))
    else:
        raise ConfigurationError("nfs.mounts must map host:/export to a local mount point")
    mounts = []
    for remote, local in pairs:
        host, sep, export = remote.partition(":")
        if not sep or not host or not export.startswith("/"):
            raise ConfigurationError(
                f"invalid NFS export {remote!r}: expected host:/export (e.g. fileserver:/srv/data)"
            )
        if not os.path.isabs(local):
            raise ConfigurationError(f"NFS mount point for {remote!r} must be absolute: {local!r}")
        mounts.append(NfsMount(host.lower(), posixpath.normpath(export), os.path.normpath(local)))
    return mounts


def kernel_nfs_mounts(path: str = PROC_MOUNTS) -> list[NfsMount]:
    """The NFS mounts the kernel knows of."""
    found = []
    for device, point, fstype in read_kernel_mounts(path):
        host, sep, export = device.rpartition(":")
        if fstype.startswith("nfs") and sep and export.startswith("/"):
            found.append(NfsMount(host.strip("[]").lower(), posixpath.normpath(export), point))
    return found


def filesystem_type(path: str, mounts_path: str = PROC_MOUNTS) -> str | None:
    """The type of the filesystem ``path`` lies on (the longest mount point above it)."""
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for _device, point, fstype in read_kernel_mounts(mounts_path):
        if (real == point or real.startswith(point.rstrip("/") + "/")) and (
            best is None or len(point) > best[0]
        ):
            best = (len(point), fstype)
    return best[1] if best else None


class NfsProtocol(TransferProtocol):
    """``nfs://`` over locally mounted exports; see the module docstring."""

    schemes = ("nfs",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        configured = self.options.get("mounts")
        self._mounts = parse_mounts(configured) if configured is not None else None
        self._verify = bool(self.options.get("verify_mount", True))
        self._file = FileProtocol({"chunk_size": int(self.options.get("chunk_size", NFS_CHUNK_SIZE))})

    @property
    def mounts(self) -> list[NfsMount]:
        return self._mounts if self._mounts is not None else kernel_nfs_mounts()

    def local_path(self, location: Location) -> str:
        """The local path that serves ``location``; :class:`InvalidURIError` if none does."""
        host = location.host.lower() if location.host else ""
        if not host:
            raise InvalidURIError(f"{location.redacted()}: an nfs:// location needs a host")
        path = posixpath.normpath(location.path or "/")
        if ".." in location.path.split("/"):
            raise InvalidURIError(f"{location.redacted()}: '..' may not appear in an NFS path")
        best: NfsMount | None = None
        for mount in self.mounts:
            inside = path == mount.export or path.startswith(mount.export.rstrip("/") + "/")
            if mount.host == host and inside and (best is None or len(mount.export) > len(best.export)):
                best = mount
        if best is None:
            raise InvalidURIError(
                f"{location.redacted()}: no mounted NFS export of {host} covers {path}; add "
                f"'{host}:/export: /mount/point' to the nfs mounts of this agent's configuration"
            )
        rest = path[len(best.export) :].lstrip("/")
        local = os.path.join(best.local, rest) if rest else best.local
        if self._verify:
            fstype = filesystem_type(best.local)
            if fstype is None or not fstype.startswith("nfs"):
                raise ConfigurationError(
                    f"{location.redacted()}: {best.local} (where {host}:{best.export} should be "
                    f"mounted) is on a {fstype or 'unknown'} filesystem, not NFS: is the export "
                    "mounted? (set nfs.verify_mount=false for a bind mount)"
                )
        return local

    def _map(self, location: Location) -> Location:
        return Location(scheme="file", host=None, port=None, path=self.local_path(location))

    def _back(self, info: FileInfo, location: Location) -> FileInfo:
        return replace(info, location=location)

    def check_location(self, location: Location) -> None:
        self.local_path(location)

    def capabilities(self, location: Location) -> Capabilities:
        return self._file.capabilities(self._map(location))

    async def stat(self, location: Location) -> FileInfo:
        return self._back(await self._file.stat(self._map(location)), location)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        stream = await self._file.open_read(self._map(location), offset, length)
        stream.info = self._back(stream.info, location)
        return stream

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        return await self._file.open_write(
            self._map(location), offset, size_hint=size_hint, mode=mode
        )

    async def list(self, location: Location) -> list[FileInfo]:
        entries = await self._file.list(self._map(location))
        return [
            self._back(info, location.with_path(posixpath.join(location.path, info.name)))
            for info in entries
        ]

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        await self._file.rename(self._map(source), self._map(target), replace=replace)

    async def delete(self, location: Location) -> None:
        await self._file.delete(self._map(location))

    async def makedirs(self, location: Location) -> None:
        await self._file.makedirs(self._map(location))

    def lock(self, location: Location) -> AbstractAsyncContextManager[None]:
        return self._lock(location)

    @asynccontextmanager
    async def _lock(self, location: Location) -> AsyncIterator[None]:
        async with self._file.lock(self._map(location)):
            yield


__all__ = ["NfsMount", "NfsProtocol", "filesystem_type", "kernel_nfs_mounts", "parse_mounts"]

