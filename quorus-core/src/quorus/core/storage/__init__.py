"""Durable state for the controller: a replicated log, the hard state and snapshots.

A :class:`LogStore` is what a consensus backend writes before it acts: log entries, the
current term and vote (:class:`HardState`), and snapshots of the state machine. Stores are
plugins in the ``quorus.storage`` entry-point group; core ships ``file`` (segmented log with a
CRC per record, torn-tail recovery, atomic snapshot files) and ``memory`` (for tests).

The interface is blocking and not thread-safe: a backend calls it from one worker thread at a
time (or from its event loop for the cheap in-memory reads). Writes are buffered until
:meth:`LogStore.sync`, which makes everything written since the last sync durable with one
fsync — a backend batches a group of proposals, votes and appends into one sync.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from quorus.core.errors import QuorusError

#: Entry kinds every backend understands; a backend may use other values for its own needs.
ENTRY_NORMAL = 0
ENTRY_NOOP = 1
ENTRY_CONFIG = 2


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the replicated log. ``data`` is opaque to the store."""

    index: int
    term: int
    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    """What a node must remember across restarts before it acts: its term, its vote in that
    term, and (as a hint for faster recovery) the highest index it knows to be committed."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot stands in the log. ``configuration`` is the cluster membership at
    ``index`` in the consensus backend's own encoding; ``size`` is the data's length."""

    index: int
    term: int
    configuration: bytes = b""
    size: int = 0


@dataclass(slots=True)
class RecoveredState:
    """What :meth:`LogStore.open` found on disk."""

    hard_state: HardState
    snapshot: SnapshotMeta | None
    #: Entries after the snapshot (or from index 1 without one), contiguous.
    entries: list[LogEntry]
    #: Repairs made while opening (a torn tail cut off), for the operator's log.
    repairs: list[str] = field(default_factory=list)


class StorageError(QuorusError):
    """The store cannot do what was asked (bad arguments, I/O failure)."""


class CorruptStorageError(StorageError):
    """Data on disk failed its checksum or structure check somewhere other than a torn tail.

    Never silently applied or skipped: the node stops and reports the file and offset, so an
    operator can restore it from a snapshot or re-add it to the cluster empty.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt data in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class SnapshotWriter(abc.ABC):
    """A snapshot being received in chunks; :meth:`commit` makes it the store's snapshot."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append ``data`` to the snapshot."""

    @abc.abstractmethod
    def commit(self) -> SnapshotMeta:
        """Make the snapshot durable and current (atomically); returns its metadata."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard what was written. Safe to call more than once."""


class LogStore(abc.ABC):
    """A durable log with hard state and snapshots. See the module docstring."""

    @abc.abstractmethod
    def open(self) -> RecoveredState:
        """Load what is stored, repairing a torn tail; call once before anything else.

        Raises :class:`CorruptStorageError` for damage that is not a torn tail.
        """

    @property
    @abc.abstractmethod
    def first_index(self) -> int:
        """Index of the first entry still in the log (snapshot index + 1 after compaction)."""

    @property
    @abc.abstractmethod
    def last_index(self) -> int:
        """Index of the last entry, or the snapshot's index when the log is empty."""

    @abc.abstractmethod
    def append(self, entries: Sequence[LogEntry]) -> None:
        """Append entries; the first must follow :attr:`last_index` directly. Not durable
        until :meth:`sync`."""

    @abc.abstractmethod
    def truncate_from(self, index: int) -> None:
        """Drop every entry with an index ≥ ``index`` (a follower's conflicting suffix)."""

    @abc.abstractmethod
    def set_hard_state(self, state: HardState) -> None:
        """Record the hard state; not durable until :meth:`sync`."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Make every append, truncation and hard state since the last sync durable."""

    def begin_sync(self) -> Callable[[], None]:
        """Start a sync that can finish in another thread while this store takes more writes.

        Everything written before the call is handed to the operating system now; the
        returned function (blocking, safe to call from a worker thread while the store is
        used) makes it durable. This lets a backend write the next batch during the fsync of
        the previous one. The default syncs at once and returns a no-op.
        """
        self.sync()
        return _nothing

    @abc.abstractmethod
    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogEntry]:
        """Entries with ``lo <= index < hi``; with ``max_bytes``, stop once the data of the
        entries taken exceeds it (at least one entry is returned when any is in range).
        Raises :class:`StorageError` when ``lo`` is before :attr:`first_index`."""

    @abc.abstractmethod
    def term(self, index: int) -> int | None:
        """The term of the entry at ``index`` (or of the snapshot at its index); ``None`` when
        the index is compacted away or beyond the end."""

    @property
    @abc.abstractmethod
    def snapshot_meta(self) -> SnapshotMeta | None:
        """The current snapshot's metadata, if there is one."""

    @abc.abstractmethod
    def snapshot_writer(self, meta: SnapshotMeta) -> SnapshotWriter:
        """Start writing a snapshot at ``meta.index``; the data arrives by chunks."""

    def save_snapshot(self, meta: SnapshotMeta, data: bytes | Iterable[bytes]) -> SnapshotMeta:
        """Write a whole snapshot durably and make it current."""
        writer = self.snapshot_writer(meta)
        try:
            for chunk in [data] if isinstance(data, bytes) else data:
                writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    @abc.abstractmethod
    def read_snapshot(self, offset: int = 0, size: int | None = None) -> bytes:
        """Bytes of the current snapshot's data from ``offset`` (all of the rest by default)."""

    @abc.abstractmethod
    def compact(self, index: int) -> None:
        """Forget entries up to and including ``index``, which a snapshot must cover."""

    @abc.abstractmethod
    def reset(self, meta: SnapshotMeta) -> None:
        """Discard the whole log after installing a snapshot newer than it: the log then
        starts at ``meta.index + 1``. The snapshot must already be current."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files. Unsynced writes may be lost, as in a crash."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _nothing() -> None:
    return None


def load_store(name: str, directory: Path | None, options: Mapping[str, Any] | None = None) -> LogStore:
    """Create the store registered as ``name`` in ``quorus.storage`` (not yet opened)."""
    from quorus.core.plugins import STORAGE, registry

    factory = registry().load(STORAGE, name)
    store = factory(directory, dict(options or {}))
    if not isinstance(store, LogStore):
        raise StorageError(f"storage plugin {name!r} did not return a LogStore")
    return store


__all__ = [
    "ENTRY_CONFIG",
    "ENTRY_NOOP",
    "ENTRY_NORMAL",
    "CorruptStorageError",
    "HardState",
    "LogEntry",
    "LogStore",
    "RecoveredState",
    "SnapshotMeta",
    "SnapshotWriter",
    "StorageError",
    "load_store",
]
