"""The leader's queue of authorization decisions waiting to be written to the audit trail:
bounded (the oldest are dropped, and counted, once it is full), with identical decisions made
within one flush coalesced into one with a count — a listing asks once per item it filters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from quorus.tenant.auditlog.commands import AuditDecision

#: Distinct decisions kept between two flushes.
DEFAULT_CAPACITY = 10_000

_Key = tuple[str, str, str | None, str | None, bool, str]


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    """What one flush takes: the decisions in the order first made, and how many were dropped
    since the last flush."""

    decisions: tuple[AuditDecision, ...]
    dropped: int

    def __bool__(self) -> bool:
        return bool(self.decisions) or self.dropped > 0


class DecisionQueue:
    """Decisions in the order they were first made; see the module docstring."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a decision queue holds at least 1 decision, not {capacity}")
        self.capacity = capacity
        self._pending: OrderedDict[_Key, AuditDecision] = OrderedDict()
        self.dropped = 0
        #: Every decision dropped since the queue was made (for metrics and tests).
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, decision: AuditDecision) -> None:
        key: _Key = (decision.actor, decision.action, decision.tenant, decision.namespace,
                     decision.allowed, decision.reason)
        known = self._pending.get(key)
        if known is not None:
            self._pending[key] = AuditDecision(
                known.actor, known.action, known.tenant, known.namespace, known.allowed,
                known.reason, known.at, known.count + decision.count)
            return
        self._pending[key] = decision
        while len(self._pending) > self.capacity:
            _, oldest = self._pending.popitem(last=False)
            self.dropped += oldest.count
            self.dropped_total += oldest.count

    def take(self) -> DecisionBatch:
        """Everything queued, emptying the queue."""
        batch = DecisionBatch(tuple(self._pending.values()), self.dropped)
        self._pending.clear()
        self.dropped = 0
        return batch

    def put_back(self, batch: DecisionBatch) -> None:
        """Queue a batch that could not be written again, ahead of what came since (so it is
        recorded at least once); what no longer fits is dropped and counted."""
        newer = list(self._pending.values())
        self._pending.clear()
        self.dropped += batch.dropped
        for decision in (*batch.decisions, *newer):
            self.add(decision)


__all__ = ["DEFAULT_CAPACITY", "DecisionBatch", "DecisionQueue"]
