"""A linearizability checker for key-value histories (Wing & Gong with Lowe's memoization).

A history is a list of :class:`Operation` records: who invoked what at which logical time and,
if it returned, when and with which result. Operations whose outcome is unknown (a timeout, a
leader lost after the command was appended) have ``ret=None``: they may have taken effect at
any point after their invocation, or never. Operations that definitely failed must be left out.

The check runs per key (put, get and cas touch one key each, so a history is linearizable iff
each key's sub-history is), as in Porcupine: a depth-first search over the order in which
pending operations take effect, pruning states already seen as ``(set linearized, value)``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


class OpKind(enum.Enum):
    PUT = "put"
    GET = "get"
    CAS = "cas"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation.

    ``value`` is the value written by a put, ``expected``/``value`` the compare and the new
    value of a cas. ``result`` is what a get returned (``None`` for a missing key) or whether a
    cas succeeded; it is ignored for puts and for operations with ``ret=None``.
    """

    kind: OpKind
    key: str
    invoke: float
    ret: float | None
    value: Hashable = None
    expected: Hashable = None
    result: Hashable = None
    client: int = 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str | None = None
    timed_out: bool = False

    def __bool__(self) -> bool:
        return self.ok


class _Node:
    __slots__ = ("call", "match", "next", "op", "prev")

    def __init__(self, op: int, call: bool) -> None:
        self.op = op
        self.call = call
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


_INF = float("inf")


def _step(op: Operation, state: Hashable) -> tuple[bool, Hashable]:
    known = op.ret is not None
    if op.kind is OpKind.PUT:
        return True, op.value
    if op.kind is OpKind.GET:
        return (not known or op.result == state), state
    hit = state == op.expected
    if known and bool(op.result) != hit:
        return False, state
    return True, op.value if hit else state


def _check_key(ops: list[Operation], deadline: float) -> bool | None:
    events: list[tuple[float, int, int, bool]] = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i, True))
        events.append((op.ret if op.ret is not None else _INF, 1, i, False))
    events.sort()
    head = _Node(-1, False)
    tail = head
    calls: dict[int, _Node] = {}
    for _, _, i, is_call in events:
        node = _Node(i, is_call)
        if is_call:
            calls[i] = node
        else:
            calls[i].match = node
        node.prev = tail
        tail.next = node
        tail = node

    def lift(call: _Node) -> None:
        for node in (call, call.match):
            assert node is not None
            assert node.prev is not None
            node.prev.next = node.next
            if node.next is not None:
                node.next.prev = node.prev

    def unlift(call: _Node) -> None:
        for node in (call.match, call):
            assert node is not None
            assert node.prev is not None
            node.prev.next = node
            if node.next is not None:
                node.next.prev = node

    state: Hashable = None
    linearized = 0
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Node, Hashable]] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps & 0x3FF == 0 and time.monotonic() > deadline:
            return None
        assert entry is not None
        if entry.call:
            ok, new_state = _step(ops[entry.op], state)
            if ok:
                new_lin = linearized | (1 << entry.op)
                key = (new_lin, new_state)
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, new_lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op)
            unlift(entry)
            entry = entry.next
    return True


def check_history(history: Iterable[Operation], timeout: float = 10.0) -> CheckResult:
    """Whether ``history`` is linearizable for a map of registers (initially all missing).

    Returns a false result naming the first key whose history is not linearizable; a result
    with ``timed_out`` set when the search did not finish within ``timeout`` seconds.
    """
    by_key: dict[str, list[Operation]] = {}
    for op in history:
        if op.ret is not None and op.ret < op.invoke:
            raise ValueError(f"operation returns before it is invoked: {op}")
        by_key.setdefault(op.key, []).append(op)
    deadline = time.monotonic() + timeout
    for key in sorted(by_key):
        verdict = _check_key(by_key[key], deadline)
        if verdict is None:
            return CheckResult(False, key, timed_out=True)
        if not verdict:
            return CheckResult(False, key)
    return CheckResult(True)
