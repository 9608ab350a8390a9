"""One SQLite database holding one store's files: schema, transactions and queries.

Everything here is synchronous; the protocol runs it in worker threads through
``anyio.to_thread`` so the event loop never waits on SQLite. A :class:`SqliteStore` owns one
connection, used by one thread at a time under a lock; other connections (other engines,
other processes) coordinate through SQLite's own locking, with a busy timeout.

Layout of a store's database:

- ``files``: one row per file or directory. Directories are explicit rows (``makedirs``
  creates them, ``/`` always exists), so an empty directory exists and a file can only be
  created inside an existing directory, as on a local disk.
- ``blocks``: a file's bytes as blobs of at most the block size, keyed by their start offset.
  SQLite caps one value at 1 GB and rewrites a blob in memory to append to it, so one blob
  per file would bound file sizes and make writes quadratic; blocks keep every read and write
  bounded by the block size and let a resumed write cut a file at any offset cheaply.
- ``settings``: store-wide settings; ``token`` is the credential clients must present.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import posixpath
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quorus.core import (
    AuthenticationError,
    DestinationExistsError,
    FileInfo,
    Location,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
    Secret,
    SourceChangedError,
    TransferError,
    TransientError,
)

log = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a store ("QSQL"): tells our databases from other SQLite files.
APPLICATION_ID = 0x5153514C
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    parent TEXT,
    is_dir INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    mode INTEGER
);
CREATE INDEX files_by_parent ON files (parent);
CREATE TABLE blocks (
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    start INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (file_id, start)
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_ENTRY_COLUMNS = "id, path, is_dir, size, mtime, version, mode"


@dataclass(frozen=True)
class Entry:
    """One row of ``files``: a file or a directory."""

    id: int
    path: str
    is_dir: bool
    size: int
    mtime: float
    version: int
    mode: int | None

    @property
    def etag(self) -> str:
        # Row ids are never reused (AUTOINCREMENT) and every write bumps the version, so the
        # pair names one version of one file, even across delete-and-recreate.
        return f"{self.id:x}-{self.version:x}"

    def info(self, location: Location) -> FileInfo:
        """The :class:`FileInfo` the protocol reports for this entry at ``location``."""
        if self.is_dir:
            return FileInfo(location, None, is_dir=True, mtime=self.mtime)
        return FileInfo(
            location, self.size, is_dir=False, mtime=self.mtime, etag=self.etag, mode=self.mode
        )


def _entry(row: tuple[int, str, int, int, float, int, int | None] | None) -> Entry | None:
    if row is None:
        return None
    return Entry(row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6])


def map_sqlite_error(exc: sqlite3.Error, what: str) -> TransferError:
    """Translate an ``sqlite3`` error into the Quorus error a person (and the retry loop) can
    act on; ``what`` says what was being done, e.g. ``cannot write sqlite://s/a``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return TransientError(f"{what}: the database is busy (another writer holds its lock)")
    if name.startswith("SQLITE_IOERR"):
        return TransientError(f"{what}: I/O error in the database ({exc})")
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        return PermissionDeniedError(f"{what}: the database refused the write ({exc})")
    if name.startswith("SQLITE_CANTOPEN"):
        return TransferError(f"{what}: the database file cannot be opened ({exc})")
    if name.startswith("SQLITE_FULL"):
        return TransferError(f"{what}: the disk holding the database is full")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return TransferError(f"{what}: the database file is damaged or not an SQLite database")
    return TransferError(f"{what}: {exc}")


class SqliteStore:
    """The files of store ``name``, kept in the SQLite database at ``path``.

    ``token`` is what this client presents; it is compared with the store's ``token`` setting
    in every transaction, so rotating the token takes effect at once. ``busy_timeout`` is how
    long to wait for another connection's write lock before giving up with a retryable error.
    Every method raises a :class:`~quorus.core.TransferError` subclass on failure.
    """

    def __init__(
        self, name: str, path: Path, *, token: Secret | None = None, busy_timeout: float = 10.0
    ) -> None:
        self.name = name
        self.path = path
        self._token = token
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def uri(self, path: str) -> str:
        """How messages name ``path`` in this store."""
        return f"sqlite://{self.name}{path}"

    # --- connection and transactions -----------------------------------------------------

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        with self._lock:
            if self._connection is not None:
                connection, self._connection = self._connection, None
                connection.close()

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        if not self.path.exists():
            if not create:
                raise NotFoundError(
                    f"sqlite://{self.name}: no such store (no database at {self.path}; "
                    "the first write to the store creates it)"
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                error = PermissionDeniedError if isinstance(exc, PermissionError) else TransferError
                raise error(
                    f"sqlite://{self.name}: cannot create the directory for {self.path}: "
                    f"{exc.strerror or exc}"
                ) from exc
            log.info("creating store %r at %s", self.name, self.path)
        # isolation_level=None: this module issues BEGIN/COMMIT itself, so a transaction spans
        # exactly one method call. check_same_thread=False: worker threads take turns under
        # self._lock, which is what makes sharing the connection safe.
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            # WAL lets readers go on while one connection writes; FULL makes each committed
            # transaction durable, which is what WriteStream.commit promises.
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            self._prepare_schema(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _prepare_schema(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            app_id = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id == 0 and tables == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(
                    "INSERT INTO files (path, parent, is_dir, mtime) VALUES ('/', NULL, 1, ?)",
                    (time.time(),),
                )
                connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif app_id != APPLICATION_ID:
                raise TransferError(
                    f"sqlite://{self.name}: {self.path} is an SQLite database but not a "
                    "Quorus sqlite store; point the store at another file"
                )
            elif version != SCHEMA_VERSION:
                raise TransferError(
                    f"sqlite://{self.name}: {self.path} has store schema version {version}; "
                    f"this plugin reads version {SCHEMA_VERSION} (upgrade quorus-example-sqlite)"
                )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextlib.contextmanager
    def _transaction(
        self, what: str, *, write: bool, check_token: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; ``what`` names the operation for error messages.

        Write transactions take the write lock up front (``BEGIN IMMEDIATE``): upgrading a
        read transaction later could deadlock against another writer.
        """
        with self._lock:
            try:
                connection = self._connect(create=write)
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    if check_token:
                        self._authenticate(connection)
                    yield connection
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise map_sqlite_error(exc, what) from exc

    def _authenticate(self, connection: sqlite3.Connection) -> None:
        row = connection.execute("SELECT value FROM settings WHERE key = 'token'").fetchone()
        if row is None:
            return
        if self._token is None:
            raise AuthenticationError(
                f"sqlite://{self.name}: the store requires a token and none was given "
                "(set the protocol option 'token', e.g. -o sqlite.token=env:NAME)"
            )
        # compare_digest: the time taken must not reveal how much of the token matched.
        if not hmac.compare_digest(self._token.reveal().encode(), str(row[0]).encode()):
            raise AuthenticationError(
                f"sqlite://{self.name}: the token given ({self._token}) was rejected"
            )

    # --- queries -------------------------------------------------------------------------

    @staticmethod
    def _get(connection: sqlite3.Connection, path: str) -> Entry | None:
        row = connection.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM files WHERE path = ?", (path,)
        ).fetchone()
        return _entry(row)

    @staticmethod
    def _get_by_id(connection: sqlite3.Connection, file_id: int) -> Entry | None:
        row = connection.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM files WHERE id = ?", (file_id,)
        ).fetchone()
        return _entry(row)

    def _require_parent_dir(self, connection: sqlite3.Connection, path: str, action: str) -> None:
        parent = posixpath.dirname(path)
        entry = self._get(connection, parent)
        if entry is None:
            raise NotFoundError(
                f"cannot {action} {self.uri(path)}: the directory {self.uri(parent)} does not exist"
            )
        if not entry.is_dir:
            raise NotFoundError(
                f"cannot {action} {self.uri(path)}: {self.uri(parent)} is a file, not a directory"
            )

    def entry(self, path: str) -> Entry | None:
        """The file or directory at ``path``, or ``None``."""
        with self._transaction(f"cannot stat {self.uri(path)}", write=False) as connection:
            return self._get(connection, path)

    def children(self, path: str) -> list[Entry]:
        """The entries of the directory ``path``, by name."""
        with self._transaction(f"cannot list {self.uri(path)}", write=False) as connection:
            entry = self._get(connection, path)
            if entry is None:
                raise NotFoundError(f"{self.uri(path)}: no such file or directory")
            if not entry.is_dir:
                raise NotAFileError(f"cannot list {self.uri(path)}: it is a file, not a directory")
            rows = connection.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM files WHERE parent = ? ORDER BY path", (path,)
            ).fetchall()
        return [entry for entry in map(_entry, rows) if entry is not None]

    def read(self, file_id: int, version: int, position: int, limit: int, path: str) -> bytes:
        """Up to ``limit`` bytes of file ``file_id`` from ``position`` (``b""`` at the end).

        Reads at most one block, and only the part asked for (``substr`` runs inside SQLite),
        so memory stays bounded whatever the file's size. ``version`` is the version the
        reader opened: a file rewritten since raises :class:`SourceChangedError`.
        """
        with self._transaction(f"cannot read {self.uri(path)}", write=False) as connection:
            entry = self._get_by_id(connection, file_id)
            if entry is None:
                raise SourceChangedError(f"{self.uri(path)} was deleted while it was being read")
            if entry.version != version:
                raise SourceChangedError(f"{self.uri(path)} was rewritten while it was being read")
            if position >= entry.size:
                return b""
            row = connection.execute(
                "SELECT start, size, substr(data, ? - start + 1, ?) FROM blocks "
                "WHERE file_id = ? AND start <= ? ORDER BY start DESC LIMIT 1",
                (position, limit, file_id, position),
            ).fetchone()
        if row is None or row[0] + row[1] <= position or not row[2]:
            raise TransferError(
                f"cannot read {self.uri(path)}: the store is damaged (no block holds byte "
                f"{position} of {entry.size})"
            )
        return bytes(row[2])

    def open_for_write(self, path: str, offset: int, mode: int | None) -> Entry:
        """Create or truncate the file at ``path`` (``offset`` 0), or cut an existing partial
        file back to ``offset`` bytes to continue it; return the file as it now is."""
        action = "write" if offset == 0 else "resume"
        now = time.time()
        with self._transaction(f"cannot {action} {self.uri(path)}", write=True) as connection:
            entry = self._get(connection, path)
            if entry is not None and entry.is_dir:
                raise NotAFileError(f"cannot {action} {self.uri(path)}: it is a directory")
            if offset:
                if entry is None:
                    raise NotFoundError(
                        f"cannot resume {self.uri(path)} at byte {offset}: there is no partial file"
                    )
                if entry.size < offset:
                    raise TransferError(
                        f"cannot resume {self.uri(path)} at byte {offset}: the partial file "
                        f"has only {entry.size} bytes"
                    )
                connection.execute(
                    "DELETE FROM blocks WHERE file_id = ? AND start >= ?", (entry.id, offset)
                )
                # The one block that straddles the offset keeps only its head.
                connection.execute(
                    "UPDATE blocks SET data = substr(data, 1, ? - start), size = ? - start "
                    "WHERE file_id = ? AND start < ? AND start + size > ?",
                    (offset, offset, entry.id, offset, offset),
                )
                file_id = entry.id
            elif entry is not None:
                connection.execute("DELETE FROM blocks WHERE file_id = ?", (entry.id,))
                file_id = entry.id
            else:
                self._require_parent_dir(connection, path, action)
                cursor = connection.execute(
                    "INSERT INTO files (path, parent, is_dir, size, mtime, mode) "
                    "VALUES (?, ?, 0, 0, ?, ?)",
                    (path, posixpath.dirname(path), now, mode),
                )
                file_id = int(cursor.lastrowid or 0)
            connection.execute(
                "UPDATE files SET size = ?, mtime = ?, version = version + 1, "
                "mode = coalesce(?, mode) WHERE id = ?",
                (offset, now, mode, file_id),
            )
            written = self._get_by_id(connection, file_id)
        assert written is not None  # created or updated in the transaction above
        return written

    def append(self, file_id: int, position: int, data: bytes | memoryview, path: str) -> None:
        """Store ``data`` as the block at ``position``, the current end of file ``file_id``."""
        with self._transaction(f"cannot write {self.uri(path)}", write=True) as connection:
            cursor = connection.execute(
                "UPDATE files SET size = size + ?, mtime = ?, version = version + 1 "
                "WHERE id = ? AND size = ? AND is_dir = 0",
                (len(data), time.time(), file_id, position),
            )
            if cursor.rowcount != 1:
                if self._get_by_id(connection, file_id) is None:
                    raise NotFoundError(
                        f"cannot write {self.uri(path)}: it was deleted while being written"
                    )
                raise TransferError(
                    f"cannot write {self.uri(path)}: another writer changed it while it was "
                    "being written"
                )
            connection.execute(
                "INSERT INTO blocks (file_id, start, size, data) VALUES (?, ?, ?, ?)",
                (file_id, position, len(data), data),
            )

    def rename(self, source: str, target: str, *, replace: bool) -> None:
        """Move a file or a directory tree in one transaction, so it is atomic."""
        what = f"cannot rename {self.uri(source)} to {self.uri(target)}"
        with self._transaction(what, write=True) as connection:
            entry = self._get(connection, source)
            if entry is None:
                raise NotFoundError(f"{self.uri(source)}: no such file or directory")
            if source == target:
                return
            if source == "/" or target.startswith(source.rstrip("/") + "/"):
                raise TransferError(f"{what}: a directory cannot move into itself")
            existing = self._get(connection, target)
            if existing is not None:
                if not replace:
                    raise DestinationExistsError(f"{what}: the target already exists")
                if existing.is_dir:
                    raise NotAFileError(f"{what}: the target is a directory")
                if entry.is_dir:
                    raise NotAFileError(f"{what}: a directory cannot replace a file")
                connection.execute("DELETE FROM files WHERE id = ?", (existing.id,))
            self._require_parent_dir(connection, target, "rename to")
            if entry.is_dir:
                # Every descendant's path and parent start with the source path: swap prefixes.
                cut = len(source) + 1
                connection.execute(
                    "UPDATE files SET path = ? || substr(path, ?), parent = ? || substr(parent, ?) "
                    "WHERE substr(path, 1, ?) = ?",
                    (target, cut, target, cut, len(source) + 1, source + "/"),
                )
            connection.execute(
                "UPDATE files SET path = ?, parent = ? WHERE id = ?",
                (target, posixpath.dirname(target), entry.id),
            )

    def delete(self, path: str) -> None:
        """Delete a file, or an empty directory."""
        with self._transaction(f"cannot delete {self.uri(path)}", write=True) as connection:
            entry = self._get(connection, path)
            if entry is None:
                raise NotFoundError(f"{self.uri(path)}: no such file or directory")
            if path == "/":
                raise TransferError(f"cannot delete {self.uri(path)}: it is the store's root")
            if entry.is_dir:
                child = connection.execute(
                    "SELECT 1 FROM files WHERE parent = ? LIMIT 1", (path,)
                ).fetchone()
                if child is not None:
                    raise TransferError(
                        f"cannot delete {self.uri(path)}: the directory is not empty"
                    )
            # ON DELETE CASCADE removes the file's blocks with it.
            connection.execute("DELETE FROM files WHERE id = ?", (entry.id,))

    def makedirs(self, path: str) -> None:
        """Create the directory ``path`` and its missing parents; existing ones are fine."""
        with self._transaction(
            f"cannot create directory {self.uri(path)}", write=True
        ) as connection:
            now = time.time()
            current = "/"
            for part in [part for part in path.split("/") if part]:
                parent, current = current, posixpath.join(current, part)
                entry = self._get(connection, current)
                if entry is None:
                    connection.execute(
                        "INSERT INTO files (path, parent, is_dir, mtime) VALUES (?, ?, 1, ?)",
                        (current, parent, now),
                    )
                elif not entry.is_dir:
                    raise NotAFileError(
                        f"cannot create directory {self.uri(path)}: {self.uri(current)} is a file"
                    )

    def set_token(self, token: str | None) -> None:
        """Set the token clients must present, or with ``None`` stop requiring one.

        An operator's step: it does not check the current token.
        """
        with self._transaction(
            f"cannot set the token of sqlite://{self.name}", write=True, check_token=False
        ) as connection:
            if token is None:
                connection.execute("DELETE FROM settings WHERE key = 'token'")
            else:
                connection.execute(
                    "INSERT INTO settings (key, value) VALUES ('token', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (token,),
                )


def require_token(database: str | os.PathLike[str], token: str | None) -> None:
    """Make the store in ``database`` require ``token`` (``None``: require none).

    Creates the database if it does not exist yet. Run it as the store's operator, e.g.
    ``python -c "from quorus_example_sqlite import require_token; require_token('s.sqlite3',
    open('token.txt').read().strip())"``.
    """
    store = SqliteStore(Path(database).stem, Path(database))
    try:
        store.set_token(token)
    finally:
        store.close()


__all__ = ["APPLICATION_ID", "Entry", "SqliteStore", "map_sqlite_error", "require_token"]
