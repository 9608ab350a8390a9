"""Bad input: every message survives the wire; anything malformed is refused with one error."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from quorus.raft.core import RaftCore
from quorus.raft.errors import MessageDecodeError
from quorus.raft.membership import Configuration
from quorus.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    PreVote,
    PreVoteResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    SnapshotMeta,
    TimeoutNow,
    VoteResponse,
    from_wire,
    to_wire,
)
from quorus.raft.ready import EventKind

CoreFactory = Callable[..., RaftCore]
META = SnapshotMeta(9, 2, Configuration(frozenset({"a", "b"}), frozenset({"c"})))
ENTRIES = (Entry(4, 1, EntryKind.NOOP, b""), Entry(5, 2, EntryKind.NORMAL, b"\x00cmd"))
EVERY_MESSAGE = [
    PreVote(3, "a", "b", 7, 2),
    PreVoteResponse(3, "b", "a", True),
    RequestVote(3, "a", "b", 7, 2, True),
    VoteResponse(3, "b", "a", False),
    AppendEntries(3, "a", "b", 3, 1, ENTRIES, 4),
    AppendResponse(3, "b", "a", False, 3, 1, 2),
    Heartbeat(3, "a", "b", 4, 11),
    HeartbeatResponse(3, "b", "a", 11),
    InstallSnapshot(3, "a", "b", META, 128, b"chunk", False),
    InstallSnapshotResponse(3, "b", "a", 9, 133, False, 0),
    TimeoutNow(3, "a", "b"),
    ReadIndexRequest(3, "b", "a", b"ctx"),
    ReadIndexResponse(3, "a", "b", b"ctx", 12, True),
]


@pytest.mark.parametrize("msg", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_msgpack(msg: object) -> None:
    wire = msgpack.unpackb(msgpack.packb(to_wire(msg)))  # type: ignore[arg-type]
    assert from_wire(wire) == msg


@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(0, 2**40))
def test_append_entries_round_trip_any_payload(payloads: list[bytes], term: int) -> None:
    entries = tuple(Entry(i + 1, term, EntryKind.NORMAL, p) for i, p in enumerate(payloads))
    msg = AppendEntries(term, "x", "y", 0, 0, entries, len(entries))
    assert from_wire(msgpack.unpackb(msgpack.packb(to_wire(msg)))) == msg


@pytest.mark.parametrize(
    ("wire", "complaint"),
    [
        ([99, 1, "a", "b"], "unknown Raft message type 99"),
        (["PreVote", 1, "a", "b", 0, 0], "unknown Raft message type"),
        ([], "non-empty list"),
        ({"type": 0}, "non-empty list"),
        (b"\x00", "non-empty list"),
        ([0, 1, "a", "b", 0], "PreVote has 5 fields, got 4"),
        ([0, -1, "a", "b", 0, 0], "PreVote.term"),
        ([0, 1.5, "a", "b", 0, 0], "PreVote.term"),
        ([0, True, "a", "b", 0, 0], "PreVote.term"),
        ([0, 1, "", "b", 0, 0], "PreVote.src"),
        ([0, 1, 7, "b", 0, 0], "PreVote.src"),
        ([1, 1, "a", "b", 1], "PreVoteResponse.granted"),
        ([4, 1, "a", "b", 0, 0, "entries", 0], "AppendEntries.entries"),
        ([4, 1, "a", "b", 0, 0, [[1, 1, 9, b""]], 0], "unknown entry kind 9"),
        ([4, 1, "a", "b", 0, 0, [[1, 1, 0, "text"]], 0], "entry data must be bytes"),
        ([4, 1, "a", "b", 0, 0, [[1, 1, 0, b""], [3, 1, 0, b""]], 0], "consecutive"),
        ([4, 1, "a", "b", 0, 0, [[1, 2, 0, b""], [2, 1, 0, b""]], 0], "rising terms"),
        ([8, 1, "a", "b", [1, 1], 0, b"", True], "InstallSnapshot.meta"),
        ([8, 1, "a", "b", [1, 1, [["a"], ["a"], []]], 0, b"", True], "both voter and learner"),
        ([11, 1, "a", "b", "ctx"], "ReadIndexRequest.ctx"),
    ],
)
def test_malformed_messages_are_refused_with_a_clear_error(wire: object, complaint: str) -> None:
    with pytest.raises(MessageDecodeError, match=complaint):
        from_wire(wire)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                    | st.binary(max_size=5),
                    lambda inner: st.lists(inner, max_size=8), max_leaves=30))
def test_arbitrary_data_decodes_or_raises_message_decode_error(obj: object) -> None:
    try:
        msg = from_wire(obj)
    except MessageDecodeError:
        return
    assert to_wire(msg) == [obj[0], *obj[1:]]  # type: ignore[index]


def test_messages_from_non_members_are_ignored_and_reported(make_core: CoreFactory) -> None:
    core = make_core("a", ["a", "b", "c"])
    core.step(RequestVote(5, "intruder", "a", 100, 100))
    core.step(PreVote(5, "intruder", "a", 100, 100))
    rd = core.ready()
    assert core.term == 0 and core.vote is None
    assert rd.messages == [] and rd.messages_after_persist == []
    ignored = [e for e in rd.events if e.kind is EventKind.NON_MEMBER_IGNORED]
    assert [e.peer for e in ignored] == ["intruder", "intruder"]


def test_messages_addressed_to_another_node_are_dropped(make_core: CoreFactory) -> None:
    core = make_core("a", ["a", "b", "c"])
    core.step(RequestVote(5, "b", "c", 100, 100))
    assert core.term == 0
    assert not core.ready().messages_after_persist
