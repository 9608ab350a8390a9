"""The ``file`` protocol: local paths and mounted network file systems.

Reads and writes run in worker threads (``os.read``/``os.write`` release the GIL) with large
chunks; commit fsyncs the file, and rename fsyncs the directory so a completed transfer
survives a crash of the machine.

With the ``confine`` option (roots as a list, or one text separated by ``,``: paths, ``file:``
URIs or shell patterns), every path must lie inside the roots, and every operation reaches
its file from the root one directory at a time without following a symbolic link
(``openat`` with ``O_NOFOLLOW``, :class:`quorus.core.confine.Confinement`): a link planted
or swapped in anywhere below a root, even between a check and a write, is refused before a
byte is read or written. Agents run tenants' jobs this way.
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
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import cast

import anyio.to_thread
from quorus.core.confine import Confinement, PathOutsideRootsError
from quorus.core.errors import (
    DestinationBusyError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
    QuorusError,
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


def _fsync_dir(path: str, dir_fd: int | None = None) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if dir_fd is None else dir_fd
    try:
        os.fsync(fd)
    finally:
        if dir_fd is None:
            os.close(fd)


def _confinement(value: object) -> Confinement | None:
    if value is None or value == "" or value == ():
        return None
    roots: Sequence[str]
    if isinstance(value, str):
        roots = [r.strip() for r in value.split(",") if r.strip()]
    elif isinstance(value, list | tuple):
        roots = [str(r) for r in value]
    else:
        raise ValueError(f"the file protocol's 'confine' option is {value!r}: give a list of "
                         "roots or one text of roots separated by ','")
    return Confinement(roots)


#: ``(directory descriptor or None, name relative to it or the whole path)``.
At = tuple[int | None, str]


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


#: The most one ``write`` call hands the kernel. Linux (6.x, ext4 with large folios) backs a
#: large write with large page-cache folios, and on the virtual machines measured here those
#: are far costlier to fill: free high-order memory is what the guest has handed back to the
#: host, so every page of it faults again on first touch. Writing 1 GiB from Python took
#: 2.4-2.6 s of system time in 1 MiB writes, 0.2 s in 64-256 KiB writes. A whole 1 GiB HTTP
#: download right after another tool had written and deleted a 1 GiB file spent 1.5-2.8 s
#: of system time with 128-256 KiB writes, 0.56-0.66 s with 64 KiB ones. The 16,384 system
#: calls per GiB this costs are a few hundredths of a second.
WRITE_SLICE = 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:WRITE_SLICE])
        view = view[written:]


class FileProtocol(TransferProtocol):
    """Local files. Options: ``chunk_size`` (bytes, default 1 MiB), ``confine`` (roots every
    path must stay inside, reached without following links; see the module docstring)."""

    schemes = ("file",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self.chunk_size = int(self.options.get("chunk_size", DEFAULT_CHUNK_SIZE))
        self.confinement = _confinement(self.options.get("confine"))
        # Without confinement paths are used as they are and links are followed.
        self._nofollow = os.O_NOFOLLOW if self.confinement is not None else 0

    @contextlib.contextmanager
    def _at(self, path: str, *, create: bool = False) -> Iterator[At]:
        """Where to reach ``path``: unconfined, the path itself; confined, its directory
        opened link-free from the root and the last name (closed after the block)."""
        if self.confinement is None:
            yield None, path
            return
        directory = self.confinement.directory(path, create=create)
        if directory is None:  # a root itself: configuration, used as it is
            yield None, path
            return
        with directory:
            yield directory.fd, directory.name

    def _stat(self, path: str) -> os.stat_result:
        with self._at(path) as (fd, name):
            st = os.stat(name, dir_fd=fd, follow_symlinks=fd is None)
        if fd is not None and stat_module.S_ISLNK(st.st_mode):
            raise PathOutsideRootsError(f"{path!r} is a symbolic link: refused")
        return st

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
            st = await anyio.to_thread.run_sync(self._stat, location.path)
        except OSError as exc:
            raise map_os_error(exc, location.path, "stat") from exc
        return _info(location, st)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        path = location.path
        try:
            fd = await anyio.to_thread.run_sync(self._open_read, path, offset)
        except OSError as exc:
            raise _refused(exc, path, "read") from exc
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
            fd = await anyio.to_thread.run_sync(self._open_write, path, offset, mode)
        except OSError as exc:
            raise _refused(exc, path, "write") from exc
        return FileWriteStream(fd, path, offset)

    def _open_read(self, path: str, offset: int) -> int:
        with self._at(path) as (dir_fd, name):
            return _open_for_read(name, offset, dir_fd, self._nofollow)

    def _open_write(self, path: str, offset: int, mode: int | None) -> int:
        with self._at(path) as (dir_fd, name):
            return _open_for_write(name, offset, mode, dir_fd, self._nofollow)

    async def list(self, location: Location) -> list[FileInfo]:
        def scan(target: int | str) -> list[FileInfo]:
            infos = []
            with os.scandir(target) as entries:
                for entry in entries:
                    child = location.with_path(os.path.join(location.path, entry.name))
                    # Confined, a link is listed as the link, never followed.
                    infos.append(_info(child, entry.stat(follow_symlinks=self._nofollow == 0)))
            return sorted(infos, key=lambda info: info.name)

        def scan_at() -> list[FileInfo]:
            with self._at(location.path) as (dir_fd, name):
                if dir_fd is None:
                    return scan(name)
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=dir_fd)
                try:
                    return scan(fd)
                finally:
                    os.close(fd)

        try:
            return await anyio.to_thread.run_sync(scan_at)
        except OSError as exc:
            raise _refused(exc, location.path, "list") from exc

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        def move() -> None:
            with self._at(source.path) as (src_fd, src), self._at(target.path) as (dst_fd, dst):
                _move(src, dst, src_fd, dst_fd, replace=replace)
                _fsync_dir(os.path.dirname(target.path) or "/", dst_fd)

        try:
            await anyio.to_thread.run_sync(move)
        except OSError as exc:
            raise _refused(exc, target.path, "rename to") from exc

    async def delete(self, location: Location) -> None:
        try:
            await anyio.to_thread.run_sync(self._unlink, location.path)
        except OSError as exc:
            raise _refused(exc, location.path, "delete") from exc

    def _unlink(self, path: str) -> None:
        with self._at(path) as (dir_fd, name):
            os.unlink(name, dir_fd=dir_fd)

    @contextlib.asynccontextmanager
    async def lock(self, location: Location) -> AsyncIterator[None]:
        """An advisory ``flock`` on ``location`` (created if absent), held until the block
        ends: other processes and other engines in this one see the transfer as busy."""
        try:
            fd = await anyio.to_thread.run_sync(self._open_locked, location.path)
        except BlockingIOError:
            raise DestinationBusyError(
                f"another transfer is writing {location.path.removesuffix('.json')} right now"
            ) from None
        except OSError as exc:
            raise _refused(exc, location.path, "lock") from exc
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    async def makedirs(self, location: Location) -> None:
        try:
            await anyio.to_thread.run_sync(self._makedirs, location.path)
        except FileExistsError:
            raise NotAFileError(f"cannot create directory {location.path}: a file is in the way") from None
        except OSError as exc:
            raise _refused(exc, location.path, "create directory") from exc

    def _makedirs(self, path: str) -> None:
        if self.confinement is None:
            os.makedirs(path, exist_ok=True)
            return
        # The walk creates every directory above the last, link-free; then the last.
        with self._at(path, create=True) as (dir_fd, name):
            if dir_fd is None:
                return  # a root: created by the walk if missing
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=dir_fd)
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat_module.S_ISLNK(st.st_mode):
                raise PathOutsideRootsError(f"{path!r} is a symbolic link: refused")
            if not stat_module.S_ISDIR(st.st_mode):
                raise FileExistsError(errno.EEXIST, "not a directory", path)

    def _open_locked(self, path: str) -> int:
        with self._at(path) as (dir_fd, name):
            return _open_locked(name, dir_fd, self._nofollow)


def _refused(exc: OSError, path: str, action: str) -> QuorusError:
    """:func:`map_os_error`, but a link met where ``O_NOFOLLOW`` forbade one is an escape."""
    if exc.errno == errno.ELOOP:
        return PathOutsideRootsError(f"cannot {action} {path}: it is a symbolic link, which "
                                     "the storage confinement refuses")
    return map_os_error(exc, path, action)


def _move(src: str, dst: str, src_fd: int | None, dst_fd: int | None, *, replace: bool) -> None:
    if replace:
        os.replace(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    # link() fails atomically when the target exists; rename() would replace it.
    try:
        os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        else:
            raise FileExistsError(errno.EEXIST, "exists", dst) from exc
    else:
        os.unlink(src, dir_fd=src_fd)


def _open_locked(path: str, dir_fd: int | None = None, nofollow: int = 0) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | nofollow, 0o600, dir_fd=dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_for_read(path: str, offset: int, dir_fd: int | None = None, nofollow: int = 0) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | nofollow, dir_fd=dir_fd)
    try:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        os.posix_fadvise(fd, offset, 0, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_for_write(
    path: str, offset: int, mode: int | None, dir_fd: int | None = None, nofollow: int = 0
) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | nofollow
    if offset == 0:
        flags |= os.O_TRUNC
    fd = os.open(path, flags, 0o666 if mode is None else mode, dir_fd=dir_fd)
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
