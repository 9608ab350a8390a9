"""The ``file`` log store: a segmented append-only log and atomic snapshot files.

Layout under the store's directory::

    log/00000000000000000001.seg     segments, named by the index of their first entry
    snapshots/<index>-<term>.snap    the current snapshot (older ones are removed)

A segment starts with an 8-byte magic and holds records ``[u32 length][u32 crc][u8 type]
[payload]``; the CRC (zlib's CRC-32, computed in C, fast enough that it never shows in a
profile) covers the type and payload. Entry records carry index, term, kind and data; state
records carry the hard state, and every new segment begins with one, so deleting old segments
never loses the latest term and vote.

Recovery on :meth:`FileLogStore.open`: a record cut short at the end of the last segment — or
failing its CRC as the very last record there, or followed by nothing but zero fill — is a torn
write from a crash and is truncated (and reported in :attr:`RecoveredState.repairs`), but only
if no intact record (a plausible header whose CRC matches) starts anywhere after it: a record
length is not trusted, so a damaged length that seems to run past the end of the file must not
pass for a torn tail and have the acknowledged records after it cut off. Any other bad record
raises :class:`CorruptStorageError` naming the file and offset, and the file is left as it was;
nothing after it is applied.

Snapshots are written to a temporary file, fsynced, renamed into place and the directory
fsynced; a trailer holds the metadata and the data's CRC, checked when the store opens.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from quorus.core.storage import (
    CorruptStorageError,
    HardState,
    LogEntry,
    LogStore,
    RecoveredState,
    SnapshotMeta,
    SnapshotWriter,
    StorageError,
)
from quorus.core.storage.entries import EntryLog

SEGMENT_MAGIC = b"QRSLOG01"
SNAPSHOT_MAGIC = b"QRSNAP01"
_HEADER = struct.Struct("<IIB")
_ENTRY = struct.Struct("<QQB")
_TRAILER_LEN = struct.Struct("<I")
_REC_ENTRY = 1
_REC_STATE = 2
#: Where a record's type byte sits in its header, and the bytes a valid one can hold.
_KIND_AT = _HEADER.size - 1
_RECORD_KINDS = re.compile(b"[" + re.escape(bytes((_REC_ENTRY, _REC_STATE))) + b"]")
#: A record longer than this is damage, not data (entries are far smaller).
MAX_RECORD = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
#: Appends are buffered in memory up to this size before being handed to the kernel.
_WRITE_BUFFER = 1024 * 1024


def _nothing() -> None:
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _encode_state(state: HardState) -> bytes:
    payload: bytes = msgpack.packb([state.term, state.vote, state.commit])
    return payload


def _record(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes((kind,))))
    return _HEADER.pack(len(payload), crc, kind) + payload


@dataclass
class _Segment:
    path: Path
    first_index: int
    #: File offset of each entry record, entry ``first_index + i`` at ``offsets[i]``.
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    size: int = 0


class _FileSnapshotWriter(SnapshotWriter):
    def __init__(self, store: FileLogStore, meta: SnapshotMeta) -> None:
        self._store = store
        self._meta = meta
        self._final = store.snapshot_dir / f"{meta.index:020d}-{meta.term:020d}.snap"
        self._tmp = store.snapshot_dir / f".tmp-{meta.index:020d}-{meta.term:020d}.snap"
        # Only the owner may read it, like the log segments: it holds the same data.
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a leftover file of the same name keeps its mode otherwise
            self._file = open(fd, "wb")  # noqa: SIM115 - closed by commit/abort
        except BaseException:
            os.close(fd)
            raise
        self._crc = 0
        self._size = 0
        self._done = False
        store._writers.add(self)

    def release(self) -> None:
        """Close the temporary file without removing it (the store is closing)."""
        self._file.close()

    def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError("snapshot writer already finished")
        self._file.write(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def commit(self) -> SnapshotMeta:
        if self._done:
            raise StorageError("snapshot writer already finished")
        self._done = True
        self._store._writers.discard(self)
        meta = SnapshotMeta(self._meta.index, self._meta.term, self._meta.configuration, self._size)
        trailer: bytes = msgpack.packb(
            {
                "index": meta.index,
                "term": meta.term,
                "configuration": meta.configuration,
                "size": meta.size,
                "crc": self._crc,
            }
        )
        try:
            self._file.write(trailer + _TRAILER_LEN.pack(len(trailer)) + SNAPSHOT_MAGIC)
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        os.replace(self._tmp, self._final)
        _fsync_dir(self._store.snapshot_dir)
        self._store._snapshot_installed(meta, self._final)
        return meta

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._done = True
        self._store._writers.discard(self)
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class FileLogStore(LogStore):
    """A :class:`LogStore` on local disk; see the module docstring."""

    def __init__(
        self, directory: Path | str, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.log_dir = self.directory / "log"
        self.snapshot_dir = self.directory / "snapshots"
        self.segment_bytes = segment_bytes
        self._log = EntryLog()
        self._segments: list[_Segment] = []
        self._fd = -1
        self._buf = bytearray()
        self._dirty_fds: list[int] = []
        self._hard_state = HardState()
        self._snapshot: tuple[SnapshotMeta, Path] | None = None
        self._unsynced = False
        self._new_dir_entry = False
        self._writers: set[_FileSnapshotWriter] = set()
        self._opened = False
        #: fsyncs performed (for metrics and tests of group commit).
        self.syncs = 0

    @classmethod
    def from_options(cls, directory: Path | None, options: Mapping[str, Any]) -> FileLogStore:
        """The entry-point factory: ``directory`` is required; ``segment_bytes`` optional."""
        if directory is None:
            raise StorageError("the file store needs a data directory")
        return cls(
            directory, segment_bytes=int(options.get("segment_bytes", DEFAULT_SEGMENT_BYTES))
        )

    # -- opening and recovery -------------------------------------------------------------

    def open(self) -> RecoveredState:
        if self._opened:
            raise StorageError("store is already open")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        repairs: list[str] = []
        self._snapshot = self._load_snapshot()
        snap = self._snapshot[0] if self._snapshot else None
        base_index, base_term = (snap.index, snap.term) if snap else (0, 0)
        self._log = EntryLog(base_index, base_term)
        paths = sorted(self.log_dir.glob("*.seg"))
        state = HardState()
        expected: int | None = None
        for number, path in enumerate(paths):
            last = number == len(paths) - 1
            segment, found_state, repair = self._scan(path, last=last)
            if repair:
                repairs.append(repair)
            if found_state is not None:
                state = found_state
            if expected is not None and segment.first_index != expected:
                raise CorruptStorageError(
                    str(path),
                    0,
                    f"segment starts at index {segment.first_index}, expected {expected}",
                )
            expected = segment.first_index + len(segment.offsets)
            self._segments.append(segment)
        self._hard_state = state
        if self._segments and self._segments[0].first_index > base_index + 1:
            raise CorruptStorageError(
                str(self._segments[0].path),
                0,
                f"log starts at index {self._segments[0].first_index} but the snapshot ends at {base_index}",
            )
        self._opened = True
        if self._segments and expected is not None and expected <= base_index:
            # The snapshot is newer than the whole log (a crash between installing a snapshot
            # and resetting the log): the log restarts after the snapshot.
            for segment in reversed(self._segments):
                segment.path.unlink()
            self._segments.clear()
            repairs.append(
                f"log ended at {expected - 1}, before the snapshot at {base_index}: restarted"
            )
        if not self._segments:
            self._new_segment(base_index + 1)
            self.sync()
        else:
            tail = self._segments[-1]
            self._fd = os.open(tail.path, os.O_WRONLY)
            os.lseek(self._fd, tail.size, os.SEEK_SET)
        return RecoveredState(state, snap, self._log.all(), repairs)

    def _scan(self, path: Path, *, last: bool) -> tuple[_Segment, HardState | None, str | None]:
        """Read one segment into memory; returns it, the last hard state in it and a repair."""
        data = path.read_bytes()
        if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
            if last and len(data) < len(SEGMENT_MAGIC) and SEGMENT_MAGIC.startswith(data):
                with open(path, "wb") as f:
                    f.write(SEGMENT_MAGIC)
                    os.fsync(f.fileno())
                return (
                    _Segment(path, int(path.stem), size=len(SEGMENT_MAGIC)),
                    None,
                    f"{path}: torn segment header rewritten",
                )
            raise CorruptStorageError(str(path), 0, "not a Quorus log segment (bad magic)")
        segment = _Segment(path, int(path.stem))
        state: HardState | None = None
        pos = len(SEGMENT_MAGIC)
        end = len(data)
        snapshot_index = self._log.base_index
        while pos < end:
            problem = self._check_record(data, pos)
            if problem is not None:
                if last and self._is_tail(data, pos):
                    intact = self._next_intact_record(data, pos + 1)
                    if intact is not None:
                        # Damage followed by an intact record is not a crash mid-write: what
                        # follows was written (and maybe acknowledged) after it.
                        raise CorruptStorageError(
                            str(path),
                            pos,
                            f"{problem}, but an intact record follows at offset {intact}",
                        )
                    os.truncate(path, pos)
                    segment.size = pos
                    return (
                        segment,
                        state,
                        f"{path}: torn tail at offset {pos} truncated ({problem})",
                    )
                raise CorruptStorageError(str(path), pos, problem)
            length, _crc, kind = _HEADER.unpack_from(data, pos)
            body = pos + _HEADER.size
            if kind == _REC_ENTRY:
                index, term, entry_kind = _ENTRY.unpack_from(data, body)
                expected = segment.first_index + len(segment.offsets)
                if index != expected:
                    raise CorruptStorageError(
                        str(path), pos, f"entry index {index} where {expected} was expected"
                    )
                segment.offsets.append(pos)
                if index > snapshot_index:
                    payload = bytes(data[body + _ENTRY.size : body + length])
                    self._log.append([LogEntry(index, term, entry_kind, payload)])
            elif kind == _REC_STATE:
                try:
                    term, vote, commit = msgpack.unpackb(data[body : body + length])
                    state = HardState(int(term), vote, int(commit))
                except (ValueError, TypeError) as exc:
                    raise CorruptStorageError(str(path), pos, f"bad hard state: {exc}") from exc
            else:
                raise CorruptStorageError(str(path), pos, f"unknown record type {kind}")
            pos = body + length
        segment.size = pos
        return segment, state, None

    @staticmethod
    def _check_record(data: bytes, pos: int) -> str | None:
        if pos + _HEADER.size > len(data):
            return "record header cut short by the end of the file"
        length, crc, kind = _HEADER.unpack_from(data, pos)
        if length > MAX_RECORD:
            return f"record length {length} is implausible"
        body = pos + _HEADER.size
        if body + length > len(data):
            return f"record length {length} runs past the end of the file"
        if zlib.crc32(memoryview(data)[body : body + length], zlib.crc32(bytes((kind,)))) != crc:
            return "CRC mismatch"
        if kind == _REC_ENTRY and length < _ENTRY.size:
            return "entry record too short"
        return None

    @staticmethod
    def _next_intact_record(data: bytes, start: int) -> int | None:
        """The offset of the first record at or after ``start`` whose header is plausible and
        whose CRC matches, or None. A torn write leaves only part of one record there (or
        zeros); damage in the middle of a segment leaves the records written after it."""
        view = memoryview(data)
        end = len(data)
        # Candidates are found by their type byte, so zero fill and most other bytes are
        # skipped in C; a header also needs a length that fits and a CRC that matches.
        for match in _RECORD_KINDS.finditer(data, start + _KIND_AT):
            pos = match.start() - _KIND_AT
            length, crc, kind = _HEADER.unpack_from(data, pos)
            body = pos + _HEADER.size
            if body + length > end or (kind == _REC_ENTRY and length < _ENTRY.size):
                continue
            if zlib.crc32(view[body : body + length], zlib.crc32(bytes((kind,)))) == crc:
                return pos
        return None

    @staticmethod
    def _is_tail(data: bytes, pos: int) -> bool:
        """Whether a bad record looks like the last one, as a torn write leaves it: cut short
        by the end of the file (its header, or its data as its header claims), ending exactly
        at the end of the file, or followed by nothing but zero fill. The length it claims may
        itself be the damage: :meth:`_next_intact_record` decides whether it is the last."""
        if pos + _HEADER.size > len(data):
            return True
        length = _HEADER.unpack_from(data, pos)[0]
        if length <= MAX_RECORD and pos + _HEADER.size + length >= len(data):
            return True
        return not any(memoryview(data)[pos:])

    def _load_snapshot(self) -> tuple[SnapshotMeta, Path] | None:
        for leftover in self.snapshot_dir.glob(".tmp-*"):
            leftover.unlink()
        snaps = sorted(self.snapshot_dir.glob("*.snap"))
        if not snaps:
            return None
        path = snaps[-1]
        meta, crc = self._read_trailer(path)
        running = 0
        with open(path, "rb") as f:
            remaining = meta.size
            while remaining:
                chunk = f.read(min(remaining, 4 * 1024 * 1024))
                if not chunk:
                    raise CorruptStorageError(
                        str(path), meta.size - remaining, "snapshot data cut short"
                    )
                running = zlib.crc32(chunk, running)
                remaining -= len(chunk)
        if running != crc:
            raise CorruptStorageError(str(path), 0, "snapshot data fails its CRC")
        for older in snaps[:-1]:
            older.unlink()
        return meta, path

    @staticmethod
    def _read_trailer(path: Path) -> tuple[SnapshotMeta, int]:
        size = path.stat().st_size
        tail_len = _TRAILER_LEN.size + len(SNAPSHOT_MAGIC)
        with open(path, "rb") as f:
            if size < tail_len:
                raise CorruptStorageError(str(path), 0, "snapshot file too short")
            f.seek(size - tail_len)
            tail = f.read(tail_len)
            if tail[_TRAILER_LEN.size :] != SNAPSHOT_MAGIC:
                raise CorruptStorageError(
                    str(path), size - len(SNAPSHOT_MAGIC), "bad snapshot magic"
                )
            (trailer_len,) = _TRAILER_LEN.unpack_from(tail)
            start = size - tail_len - trailer_len
            if start < 0:
                raise CorruptStorageError(str(path), 0, "snapshot trailer length is implausible")
            f.seek(start)
            try:
                fields = msgpack.unpackb(f.read(trailer_len))
                meta = SnapshotMeta(
                    int(fields["index"]),
                    int(fields["term"]),
                    bytes(fields["configuration"]),
                    int(fields["size"]),
                )
                crc = int(fields["crc"])
            except (ValueError, TypeError, KeyError) as exc:
                raise CorruptStorageError(str(path), start, f"bad snapshot trailer: {exc}") from exc
        if meta.size != start:
            raise CorruptStorageError(str(path), start, "snapshot size does not match its trailer")
        return meta, crc

    # -- writing ----------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._opened:
            raise StorageError("store is not open")

    def _new_segment(self, first_index: int) -> None:
        self._flush()
        if self._fd >= 0:
            self._dirty_fds.append(self._fd)
        path = self.log_dir / f"{first_index:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._segments.append(_Segment(path, first_index))
        self._buf += SEGMENT_MAGIC
        self._segments[-1].size = len(SEGMENT_MAGIC)
        self._write_record(_REC_STATE, _encode_state(self._hard_state))
        # The new file's name must survive a crash before anything in it is acknowledged.
        self._new_dir_entry = True
        self._unsynced = True

    def _write_record(self, kind: int, payload: bytes) -> int:
        segment = self._segments[-1]
        offset = segment.size
        record = _record(kind, payload)
        self._buf += record
        segment.size += len(record)
        if len(self._buf) >= _WRITE_BUFFER:
            self._flush()
        return offset

    def _flush(self) -> None:
        if self._buf and self._fd >= 0:
            _write_all(self._fd, self._buf)
            self._buf.clear()

    @property
    def first_index(self) -> int:
        return self._log.first_index

    @property
    def last_index(self) -> int:
        return self._log.last_index

    def append(self, entries: Sequence[LogEntry]) -> None:
        self._require_open()
        if not entries:
            return
        self._log.append(entries)
        pack = _ENTRY.pack
        for entry in entries:
            segment = self._segments[-1]
            if segment.size >= self.segment_bytes and segment.offsets:
                self._new_segment(entry.index)
                segment = self._segments[-1]
            offset = self._write_record(
                _REC_ENTRY, pack(entry.index, entry.term, entry.kind) + entry.data
            )
            segment.offsets.append(offset)
        self._unsynced = True

    def truncate_from(self, index: int) -> None:
        self._require_open()
        self._log.truncate_from(index)
        self._flush()
        # Later segments go first, so a crash part-way leaves a prefix of the log.
        while len(self._segments) > 1 and self._segments[-1].first_index >= index:
            dropped = self._segments.pop()
            os.close(self._fd)
            dropped.path.unlink()
            tail = self._segments[-1]
            self._fd = os.open(tail.path, os.O_WRONLY)
        segment = self._segments[-1]
        keep = index - segment.first_index
        if keep < len(segment.offsets):
            segment.size = segment.offsets[keep]
            del segment.offsets[keep:]
        os.ftruncate(self._fd, segment.size)
        os.lseek(self._fd, segment.size, os.SEEK_SET)
        # Truncation is rare (a follower's conflicting suffix) and must not be undone by a
        # crash while new entries land at the same offsets, so it is made durable at once.
        os.fdatasync(self._fd)
        _fsync_dir(self.log_dir)
        self._write_record(_REC_STATE, _encode_state(self._hard_state))
        self._unsynced = True

    def set_hard_state(self, state: HardState) -> None:
        self._require_open()
        if state == self._hard_state:
            return
        self._hard_state = state
        self._write_record(_REC_STATE, _encode_state(state))
        self._unsynced = True

    def begin_sync(self) -> Callable[[], None]:
        self._require_open()
        if not self._unsynced:
            return _nothing
        self._flush()
        # Duplicates keep the files open for the fsync even if the store rolls to a new
        # segment (and closes the old one) meanwhile.
        fds = [os.dup(fd) for fd in [*self._dirty_fds, self._fd]]
        for fd in self._dirty_fds:
            os.close(fd)
        self._dirty_fds.clear()
        new_entry, self._new_dir_entry = self._new_dir_entry, False
        self._unsynced = False
        log_dir = self.log_dir

        def finish() -> None:
            try:
                for fd in fds:
                    os.fdatasync(fd)
                if new_entry:
                    _fsync_dir(log_dir)
            finally:
                for fd in fds:
                    os.close(fd)
            self.syncs += 1

        return finish

    def sync(self) -> None:
        self._require_open()
        if not self._unsynced:
            return
        self._flush()
        for fd in self._dirty_fds:
            os.fdatasync(fd)
            os.close(fd)
        self._dirty_fds.clear()
        os.fdatasync(self._fd)
        if self._new_dir_entry:
            _fsync_dir(self.log_dir)
            self._new_dir_entry = False
        self._unsynced = False
        self.syncs += 1

    # -- reading ----------------------------------------------------------------------------

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[LogEntry]:
        return self._log.slice(lo, hi, max_bytes)

    def term(self, index: int) -> int | None:
        return self._log.term(index)

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    # -- snapshots and compaction ----------------------------------------------------------------

    @property
    def snapshot_meta(self) -> SnapshotMeta | None:
        return self._snapshot[0] if self._snapshot else None

    def snapshot_writer(self, meta: SnapshotMeta) -> SnapshotWriter:
        self._require_open()
        return _FileSnapshotWriter(self, meta)

    def _snapshot_installed(self, meta: SnapshotMeta, path: Path) -> None:
        previous = self._snapshot
        if previous is not None and previous[0].index > meta.index:
            # A newer snapshot became current while this one was being written (one taken
            # locally in the background, one received from the leader): keep the newer.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        self._snapshot = (meta, path)
        if previous is not None and previous[1] != path:
            with contextlib.suppress(FileNotFoundError):
                previous[1].unlink()

    def read_snapshot(self, offset: int = 0, size: int | None = None) -> bytes:
        if self._snapshot is None:
            raise StorageError("there is no snapshot")
        meta, path = self._snapshot
        count = meta.size - offset if size is None else min(size, meta.size - offset)
        if count <= 0:
            return b""
        with open(path, "rb") as f:
            return os.pread(f.fileno(), count, offset)

    def compact(self, index: int) -> None:
        self._require_open()
        snap = self.snapshot_meta
        if snap is None or index > snap.index:
            raise StorageError(f"cannot compact to {index}: no snapshot covers it")
        self._log.compact(index)
        # A segment can go once every entry in it is compacted: the next one starts at or
        # before index + 1. The segment being written to always stays.
        while len(self._segments) > 1 and self._segments[1].first_index <= index + 1:
            self._segments.pop(0).path.unlink()

    def reset(self, meta: SnapshotMeta) -> None:
        self._require_open()
        if self.snapshot_meta != meta:
            raise StorageError("reset needs the snapshot it starts from to be current")
        self._buf.clear()
        os.close(self._fd)
        self._fd = -1
        for fd in self._dirty_fds:
            os.close(fd)
        self._dirty_fds.clear()
        for segment in reversed(self._segments):
            segment.path.unlink()
        self._segments.clear()
        self._log = EntryLog(meta.index, meta.term)
        self._new_segment(meta.index + 1)
        self.sync()

    def close(self) -> None:
        # Unsynced buffered data is dropped, as a crash would drop it; a snapshot still being
        # received stays a temporary file, removed when the store next opens.
        self._buf.clear()
        for writer in list(self._writers):
            writer.release()
        self._writers.clear()
        for fd in [*self._dirty_fds, self._fd]:
            if fd >= 0:
                os.close(fd)
        self._dirty_fds.clear()
        self._fd = -1
        self._opened = False
