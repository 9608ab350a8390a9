"""The replicated commands of the ``audit`` state module: a batch of authorization decisions
the leader's REST layer made (``audit-decisions``), and the daily retention run
(``audit-prune``). Both carry the leader's time, so every controller appends and prunes alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from quorus.core.controller.commands import Command


@dataclass(frozen=True, slots=True)
class AuditDecision:
    """One authorization decision: ``actor`` asked to do ``action`` in ``tenant``/
    ``namespace`` (``None``: not about one tenant) at ``at``; ``allowed`` or not, and why
    not. ``count`` identical decisions were coalesced into this one (a listing asks once per
    item it filters)."""

    actor: str
    action: str
    tenant: str | None
    namespace: str | None
    allowed: bool
    reason: str
    at: float
    count: int = 1


@dataclass(frozen=True, slots=True)
class RecordDecisions(Command):
    """Append ``decisions`` to their tenants' chains; ``dropped`` decisions were lost before
    this batch because the leader's queue overflowed (recorded as such, so the gap shows)."""

    NAME: ClassVar[str] = "audit-decisions"
    at: float
    node: str
    decisions: tuple[AuditDecision, ...] = ()
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class PruneAudit(Command):
    """Drop each tenant's records older than its ``governance.audit.retentionDays`` before
    ``at`` (tenants without a retention keep everything)."""

    NAME: ClassVar[str] = "audit-prune"
    at: float


COMMAND_TYPES: tuple[type[Command], ...] = (RecordDecisions, PruneAudit)

__all__ = ["COMMAND_TYPES", "AuditDecision", "PruneAudit", "RecordDecisions"]
