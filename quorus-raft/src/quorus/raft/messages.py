"""Raft's log entries and messages, and their one conversion to and from msgpack-friendly lists.

Every message carries ``term``, ``src`` and ``dst``. On the wire a message is a list: a type code
followed by its fields in declaration order; entries are ``[index, term, kind, data]`` and
snapshot metadata ``[index, term, configuration]``. :func:`from_wire` checks every field and
raises :class:`~quorus.raft.errors.MessageDecodeError` for anything it does not recognise, so a
malformed frame never reaches the core.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from quorus.raft.errors import MessageDecodeError
from quorus.raft.membership import Configuration


class EntryKind(enum.IntEnum):
    """What a log entry holds: a client command, the leader's no-op, or a configuration."""

    NORMAL = 0
    NOOP = 1
    CONFIG = 2


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is the command (``NORMAL``) or an encoded configuration."""

    index: int
    term: int
    kind: EntryKind
    data: bytes


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: the last index and term in it, and the configuration there."""

    index: int
    term: int
    config: Configuration


@dataclass(frozen=True, slots=True)
class PreVote:
    """Would you vote for me in ``term`` (one above my own)? Changes no one's term."""

    term: int
    src: str
    dst: str
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class PreVoteResponse:
    term: int
    src: str
    dst: str
    granted: bool


@dataclass(frozen=True, slots=True)
class RequestVote:
    """A candidate's vote request. ``transfer`` marks an election asked for by the old leader."""

    term: int
    src: str
    dst: str
    last_index: int
    last_term: int
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: int
    src: str
    dst: str
    granted: bool


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Entries following ``(prev_index, prev_term)``, and the leader's commit index."""

    term: int
    src: str
    dst: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Answer to :class:`AppendEntries`.

    On success ``index`` is the last index the follower now matches. On rejection ``index`` is
    the ``prev_index`` that was rejected and the hint lets the leader skip a whole term at once:
    ``conflict_term`` is the follower's term at that index (0 when its log is too short) and
    ``conflict_index`` the first index of that term in its log (its last index + 1 when short).
    """

    term: int
    src: str
    dst: str
    success: bool
    index: int
    conflict_term: int = 0
    conflict_index: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader liveness. ``seq`` is echoed so the leader can confirm leadership for reads."""

    term: int
    src: str
    dst: str
    commit: int
    seq: int


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    term: int
    src: str
    dst: str
    seq: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """One chunk of a snapshot: ``data`` belongs at byte ``offset``; ``done`` on the last one."""

    term: int
    src: str
    dst: str
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """Answer to a chunk: the offset expected next, or with ``done`` the index now matched."""

    term: int
    src: str
    dst: str
    snapshot_index: int
    next_offset: int
    done: bool
    match_index: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """The leader asks the target of a leadership transfer to start an election now."""

    term: int
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower forwards a linearizable read to the leader; ``ctx`` identifies the read."""

    term: int
    src: str
    dst: str
    ctx: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """The index a forwarded read may be served at once applied, or ``success`` false."""

    term: int
    src: str
    dst: str
    ctx: bytes
    index: int
    success: bool


Message: TypeAlias = (
    PreVote
    | PreVoteResponse
    | RequestVote
    | VoteResponse
    | AppendEntries
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)

_TYPES: tuple[type[Any], ...] = (
    PreVote,
    PreVoteResponse,
    RequestVote,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
)
_CODE: dict[type[Any], int] = {cls: code for code, cls in enumerate(_TYPES)}


def entry_to_wire(entry: Entry) -> list[Any]:
    return [entry.index, entry.term, int(entry.kind), entry.data]


def _entry(obj: object) -> Entry:
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise MessageDecodeError("an entry is [index, term, kind, data]")
    index, term, kind, data = obj
    if type(index) is not int or type(term) is not int or index < 1 or term < 0:
        raise MessageDecodeError(f"entry index/term must be positive integers, got {obj[:2]!r}")
    if type(kind) is not int or not 0 <= kind <= 2:
        raise MessageDecodeError(f"unknown entry kind {kind!r}")
    if not isinstance(data, bytes):
        raise MessageDecodeError("entry data must be bytes")
    return Entry(index, term, EntryKind(kind), data)


def _entries(obj: object) -> tuple[Entry, ...]:
    if not isinstance(obj, list | tuple):
        raise MessageDecodeError("entries must be a list")
    out = tuple(_entry(e) for e in obj)
    for before, after in itertools.pairwise(out):
        if after.index != before.index + 1 or after.term < before.term:
            raise MessageDecodeError("entries must have consecutive indexes and rising terms")
    return out


def _meta(obj: object) -> SnapshotMeta:
    if not isinstance(obj, list | tuple) or len(obj) != 3:
        raise MessageDecodeError("snapshot metadata is [index, term, configuration]")
    index, term, config = obj
    if type(index) is not int or type(term) is not int or index < 0 or term < 0:
        raise MessageDecodeError("snapshot index/term must be non-negative integers")
    try:
        return SnapshotMeta(index, term, Configuration.from_wire(config))
    except ValueError as exc:
        raise MessageDecodeError(f"snapshot configuration: {exc}") from exc


def _nonneg(value: object) -> int:
    if type(value) is not int or value < 0:
        raise MessageDecodeError(f"expected a non-negative integer, got {value!r}")
    return value


def _node(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise MessageDecodeError(f"expected a node id (non-empty string), got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise MessageDecodeError(f"expected a boolean, got {value!r}")
    return value


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise MessageDecodeError(f"expected bytes, got {type(value).__name__}")
    return value


_DECODERS: dict[str, Callable[[object], Any]] = {
    "int": _nonneg,
    "str": _node,
    "bool": _bool,
    "bytes": _bytes,
    "tuple[Entry, ...]": _entries,
    "SnapshotMeta": _meta,
}
_LAYOUT: dict[type[Any], tuple[tuple[str, Callable[[object], Any]], ...]] = {
    cls: tuple((f.name, _DECODERS[str(f.type)]) for f in fields(cls)) for cls in _TYPES
}


def to_wire(msg: Message) -> list[Any]:
    """``msg`` as a list of msgpack-friendly values: type code, then each field."""
    out: list[Any] = [_CODE[type(msg)]]
    for name, decode in _LAYOUT[type(msg)]:
        value = getattr(msg, name)
        if decode is _entries:
            value = [[e.index, e.term, int(e.kind), e.data] for e in value]
        elif decode is _meta:
            value = [value.index, value.term, value.config.to_wire()]
        out.append(value)
    return out


def from_wire(obj: object) -> Message:
    """The message ``obj`` encodes; :class:`MessageDecodeError` when it encodes none."""
    if not isinstance(obj, list | tuple) or not obj:
        raise MessageDecodeError("a Raft message is a non-empty list")
    code = obj[0]
    if type(code) is not int or not 0 <= code < len(_TYPES):
        raise MessageDecodeError(f"unknown Raft message type {code!r}")
    cls = _TYPES[code]
    layout = _LAYOUT[cls]
    if len(obj) != len(layout) + 1:
        raise MessageDecodeError(
            f"{cls.__name__} has {len(layout)} fields, got {len(obj) - 1}"
        )
    values = {}
    for (name, decode), raw in zip(layout, obj[1:], strict=True):
        try:
            values[name] = decode(raw)
        except MessageDecodeError as exc:
            raise MessageDecodeError(f"{cls.__name__}.{name}: {exc}") from None
    msg: Message = cls(**values)
    return msg
