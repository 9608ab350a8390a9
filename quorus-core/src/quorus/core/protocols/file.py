"""The ``file`` protocol: local paths and mounted network file systems.

Reads and writes run in worker threads (``os.read``/``os.write`` release the GIL) with large
chunks; commit fsyncs the file, and rename fsyncs the directory so a completed transfer
survives a crash of the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat as stat_module
import sys
from collections.abc import AsyncIterator, Callable
from typing import cast

import anyio.to_thread
from quorus.core.errors import (
    DestinationBusyError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
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
from quorus.core.uri import Location

DEFAULT_CHUNK_SIZE = 1024 * 1024
_TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.EINTR})


def map_os_error(exc: OSError, path: str, action: str) -> TransferError:
    """Translate an ``OSError`` into the Quorus error a person can act on."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{path}: no such file or directory")
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(f"cannot {action} {path}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return NotAFileError(f"cannot {action} {path}: it is a directory")
    if isinstance(exc, NotADirectoryError):
        return NotFoundError(f"cannot {action} {path}: a parent is not a directory")
    if isinstance(exc, FileExistsError):
        return DestinationExistsError(f"cannot {action} {path}: it already exists")
    if exc.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"cannot {action} {path}: {reason}")
    return TransferError(f"cannot {action} {path}: {reason}")


def _info(location: Location, st: os.stat_result) -> FileInfo:
    is_dir = stat_module.S_ISDIR(st.st_mode)
    return FileInfo(
        location=location,
        size=None if is_dir else st.st_size,
        is_dir=is_dir,
        mtime=st.st_mtime_ns / 1e9,
        # Device, inode and mtime identify a version of a local file well enough to detect a
        # replaced or rewritten source between an interrupted attempt and its resumption.
        etag=f"{st.st_dev:x}-{st.st_ino:x}-{st.st_mtime_ns:x}",
        mode=stat_module.S_IMODE(st.st_mode),
    )


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileReadStream(ReadStream):
    def __init__(self, fd: int, info: FileInfo, chunk_size: int, length: int | None) -> None:
        self._fd: int | None = fd
        self.info = info
        self._chunk_size = chunk_size
        self._remaining = length

    async def read(self) -> bytes:
        if self._fd is None or self._remaining == 0:
            return b""
        n = self._chunk_size if self._remaining is None else min(self._chunk_size, self._remaining)
        fd = self._fd
        try:
            data = await anyio.to_thread.run_sync(os.read, fd, n)
        except OSError as exc:
            raise map_os_error(exc, self.info.location.path, "read") from exc
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    async def aclose(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux), which Python's ``os`` module does not offer."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2
#: Start writeback of written data every this many bytes, so the final fsync has little left
#: to wait for: without it, fsync of a 1 GiB file flushes all of it at the end (~0.3 s here).
WRITEBACK_STEP = 16 * 1024 * 1024


class FileWriteStream(WriteStream):
    def __init__(self, fd: int, path: str, offset: int = 0) -> None:
        self._fd: int | None = fd
        self._path = path
        self._finished = False
        self._position = offset
        self._flushed = offset  # writeback was started for everything before this

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._write_blocking, data)

    def thread_writer(self) -> Callable[[bytes], None]:
        return self._write_blocking

    def _write_blocking(self, data: bytes) -> None:
        """Write ``data``; every :data:`WRITEBACK_STEP` bytes, start writeback of them."""
        if self._fd is None:
            raise TransferError(f"cannot write {self._path}: the stream is closed")
        try:
            _write_all(self._fd, data)
            self._position += len(data)
            if _sync_file_range is not None and self._position - self._flushed >= WRITEBACK_STEP:
                # Start (do not wait for) writeback; best effort, so the result is not checked.
                _sync_file_range(self._fd, self._flushed, self._position - self._flushed,
                                 _SYNC_FILE_RANGE_WRITE)
                self._flushed = self._position
        except OSError as exc:
            raise map_os_error(exc, self._path, "write") from exc

    async def commit(self) -> None:
        fd = self._take()
        try:
            await anyio.to_thread.run_sync(os.fsync, fd)
        except OSError as exc:
            raise map_os_error(exc, self._path, "sync") from exc
        finally:
            os.close(fd)

    async def abort(self) -> None:
        if self._fd is not None:
            os.close(self._take())
        self._finished = True

    def _take(self) -> int:
        if self._fd is None:
            raise TransferError(f"cannot finish {self._path}: the stream is closed")
        fd, self._fd = self._fd, None
        self._finished = True
        return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FileProtocol(TransferProtocol):
    """Local files. Options: ``chunk_size`` (bytes, default 1 MiB)."""

    schemes = ("file",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.chunk_size = int(self.options.get("chunk_size", DEFAULT_CHUNK_SIZE))

    def capabilities(self, location: Location) -> Capabilities:
        return Capabilities(
            ranged_read=True,
            write_at_offset=True,
            rename=True,
            listing=True,
            delete=True,
            chunk_size=self.chunk_size,
        )

    async def stat(self, location: Location) -> FileInfo:
        try:
            st = await anyio.to_thread.run_sync(os.stat, location.path)
        except OSError as exc:
            raise map_os_error(exc, location.path, "stat") from exc
        return _info(location, st)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        path = location.path
        try:
            fd = await anyio.to_thread.run_sync(_open_for_read, path, offset)
        except OSError as exc:
            raise map_os_error(exc, path, "read") from exc
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotAFileError(f"cannot read {path}: not a regular file")
        return FileReadStream(fd, _info(location, st), self.chunk_size, length)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        path = location.path
        try:
            fd = await anyio.to_thread.run_sync(_open_for_write, path, offset, mode)
        except OSError as exc:
            raise map_os_error(exc, path, "write") from exc
        return FileWriteStream(fd, path, offset)

    async def list(self, location: Location) -> list[FileInfo]:
        def scan() -> list[FileInfo]:
            infos = []
            with os.scandir(location.path) as entries:
                for entry in entries:
                    child = location.with_path(os.path.join(location.path, entry.name))
                    infos.append(_info(child, entry.stat()))
            return sorted(infos, key=lambda info: info.name)

        try:
            return await anyio.to_thread.run_sync(scan)
        except OSError as exc:
            raise map_os_error(exc, location.path, "list") from exc

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        def move() -> None:
            if replace:
                os.replace(source.path, target.path)
            else:
                # link() fails atomically when the target exists; rename() would replace it.
                try:
                    os.link(source.path, target.path)
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                        raise
                    if os.path.lexists(target.path):
                        raise FileExistsError(errno.EEXIST, "exists", target.path) from exc
                    os.rename(source.path, target.path)
                else:
                    os.unlink(source.path)
            _fsync_dir(os.path.dirname(target.path) or "/")

        try:
            await anyio.to_thread.run_sync(move)
        except OSError as exc:
            raise map_os_error(exc, target.path, "rename to") from exc

    async def delete(self, location: Location) -> None:
        try:
            await anyio.to_thread.run_sync(os.unlink, location.path)
        except OSError as exc:
            raise map_os_error(exc, location.path, "delete") from exc

    @contextlib.asynccontextmanager
    async def lock(self, location: Location) -> AsyncIterator[None]:
        """An advisory ``flock`` on ``location`` (created if absent), held until the block
        ends: other processes and other engines in this one see the transfer as busy."""
        try:
            fd = await anyio.to_thread.run_sync(_open_locked, location.path)
        except BlockingIOError:
            raise DestinationBusyError(
                f"another transfer is writing {location.path.removesuffix('.json')} right now"
            ) from None
        except OSError as exc:
            raise map_os_error(exc, location.path, "lock") from exc
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    async def makedirs(self, location: Location) -> None:
        try:
            await anyio.to_thread.run_sync(lambda: os.makedirs(location.path, exist_ok=True))
        except FileExistsError:
            raise NotAFileError(f"cannot create directory {location.path}: a file is in the way") from None
        except OSError as exc:
            raise map_os_error(exc, location.path, "create directory") from exc


def _open_locked(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_for_read(path: str, offset: int) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        os.posix_fadvise(fd, offset, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_for_write(path: str, offset: int, mode: int | None) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    if offset == 0:
        flags |= os.O_TRUNC
    fd = os.open(path, flags, 0o666 if mode is None else mode)
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        if offset:
            if st.st_size < offset:
                raise OSError(errno.EINVAL, f"partial file is shorter ({st.st_size}) than {offset}")
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        if mode is not None:
            os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd




__all__ = ["FileProtocol", "map_os_error"]
