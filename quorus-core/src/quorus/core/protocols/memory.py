"""The ``memory`` protocol: an in-process file system for tests and examples.

``memory://store/path/to/file`` names a file in the named :class:`MemoryStore` (the host part
of the URI). A store may require a token (option ``token``), which lets the conformance kit
exercise bad-credential handling without a network.
"""

from __future__ import annotations

import posixpath
import threading
import time
from dataclasses import dataclass, field

from quorus.core.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    TransferError,
)
from quorus.core.options import option_secret
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


@dataclass
class _Entry:
    data: bytearray
    mtime: float
    version: int


@dataclass
class MemoryStore:
    """A flat map of paths to bytes; directories exist implicitly or by :meth:`makedirs`."""

    required_token: str | None = None
    files: dict[str, _Entry] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/"})
    _versions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_version(self) -> int:
        self._versions += 1
        return self._versions

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` (creating parent directories), for test setup."""
        with self.lock:
            self._add_parents(path)
            self.files[path] = _Entry(bytearray(data), time.time(), self.next_version())

    def get(self, path: str) -> bytes:
        with self.lock:
            return bytes(self.files[path].data)

    def _add_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in self.dirs:
            self.dirs.add(parent)
            parent = posixpath.dirname(parent)


_stores: dict[str, MemoryStore] = {}
_stores_lock = threading.Lock()


def memory_store(name: str = "default", *, required_token: str | None = None) -> MemoryStore:
    """The process-wide store called ``name``, created on first use."""
    with _stores_lock:
        store = _stores.get(name)
        if store is None:
            store = _stores[name] = MemoryStore(required_token=required_token)
        elif required_token is not None:
            store.required_token = required_token
        return store


class MemoryReadStream(ReadStream):
    def __init__(self, data: bytes, info: FileInfo, chunk_size: int) -> None:
        self._view = memoryview(data)
        self.info = info
        self._chunk_size = chunk_size

    async def read(self) -> bytes:
        chunk, self._view = self._view[: self._chunk_size], self._view[self._chunk_size :]
        return bytes(chunk)

    async def aclose(self) -> None:
        self._view = memoryview(b"")


class MemoryWriteStream(WriteStream):
    def __init__(self, store: MemoryStore, path: str, entry: _Entry) -> None:
        self._store = store
        self._path = path
        self._entry = entry
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise TransferError(f"cannot write memory:{self._path}: the stream is closed")
        with self._store.lock:
            self._entry.data += data
            self._entry.mtime = time.time()

    async def commit(self) -> None:
        self._finished = True

    async def abort(self) -> None:
        self._finished = True


class MemoryProtocol(TransferProtocol):
    """In-process files. Options: ``token`` (checked against the store's required token),
    ``chunk_size`` (default 256 KiB)."""

    schemes = ("memory",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        self._token: Secret | None = option_secret("memory", self.options, "token")
        self.chunk_size = int(self.options.get("chunk_size", 256 * 1024))

    def _store(self, location: Location) -> MemoryStore:
        store = memory_store(location.host or "default")
        if store.required_token is not None and (
            self._token is None or self._token.reveal() != store.required_token
        ):
            raise AuthenticationError(
                f"memory://{location.host}: the store requires a token and "
                + ("none was given" if self._token is None else "the token given was rejected")
            )
        return store

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
        store = self._store(location)
        with store.lock:
            entry = store.files.get(location.path)
            if entry is not None:
                return FileInfo(location, len(entry.data), False, entry.mtime, f"v{entry.version}")
            if location.path.rstrip("/") in store.dirs or location.path == "/":
                return FileInfo(location, None, True)
        raise NotFoundError(f"{location}: no such file or directory")

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        info = await self.stat(location)
        if info.is_dir:
            raise NotAFileError(f"cannot read {location}: it is a directory")
        store = self._store(location)
        with store.lock:
            data = bytes(store.files[location.path].data)
        end = len(data) if length is None else min(len(data), offset + length)
        return MemoryReadStream(data[offset:end], info, self.chunk_size)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        store = self._store(location)
        path = location.path
        with store.lock:
            if path in store.dirs:
                raise NotAFileError(f"cannot write {location}: it is a directory")
            if posixpath.dirname(path) not in store.dirs:
                raise NotFoundError(f"cannot write {location}: the parent directory does not exist")
            entry = store.files.get(path)
            if offset:
                if entry is None or len(entry.data) < offset:
                    raise TransferError(f"cannot resume {location} at {offset}: partial is shorter")
                del entry.data[offset:]
            else:
                entry = store.files[path] = _Entry(bytearray(), time.time(), store.next_version())
        return MemoryWriteStream(store, path, entry)

    async def list(self, location: Location) -> list[FileInfo]:
        info = await self.stat(location)
        if not info.is_dir:
            raise NotAFileError(f"cannot list {location}: not a directory")
        store = self._store(location)
        prefix = location.path.rstrip("/") + "/"
        with store.lock:
            names = {p[len(prefix):].split("/", 1)[0] for p in [*store.files, *store.dirs]
                     if p.startswith(prefix) and p != prefix}
        return [await self.stat(location.with_path(prefix + name)) for name in sorted(names)]

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        store = self._store(source)
        with store.lock:
            if source.path not in store.files:
                raise NotFoundError(f"{source}: no such file or directory")
            if target.path in store.dirs:
                raise NotAFileError(f"cannot rename to {target}: it is a directory")
            if not replace and target.path in store.files:
                raise DestinationExistsError(f"cannot rename to {target}: it already exists")
            store.files[target.path] = store.files.pop(source.path)

    async def delete(self, location: Location) -> None:
        store = self._store(location)
        with store.lock:
            if store.files.pop(location.path, None) is None:
                raise NotFoundError(f"{location}: no such file or directory")

    async def makedirs(self, location: Location) -> None:
        store = self._store(location)
        with store.lock:
            if location.path in store.files:
                raise NotAFileError(f"cannot create directory {location}: a file is in the way")
            store.dirs.add(location.path.rstrip("/") or "/")
            store._add_parents(location.path.rstrip("/"))


__all__ = ["MemoryProtocol", "MemoryStore", "memory_store"]
