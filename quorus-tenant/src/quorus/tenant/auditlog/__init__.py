"""The audit trail wired into the controller: the ``audit`` state module that records every
state change and authorization decision in per-tenant hash chains, the extension that serves
and verifies them and batches decisions, and the ``quorus audit`` commands.
"""

from quorus.tenant.auditlog.commands import AuditDecision, PruneAudit, RecordDecisions
from quorus.tenant.auditlog.decisions import DecisionBatch, DecisionQueue
from quorus.tenant.auditlog.events import CONTROLLER_CHAIN, AuditEntry, Owners, entries
from quorus.tenant.auditlog.extension import AuditExtension, audit_router, parse_time
from quorus.tenant.auditlog.state import AuditStateModule, retention_days

__all__ = [
    "CONTROLLER_CHAIN",
    "AuditDecision",
    "AuditEntry",
    "AuditExtension",
    "AuditStateModule",
    "DecisionBatch",
    "DecisionQueue",
    "Owners",
    "PruneAudit",
    "RecordDecisions",
    "audit_router",
    "entries",
    "parse_time",
    "retention_days",
]
