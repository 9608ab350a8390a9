"""The log stores: the same contract for ``memory`` and ``file``, then the file store's
recovery from torn writes and its refusal of corrupt data."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.core.storage import (
    CorruptStorageError,
    HardState,
    LogEntry,
    LogStore,
    SnapshotMeta,
    StorageError,
)
from quorus.core.storage.file import FileLogStore
from quorus.core.storage.memory import MemoryDisk, MemoryLogStore

StoreFactory = Callable[[], LogStore]


def entries(lo: int, hi: int, term: int = 1, size: int = 10) -> list[LogEntry]:
    return [LogEntry(i, term, 0, bytes([i % 251]) * size) for i in range(lo, hi + 1)]


@pytest.fixture(params=["memory", "file"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory that opens a store on the same durable state each time it is called."""
    disk = MemoryDisk()

    def make() -> LogStore:
        if request.param == "memory":
            return MemoryLogStore(disk)
        return FileLogStore(tmp_path / "store", segment_bytes=4096)

    return make


def test_empty_store_opens_empty(reopen: StoreFactory) -> None:
    store = reopen()
    state = store.open()
    assert state.hard_state == HardState()
    assert state.snapshot is None and state.entries == []
    assert (store.first_index, store.last_index) == (1, 0)
    assert store.term(0) == 0 and store.term(1) is None


def test_synced_entries_and_hard_state_survive_reopen(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 50, term=2))
    store.set_hard_state(HardState(term=3, vote="n2", commit=40))
    store.sync()
    store.close()

    again = reopen()
    state = again.open()
    assert state.hard_state == HardState(3, "n2", 40)
    assert state.entries == entries(1, 50, term=2)
    assert again.last_index == 50 and again.term(50) == 2


def test_unsynced_writes_are_lost_like_in_a_crash(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 5))
    store.sync()
    store.append(entries(6, 8))
    store.set_hard_state(HardState(term=9, vote="x"))
    store.close()  # no sync: a crash

    state = reopen().open()
    assert [e.index for e in state.entries] == [1, 2, 3, 4, 5]
    assert state.hard_state == HardState()


def test_append_must_continue_the_log(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 3))
    with pytest.raises(StorageError, match="continue the log at index 4"):
        store.append(entries(5, 6))
    with pytest.raises(StorageError, match="not contiguous"):
        store.append([LogEntry(4, 1, 0, b""), LogEntry(6, 1, 0, b"")])


def test_truncate_replaces_a_conflicting_suffix(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 300, term=1))  # several 4 KiB segments for the file store
    store.sync()
    store.truncate_from(120)
    store.append(entries(120, 130, term=5))
    store.sync()
    store.close()

    state = reopen().open()
    assert [e.index for e in state.entries] == list(range(1, 131))
    assert {e.term for e in state.entries if e.index >= 120} == {5}
    assert {e.term for e in state.entries if e.index < 120} == {1}


def test_entries_slices_by_range_and_bytes(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 20, size=100))
    assert [e.index for e in store.entries(5, 9)] == [5, 6, 7, 8]
    assert [e.index for e in store.entries(5, 100, max_bytes=250)] == [5, 6]
    assert [e.index for e in store.entries(5, 100, max_bytes=10)] == [5]  # at least one
    assert store.entries(21, 30) == []


def test_snapshot_compaction_and_reads(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 400, term=2))
    store.sync()
    data = os.urandom(100_000)
    meta = store.save_snapshot(SnapshotMeta(300, 2, b"cfg"), [data[:40_000], data[40_000:]])
    assert meta.size == len(data)
    store.compact(250)  # keep a tail behind the snapshot for slow followers
    assert store.first_index == 251 and store.term(250) == 2 and store.term(249) is None
    with pytest.raises(StorageError, match="compacted"):
        store.entries(100, 200)
    assert store.read_snapshot(1000, 10) == data[1000:1010]
    store.append(entries(401, 410, term=3))
    store.sync()
    store.close()

    again = reopen()
    state = again.open()
    assert state.snapshot == SnapshotMeta(300, 2, b"cfg", len(data))
    assert [e.index for e in state.entries] == list(range(301, 411))
    assert again.read_snapshot() == data


def test_compact_needs_a_snapshot(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 10))
    with pytest.raises(StorageError, match="no snapshot covers"):
        store.compact(5)


def test_reset_after_installing_a_newer_snapshot(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    store.append(entries(1, 10))
    store.set_hard_state(HardState(4, "n1", 10))
    store.sync()
    meta = store.save_snapshot(SnapshotMeta(1000, 4), b"state")
    store.reset(meta)
    assert (store.first_index, store.last_index) == (1001, 1000)
    store.append(entries(1001, 1002, term=4))
    store.sync()
    store.close()

    state = reopen().open()
    assert state.hard_state == HardState(4, "n1", 10)
    assert [e.index for e in state.entries] == [1001, 1002]


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 30)),
            st.tuples(st.just("truncate"), st.integers(0, 40)),
            st.tuples(st.just("state"), st.integers(0, 50)),
            st.tuples(st.just("sync"), st.just(0)),
        ),
        max_size=40,
    )
)
def test_reopen_after_sync_equals_a_model(ops: list[tuple[str, int]], tmp_path_factory: pytest.TempPathFactory) -> None:
    """After any sequence of operations and a final sync, a reopened file store holds exactly
    what a plain list model holds."""
    directory = tmp_path_factory.mktemp("prop")
    store = FileLogStore(directory, segment_bytes=2048)
    store.open()
    model: list[LogEntry] = []
    hard = HardState()
    term = 1
    for op, n in ops:
        if op == "append":
            term += 1
            new = [LogEntry(len(model) + i + 1, term, i % 3, os.urandom(i * 7)) for i in range(n)]
            store.append(new)
            model += new
        elif op == "truncate" and model:
            index = max(1, len(model) - n)
            store.truncate_from(index)
            del model[index - 1 :]
        elif op == "state":
            hard = HardState(n, f"n{n}", min(n, len(model)))
            store.set_hard_state(hard)
        else:
            store.sync()
    store.sync()
    store.close()
    state = FileLogStore(directory, segment_bytes=2048).open()
    assert state.entries == model
    assert state.hard_state == hard


# -- the file store's recovery ---------------------------------------------------------------


def segments(directory: Path) -> list[Path]:
    return sorted((directory / "log").glob("*.seg"))


def written_segment(directory: Path, hi: int, *, size: int = 10,
                    commit: int | None = None) -> Path:
    """Entries 1 to ``hi`` appended and synced (with the hard state committing ``commit``,
    when given) by a store that is then closed; the segment they end in."""
    store = FileLogStore(directory)
    store.open()
    store.append(entries(1, hi, size=size))
    if commit is not None:
        store.set_hard_state(HardState(term=1, vote="n1", commit=commit))
    store.sync()
    store.close()
    return segments(directory)[-1]


def test_group_commit_is_one_fsync_per_sync(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.open()
    before = store.syncs
    for i in range(1, 101):
        store.append([LogEntry(i, 1, 0, b"x" * 100)])
    store.set_hard_state(HardState(1, "a", 100))
    store.sync()
    store.sync()  # nothing new: no fsync
    assert store.syncs - before == 1


def test_segments_roll_over_and_compaction_deletes_old_ones(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, segment_bytes=4096)
    store.open()
    store.append(entries(1, 1000, size=50))
    store.sync()
    assert len(segments(tmp_path)) > 10
    store.save_snapshot(SnapshotMeta(900, 1), b"s")
    store.compact(900)
    remaining = segments(tmp_path)
    assert int(remaining[0].stem) <= 901 < int(remaining[1].stem) if len(remaining) > 1 else True
    assert len(remaining) <= 3
    store.close()
    state = FileLogStore(tmp_path, segment_bytes=4096).open()
    assert [e.index for e in state.entries] == list(range(901, 1001))


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_a_torn_tail_is_truncated_and_reported(tmp_path: Path, cut: int) -> None:
    tail = written_segment(tmp_path, 10, size=30)
    size = tail.stat().st_size
    os.truncate(tail, size - cut)  # the last record was only partly written

    again = FileLogStore(tmp_path)
    state = again.open()
    assert [e.index for e in state.entries] == list(range(1, 10))
    assert any("torn" in r for r in state.repairs)
    again.append(entries(10, 11, term=2))  # the log goes on from the cut
    again.sync()
    again.close()
    assert [e.term for e in FileLogStore(tmp_path).open().entries][-2:] == [2, 2]


def test_a_torn_tail_of_zeros_is_truncated(tmp_path: Path) -> None:
    with open(written_segment(tmp_path, 3), "ab") as f:
        f.write(b"\0" * 100)  # preallocated space the crash left unwritten
    state = FileLogStore(tmp_path).open()
    assert [e.index for e in state.entries] == [1, 2, 3]
    assert state.repairs


def test_corruption_in_the_middle_names_file_and_offset(tmp_path: Path) -> None:
    seg = written_segment(tmp_path, 10, size=30)
    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped bit in a record that is not the last
    seg.write_bytes(bytes(raw))

    with pytest.raises(CorruptStorageError) as info:
        FileLogStore(tmp_path).open()
    assert info.value.path == str(seg)
    assert 0 < info.value.offset < len(raw)
    assert str(seg) in str(info.value) and "CRC" in str(info.value)
    assert seg.read_bytes() == bytes(raw), "corrupt data must not be 'repaired' away"


def record_offsets(seg: Path) -> list[int]:
    """The offset of each record in a segment (its magic is 8 bytes, headers ``<IIB``)."""
    raw = seg.read_bytes()
    offsets, pos = [], 8
    while pos < len(raw):
        offsets.append(pos)
        pos += 9 + int.from_bytes(raw[pos : pos + 4], "little")
    return offsets


@pytest.mark.parametrize("length_byte", [1, 2])
def test_a_damaged_length_in_the_middle_is_corruption_not_a_torn_tail(
    tmp_path: Path, length_byte: int
) -> None:
    seg = written_segment(tmp_path, 10, size=30, commit=10)
    victim = record_offsets(seg)[3]  # acknowledged records follow it
    raw = bytearray(seg.read_bytes())
    raw[victim + length_byte] ^= 0xFF  # the length now runs past the end of the file
    seg.write_bytes(bytes(raw))

    with pytest.raises(CorruptStorageError) as info:
        FileLogStore(tmp_path).open()
    assert info.value.path == str(seg) and info.value.offset == victim
    assert f"corrupt data in {seg} at offset {victim}: " in str(info.value)
    assert "past the end of the file" in str(info.value)
    assert seg.read_bytes() == bytes(raw), "the records after the damage must not be cut off"


def test_no_damaged_byte_before_the_last_record_passes_for_a_torn_tail(tmp_path: Path) -> None:
    seg = written_segment(tmp_path, 6, size=20, commit=6)
    good = seg.read_bytes()
    for at in range(8, record_offsets(seg)[-1]):
        for flip in (0x01, 0x80, 0xFF):
            raw = bytearray(good)
            raw[at] ^= flip
            seg.write_bytes(bytes(raw))
            with pytest.raises(CorruptStorageError):
                FileLogStore(tmp_path).open()
            assert seg.read_bytes() == bytes(raw), f"byte {at} ^ {flip:#x}: file changed"


def test_a_damaged_length_in_the_last_record_is_still_a_torn_tail(tmp_path: Path) -> None:
    seg = written_segment(tmp_path, 5, size=30)
    last = record_offsets(seg)[-1]
    # A crash while the last record was written: its header is whole, its data cut short.
    os.truncate(seg, last + 9 + 12)
    state = FileLogStore(tmp_path).open()
    assert [e.index for e in state.entries] == [1, 2, 3, 4]
    assert state.repairs == [f"{seg}: torn tail at offset {last} truncated "
                             "(record length 47 runs past the end of the file)"]
    assert seg.stat().st_size == last


def test_a_last_record_whose_data_never_reached_the_disk_is_truncated(tmp_path: Path) -> None:
    seg = written_segment(tmp_path, 5, size=30)
    last = record_offsets(seg)[-1]
    raw = bytearray(seg.read_bytes())
    raw[last + 20 :] = bytes(len(raw) - last - 20)  # the file grew, its data stayed zeros
    seg.write_bytes(bytes(raw))
    state = FileLogStore(tmp_path).open()
    assert [e.index for e in state.entries] == [1, 2, 3, 4]
    assert seg.stat().st_size == last


def test_corruption_in_an_older_segment_is_never_a_torn_tail(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, segment_bytes=1024)
    store.open()
    store.append(entries(1, 100, size=40))
    store.sync()
    store.close()
    first = segments(tmp_path)[0]
    os.truncate(first, first.stat().st_size - 3)
    with pytest.raises(CorruptStorageError, match=first.name):
        FileLogStore(tmp_path, segment_bytes=1024).open()


def test_not_a_segment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir(parents=True)
    (tmp_path / "log" / f"{1:020d}.seg").write_bytes(b"GARBAGE!" + b"x" * 100)
    with pytest.raises(CorruptStorageError, match="bad magic"):
        FileLogStore(tmp_path).open()


def test_a_corrupt_snapshot_is_reported_not_applied(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.open()
    store.save_snapshot(SnapshotMeta(5, 1), os.urandom(10_000))
    store.close()
    snap = next((tmp_path / "snapshots").glob("*.snap"))
    raw = bytearray(snap.read_bytes())
    raw[100] ^= 0x01
    snap.write_bytes(bytes(raw))
    with pytest.raises(CorruptStorageError, match="fails its CRC") as info:
        FileLogStore(tmp_path).open()
    assert info.value.path == str(snap)


def test_snapshots_are_only_for_the_owner_like_the_segments(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        store = FileLogStore(tmp_path)
        store.open()
        store.append(entries(1, 3))
        store.sync()
        writer = store.snapshot_writer(SnapshotMeta(3, 1))
        (tmp,) = (tmp_path / "snapshots").glob(".tmp-*")
        assert tmp.stat().st_mode & 0o777 == 0o600
        writer.write(b"state")
        writer.commit()
        store.close()
    finally:
        os.umask(old_umask)
    (snap,) = (tmp_path / "snapshots").glob("*.snap")
    assert snap.stat().st_mode & 0o777 == 0o600
    assert {seg.stat().st_mode & 0o777 for seg in segments(tmp_path)} == {0o600}


def test_an_interrupted_snapshot_leaves_the_previous_one(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.open()
    store.save_snapshot(SnapshotMeta(5, 1), b"old")
    writer = store.snapshot_writer(SnapshotMeta(9, 1))
    writer.write(b"half of the new")
    store.close()  # crash before commit: the temporary file is left behind
    again = FileLogStore(tmp_path)
    state = again.open()
    assert state.snapshot == SnapshotMeta(5, 1, b"", 3)
    assert again.read_snapshot() == b"old"
    assert not list((tmp_path / "snapshots").glob(".tmp-*"))


def test_snapshot_newer_than_the_log_restarts_the_log(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.open()
    store.append(entries(1, 5))
    store.sync()
    store.save_snapshot(SnapshotMeta(50, 3), b"s")
    store.close()  # crash before reset()
    again = FileLogStore(tmp_path)
    state = again.open()
    assert state.entries == [] and again.last_index == 50
    again.append(entries(51, 52, term=3))
    again.sync()
    again.close()
    assert [e.index for e in FileLogStore(tmp_path).open().entries] == [51, 52]


def test_a_sync_finished_in_another_thread_covers_what_was_written_before_it(tmp_path: Path) -> None:
    import threading

    store = FileLogStore(tmp_path, segment_bytes=2048)
    store.open()
    store.append(entries(1, 40, size=60))
    finish = store.begin_sync()
    # The store keeps taking writes (and rolls segments) while the fsync runs elsewhere.
    worker = threading.Thread(target=finish)
    worker.start()
    store.append(entries(41, 80, size=60))
    worker.join()
    store.close()  # entries 41.. were never synced: a crash may lose them
    state = FileLogStore(tmp_path, segment_bytes=2048).open()
    assert [e.index for e in state.entries][:40] == list(range(1, 41))


def test_an_older_snapshot_finishing_late_never_replaces_a_newer_one(reopen: StoreFactory) -> None:
    store = reopen()
    store.open()
    old = store.snapshot_writer(SnapshotMeta(10, 1))
    old.write(b"old state")
    store.save_snapshot(SnapshotMeta(50, 2), b"new state")
    old.commit()  # the background snapshot at 10 finishes after the one at 50 was installed
    assert store.snapshot_meta == SnapshotMeta(50, 2, b"", 9)
    assert store.read_snapshot() == b"new state"
    store.close()
    assert reopen().open().snapshot == SnapshotMeta(50, 2, b"", 9)
