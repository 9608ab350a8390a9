"""The in-memory view of a log that both stores keep: contiguous entries after a base.

The base is the snapshot's index and term (0, 0 without a snapshot); entries are held in one
list so slicing for replication is a list slice, not a walk.
"""

from __future__ import annotations

from collections.abc import Sequence

from quorus.core.storage import LogEntry, StorageError


class EntryLog:
    """Entries ``base_index + 1 ..`` in order, with the base's term for lookups."""

    __slots__ = ("_entries", "base_index", "base_term")

    def __init__(self, base_index: int = 0, base_term: int = 0) -> None:
        self.base_index = base_index
        self.base_term = base_term
        self._entries: list[LogEntry] = []

    @property
    def first_index(self) -> int:
        return self.base_index + 1

    @property
    def last_index(self) -> int:
        return self.base_index + len(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        expected = self.last_index + 1
        if entries[0].index != expected:
            raise StorageError(
                f"append must continue the log at index {expected}, got {entries[0].index}"
            )
        previous = expected - 1
        for entry in entries:
            if entry.index != previous + 1:
                raise StorageError(f"entries are not contiguous at index {entry.index}")
            previous = entry.index
        self._entries.extend(entries)

    def truncate_from(self, index: int) -> None:
        if index <= self.base_index:
            raise StorageError(
                f"cannot truncate from {index}: entries up to {self.base_index} are compacted"
            )
        del self._entries[index - self.first_index :]

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogEntry]:
        if lo < self.first_index:
            raise StorageError(f"entry {lo} is compacted (log starts at {self.first_index})")
        start = lo - self.first_index
        stop = min(hi, self.last_index + 1) - self.first_index
        if stop <= start:
            return []
        taken = self._entries[start:stop]
        if max_bytes is None:
            return taken
        total = 0
        for count, entry in enumerate(taken):
            total += len(entry.data)
            if total > max_bytes and count > 0:
                return taken[:count]
        return taken

    def term(self, index: int) -> int | None:
        if index == self.base_index:
            return self.base_term
        if self.base_index < index <= self.last_index:
            return self._entries[index - self.first_index].term
        return None

    def position(self, index: int) -> int:
        """The list position of ``index`` (for callers keeping parallel arrays)."""
        return index - self.first_index

    def compact(self, index: int) -> None:
        """Drop entries up to ``index``; the new base takes that entry's term."""
        if index <= self.base_index:
            return
        term = self.term(index)
        if term is None:
            raise StorageError(f"cannot compact to {index}: beyond the last entry")
        del self._entries[: index - self.base_index]
        self.base_index = index
        self.base_term = term

    def all(self) -> list[LogEntry]:
        return list(self._entries)
