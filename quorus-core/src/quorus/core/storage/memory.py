"""The ``memory`` log store: everything in memory, with crashes that lose unsynced writes.

For tests and simulations. A :class:`MemoryDisk` plays the part of the disk: a store writes to
it only on :meth:`~MemoryLogStore.sync`, so a new store opened on the same disk after
:meth:`~MemoryLogStore.close` without a sync sees what a real node would see after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorus.core.storage import (
    HardState,
    LogEntry,
    LogStore,
    RecoveredState,
    SnapshotMeta,
    SnapshotWriter,
    StorageError,
)
from quorus.core.storage.entries import EntryLog


@dataclass
class MemoryDisk:
    """The durable part of a memory store: what survives a crash."""

    hard_state: HardState = field(default_factory=HardState)
    entries: list[LogEntry] = field(default_factory=list)
    snapshot: tuple[SnapshotMeta, bytes] | None = None
    syncs: int = 0


class _MemorySnapshotWriter(SnapshotWriter):
    def __init__(self, store: MemoryLogStore, meta: SnapshotMeta) -> None:
        self._store = store
        self._meta = meta
        self._chunks: list[bytes] = []
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError("snapshot writer already finished")
        self._chunks.append(bytes(data))

    def commit(self) -> SnapshotMeta:
        if self._done:
            raise StorageError("snapshot writer already finished")
        self._done = True
        data = b"".join(self._chunks)
        meta = SnapshotMeta(self._meta.index, self._meta.term, self._meta.configuration, len(data))
        # A snapshot is written durably on its own, as the file store does; an older one than
        # the current snapshot (written in the background meanwhile) is dropped.
        current = self._store._snapshot
        if current is None or current[0].index <= meta.index:
            self._store._snapshot = (meta, data)
            self._store.disk.snapshot = (meta, data)
        return meta

    def abort(self) -> None:
        self._done = True
        self._chunks.clear()


class MemoryLogStore(LogStore):
    """A :class:`LogStore` in memory; see the module docstring."""

    def __init__(self, disk: MemoryDisk | None = None) -> None:
        self.disk = disk if disk is not None else MemoryDisk()
        self._log = EntryLog()
        self._hard_state = HardState()
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self._dirty = False

    @classmethod
    def from_options(cls, directory: Path | None, options: Mapping[str, Any]) -> MemoryLogStore:
        """The entry-point factory: a fresh, empty store (``directory`` is ignored)."""
        return cls()

    def open(self) -> RecoveredState:
        disk = self.disk
        self._hard_state = disk.hard_state
        self._snapshot = disk.snapshot
        start = disk.snapshot[0].index if disk.snapshot else 0
        start_term = disk.snapshot[0].term if disk.snapshot else 0
        self._log = EntryLog(start, start_term)
        kept = [e for e in disk.entries if e.index > start]
        self._log.append(kept)
        return RecoveredState(
            self._hard_state, disk.snapshot[0] if disk.snapshot else None, list(kept)
        )

    @property
    def first_index(self) -> int:
        return self._log.first_index

    @property
    def last_index(self) -> int:
        return self._log.last_index

    def append(self, entries: Sequence[LogEntry]) -> None:
        self._log.append(entries)
        self._dirty = True

    def truncate_from(self, index: int) -> None:
        self._log.truncate_from(index)
        self._dirty = True

    def set_hard_state(self, state: HardState) -> None:
        self._hard_state = state
        self._dirty = True

    def sync(self) -> None:
        if not self._dirty:
            return
        self.disk.hard_state = self._hard_state
        self.disk.entries = self._log.all()
        self.disk.syncs += 1
        self._dirty = False

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogEntry]:
        return self._log.slice(lo, hi, max_bytes)

    def term(self, index: int) -> int | None:
        return self._log.term(index)

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot[0] if self._snapshot else None

    def snapshot_writer(self, meta: SnapshotMeta) -> SnapshotWriter:
        return _MemorySnapshotWriter(self, meta)

    def read_snapshot(self, offset: int = 0, size: int | None = None) -> bytes:
        if self._snapshot is None:
            raise StorageError("there is no snapshot")
        data = self._snapshot[1]
        return data[offset:] if size is None else data[offset : offset + size]

    def compact(self, index: int) -> None:
        snap = self.snapshot_meta
        if snap is None or index > snap.index:
            raise StorageError(f"cannot compact to {index}: no snapshot covers it")
        self._log.compact(index)
        self._dirty = True

    def reset(self, meta: SnapshotMeta) -> None:
        if self.snapshot_meta != meta:
            raise StorageError("reset needs the snapshot it starts from to be current")
        self._log = EntryLog(meta.index, meta.term)
        self._dirty = True

    def close(self) -> None:
        self._dirty = False
