"""The ``sqlite`` protocol: files kept as blobs in SQLite databases.

``sqlite://STORE/path/to/file`` names a file in store ``STORE``; each store is one database
file. Where that file is comes from the protocol options:

- ``databases``: a mapping of store name to database path. On the command line, where an
  option is one ``SCHEME.KEY=VALUE``, write ``-o sqlite.databases.STORE=PATH``.
- otherwise ``<root>/<STORE>.sqlite3``, with ``root`` from the option ``root``, else the
  environment variable ``QUORUS_SQLITE_ROOT``, else ``./quorus-sqlite``.

Other options: ``token`` (a credential reference, ``env:NAME``, ``file:/path`` or the value,
checked against the token the store requires, if any), ``chunk_size`` (bytes per read and per
stored block, default 1 MiB) and ``busy_timeout`` (seconds to wait for another writer's lock,
default 10).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from quorus.core import (
    Capabilities,
    ConfigurationError,
    FileInfo,
    InvalidURIError,
    Location,
    NotAFileError,
    NotFoundError,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
    resolve_secret,
)

from quorus_example_sqlite.store import SqliteStore
from quorus_example_sqlite.streams import SqliteReadStream, SqliteWriteStream

ROOT_ENV = "QUORUS_SQLITE_ROOT"
DEFAULT_ROOT = "quorus-sqlite"
DEFAULT_CHUNK_SIZE = 1024 * 1024
# Blocks far above a few MiB buy no speed and make every read and write hold more memory.
MIN_CHUNK_SIZE = 4 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
OPTIONS = frozenset({"root", "databases", "token", "chunk_size", "busy_timeout"})
_DATABASES_PREFIX = "databases."
# URI hosts arrive lower-cased; a store name also becomes a file name, so no separators.
_STORE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _database_map(options: ProtocolOptions) -> dict[str, Path]:
    """Store name → database path, from ``databases`` and ``databases.NAME`` options."""
    raw: dict[str, Any] = {}
    nested = options.get("databases", {})
    if not isinstance(nested, Mapping):
        raise ConfigurationError(
            "sqlite option 'databases' must map store names to database paths, e.g. "
            "{'archive': '/srv/archive.sqlite3'} (-o sqlite.databases.archive=/srv/archive.sqlite3)"
        )
    raw.update(nested)
    for key, value in options.items():
        if key.startswith(_DATABASES_PREFIX):
            raw[key.removeprefix(_DATABASES_PREFIX)] = value
    databases: dict[str, Path] = {}
    for name, path in raw.items():
        store = str(name).lower()
        if not _STORE_NAME.match(store):
            raise ConfigurationError(
                f"sqlite option 'databases': invalid store name {name!r} "
                "(letters, digits, '.', '_' and '-')"
            )
        databases[store] = Path(str(path)).expanduser().absolute()
    return databases


def _number(options: ProtocolOptions, key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"sqlite option {key!r}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise ConfigurationError(f"sqlite option {key!r}: {value!r} is not between {low:g} and {high:g}")
    return number


class SqliteProtocol(TransferProtocol):
    """Files as blobs in SQLite databases, one database per store (see the module docstring
    for the options). All operations are available; rename is one transaction."""

    schemes = ("sqlite",)

    def __init__(self, options: ProtocolOptions | None = None) -> None:
        super().__init__(options)
        unknown = {
            key for key in self.options if key not in OPTIONS and not key.startswith(_DATABASES_PREFIX)
        }
        if unknown:
            raise ConfigurationError(
                f"unknown sqlite option(s) {', '.join(sorted(map(repr, unknown)))}: "
                f"expected {', '.join(sorted(OPTIONS))}"
            )
        root = self.options.get("root") or os.environ.get(ROOT_ENV) or DEFAULT_ROOT
        # Resolved now: a later change of the working directory must not move the stores.
        self.root = Path(str(root)).expanduser().absolute()
        self.databases = _database_map(self.options)
        self.chunk_size = int(
            _number(self.options, "chunk_size", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
        )
        self.busy_timeout = _number(self.options, "busy_timeout", 10.0, 0.0, 3600.0)
        # Resolved once, kept as a Secret: its str() and repr() never show the value.
        self._token = resolve_secret(self.options.get("token"))
        self._stores: dict[str, SqliteStore] = {}

    def database_path(self, store: str) -> Path:
        """The database file that holds ``store``."""
        return self.databases.get(store) or self.root / f"{store}.sqlite3"

    def _resolve(self, location: Location) -> tuple[SqliteStore, str]:
        """The store and the normalised absolute path that ``location`` names."""
        name = location.host
        if not name:
            raise InvalidURIError(
                f"sqlite URI for {location.path!r} names no store: write "
                "sqlite://STORE/path/to/file"
            )
        if location.port is not None or location.query:
            raise InvalidURIError(
                f"{location}: sqlite URIs have no port or query, only sqlite://STORE/path"
            )
        if location.username is not None:
            raise InvalidURIError(
                f"{location}: do not put credentials in the URI; set the 'token' option "
                "(e.g. -o sqlite.token=env:NAME)"
            )
        if not _STORE_NAME.match(name):
            raise InvalidURIError(
                f"{location}: invalid store name {name!r} (letters, digits, '.', '_' and '-')"
            )
        store = self._stores.get(name)
        if store is None:
            store = self._stores[name] = SqliteStore(
                name, self.database_path(name), token=self._token, busy_timeout=self.busy_timeout
            )
        # "//a/../b/" and "/b" name the same file; ".." never climbs above the store's root.
        path = posixpath.normpath("/" + location.path.lstrip("/"))
        return store, path

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
        store, path = self._resolve(location)
        entry = await anyio.to_thread.run_sync(store.entry, path)
        if entry is None:
            raise NotFoundError(f"{location}: no such file or directory")
        return entry.info(location)

    async def open_read(
        self, location: Location, offset: int = 0, length: int | None = None
    ) -> ReadStream:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length must not be negative, got {offset}, {length}")
        store, path = self._resolve(location)
        entry = await anyio.to_thread.run_sync(store.entry, path)
        if entry is None:
            raise NotFoundError(f"{location}: no such file or directory")
        if entry.is_dir:
            raise NotAFileError(f"cannot read {location}: it is a directory")
        return SqliteReadStream(store, entry, entry.info(location), offset, length, self.chunk_size)

    async def open_write(
        self,
        location: Location,
        offset: int = 0,
        *,
        size_hint: int | None = None,
        mode: int | None = None,
    ) -> WriteStream:
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        store, path = self._resolve(location)
        if path == "/":
            raise NotAFileError(f"cannot write {location}: it is the store's root directory")
        entry = await anyio.to_thread.run_sync(store.open_for_write, path, offset, mode)
        return SqliteWriteStream(store, entry, self.chunk_size)

    async def list(self, location: Location) -> list[FileInfo]:
        store, path = self._resolve(location)
        entries = await anyio.to_thread.run_sync(store.children, path)
        return [entry.info(location.with_path(entry.path)) for entry in entries]

    async def rename(self, source: Location, target: Location, *, replace: bool = True) -> None:
        store, source_path = self._resolve(source)
        target_store, target_path = self._resolve(target)
        if target_store is not store:
            raise InvalidURIError(
                f"cannot rename {source} to {target}: both must be in the same store"
            )

        def move() -> None:
            store.rename(source_path, target_path, replace=replace)

        await anyio.to_thread.run_sync(move)

    async def delete(self, location: Location) -> None:
        store, path = self._resolve(location)
        await anyio.to_thread.run_sync(store.delete, path)

    async def makedirs(self, location: Location) -> None:
        store, path = self._resolve(location)
        await anyio.to_thread.run_sync(store.makedirs, path)

    async def aclose(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        # Shielded: closing runs on the way out of a cancelled task too, and an unclosed
        # connection would keep the database's WAL file around.
        with anyio.CancelScope(shield=True):
            for store in stores:
                await anyio.to_thread.run_sync(store.close)


__all__ = ["DEFAULT_ROOT", "ROOT_ENV", "SqliteProtocol"]
