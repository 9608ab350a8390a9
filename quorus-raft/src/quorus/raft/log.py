"""The core's view of the Raft log: every entry since the last snapshot, held in memory.

The log is a Python list of :class:`Entry` after a snapshot boundary ``(offset, offset_term)``;
entry ``i`` sits at ``entries[i - offset - 1]``. Terms never decrease along a log, so "first
index of term t" is a binary search, which keeps fast backtracking cheap on long logs.

Three marks move along it: ``stable`` (the runtime confirmed entries up to here are durable),
``committed`` and ``applying`` (handed to the runtime for applying). ``unstable_from`` is the
first index not yet handed to the runtime for persisting; ``truncated_from`` records an
overwrite of entries the runtime had already been given.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from quorus.raft.messages import Entry, SnapshotMeta


def _term_of(entry: Entry) -> int:
    return entry.term


class RaftLog:
    """Entries after a snapshot, with the stable / committed / applying marks."""

    __slots__ = (
        "applying",
        "committed",
        "entries",
        "offset",
        "offset_term",
        "stable",
        "truncated_from",
        "unstable_from",
    )

    def __init__(self, snapshot: SnapshotMeta | None, entries: list[Entry], committed: int,
                 applied: int) -> None:
        self.offset = snapshot.index if snapshot else 0
        self.offset_term = snapshot.term if snapshot else 0
        expected = self.offset + 1
        for entry in entries:
            if entry.index != expected:
                raise ValueError(
                    f"log entries must start at {self.offset + 1} and be consecutive: "
                    f"found index {entry.index} where {expected} was expected"
                )
            expected += 1
        self.entries = list(entries)
        last = self.last_index
        self.stable = last
        self.unstable_from = last + 1
        self.truncated_from: int | None = None
        self.committed = min(max(committed, self.offset), last)
        self.applying = min(max(applied, self.offset), self.committed)

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term_at(self, index: int) -> int | None:
        """The term of entry ``index``; ``None`` when compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        pos = index - self.offset - 1
        if 0 <= pos < len(self.entries):
            return self.entries[pos].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``lo`` through ``hi`` inclusive (both must be in the log)."""
        return self.entries[lo - self.offset - 1 : hi - self.offset]

    def matches(self, index: int, term: int) -> bool:
        return self.term_at(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at ``(last_index, last_term)`` is at least as current as this."""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def first_index_of_term(self, term: int, at_or_before: int) -> int:
        """The first index holding ``term``, searching entries up to ``at_or_before``."""
        hi = min(at_or_before, self.last_index) - self.offset
        pos = bisect_left(self.entries, term, 0, max(hi, 0), key=_term_of)
        return self.offset + pos + 1

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding ``term``, or ``None`` when this log has no entry of it."""
        pos = bisect_right(self.entries, term, key=_term_of)
        if pos > 0 and self.entries[pos - 1].term == term:
            return self.offset + pos
        if pos == 0 and self.offset_term == term and self.offset > 0:
            return self.offset
        return None

    def append(self, entries: list[Entry]) -> None:
        """Append entries that follow the last one directly."""
        self.entries.extend(entries)

    def truncate_after(self, index: int) -> None:
        """Drop every entry after ``index`` (never a committed one)."""
        if index < self.committed:
            raise AssertionError(f"refusing to truncate committed entries after {index}")
        del self.entries[index - self.offset :]
        first_gone = index + 1
        if first_gone < self.unstable_from:
            self.truncated_from = (
                first_gone if self.truncated_from is None else min(self.truncated_from,
                                                                   first_gone)
            )
            self.unstable_from = first_gone
        self.stable = min(self.stable, index)

    def merge(self, prev_index: int, entries: tuple[Entry, ...]) -> int:
        """Follower side: store ``entries`` after a matched ``prev_index``.

        Entries already present with the same term are skipped; the first one that conflicts
        truncates this log from there on. Returns the first index actually written (0 when
        every entry was already present).
        """
        if not entries:
            return 0
        last = self.last_index
        if entries[0].index == last + 1:
            self.entries.extend(entries)
            return last + 1
        for pos, entry in enumerate(entries):
            if entry.index <= self.offset:
                continue
            if entry.index > last:
                self.entries.extend(entries[pos:])
                return entry.index
            if self.entry(entry.index).term != entry.term:
                self.truncate_after(entry.index - 1)
                self.entries.extend(entries[pos:])
                return entry.index
        return 0

    def restore(self, meta: SnapshotMeta) -> None:
        """Replace the whole log by a snapshot; everything in it is committed and applied."""
        if self.unstable_from <= self.last_index or self.entries:
            self.truncated_from = (
                self.offset + 1 if self.truncated_from is None else min(self.truncated_from,
                                                                        self.offset + 1)
            )
        self.entries = []
        self.offset = meta.index
        self.offset_term = meta.term
        self.stable = meta.index
        self.unstable_from = meta.index + 1
        self.committed = meta.index
        self.applying = meta.index

    def compact(self, meta: SnapshotMeta) -> None:
        """Forget entries up to ``meta.index``, which a durable snapshot now covers."""
        if meta.index <= self.offset:
            return
        del self.entries[: meta.index - self.offset]
        self.offset = meta.index
        self.offset_term = meta.term
        self.stable = max(self.stable, meta.index)
        self.unstable_from = max(self.unstable_from, meta.index + 1)

    def take_unstable(self) -> tuple[int | None, list[Entry]]:
        """Hand over what the runtime must persist: (truncate-from index, new entries)."""
        truncated = self.truncated_from
        self.truncated_from = None
        if self.unstable_from > self.last_index:
            return truncated, []
        out = self.entries[self.unstable_from - self.offset - 1 :]
        self.unstable_from = self.last_index + 1
        return truncated, out

    def take_committed(self) -> list[Entry]:
        """Hand over committed, durable entries not yet handed over for applying."""
        hi = min(self.committed, self.stable)
        if hi <= self.applying:
            return []
        out = self.slice(self.applying + 1, hi)
        self.applying = hi
        return out
