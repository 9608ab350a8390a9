"""``AuditStateModule``: the ``audit`` section of the controller's replicated state — one
hash-chained :class:`~quorus.tenant.audit.AuditChain` per tenant (and one, ``*``, for actions
about no single tenant).

Its ``observe`` sees every command the state machine applies and appends a record for each
state change (:mod:`quorus.tenant.auditlog.events`), with outcome ``applied``. Its own
commands append the authorization decisions the leader's REST layer made (outcome ``allowed``
or ``denied``) and prune old records for retention. Every controller applies the same log and
so builds the same chains, hashes included: a record edited on one node shows as a break
when that node verifies.

A record's time is its command's ``at``, but never earlier than the record before it in the
chain (the leader's clock may step back after a failover), so that retention, which drops a
prefix of records older than a time, never leaves an older record behind a newer one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from quorus.core.controller.commands import Command
from quorus.core.controller.results import Applied, Rejected
from quorus.core.controller.state import ControllerState, SnapshotFormatError
from quorus.tenant.audit import AuditChain, AuditError, AuditRecord, Outcome
from quorus.tenant.auditlog.commands import COMMAND_TYPES, PruneAudit, RecordDecisions
from quorus.tenant.auditlog.events import (
    CONTROLLER_ACTOR,
    CONTROLLER_CHAIN,
    AuditEntry,
    Owners,
    entries,
    refusal_entry,
)

SNAPSHOT_FORMAT = 1
DAY = 86400.0


class AuditStateModule:
    """The ``audit`` section of the controller's state (see the module docstring)."""

    name = "audit"
    command_types: Sequence[type[Command]] = COMMAND_TYPES

    def __init__(self) -> None:
        self.chains: dict[str, AuditChain] = {}
        self.owners = Owners()

    # -- reading --------------------------------------------------------------------------------

    def chain(self, tenant: str) -> AuditChain | None:
        """``tenant``'s chain (``*``: actions about no single tenant), ``None`` before its
        first record."""
        return self.chains.get(tenant)

    def records(self, tenant: str) -> Iterator[AuditRecord]:
        """``tenant``'s records in order, those appended while iterating included; safe to
        interleave with appends and pruning (records pruned meanwhile are skipped). Holds no
        copy of the chain."""
        chain = self.chains.get(tenant)
        if chain is None:
            return
        sequence = chain.start
        while True:
            chain = self.chains.get(tenant)
            if chain is None:
                return
            sequence = max(sequence, chain.start)
            position = sequence - chain.start
            if position >= len(chain):
                return
            # Indexing the kept list: the chain may have grown or been pruned since the last
            # record was handed out (an export streams while commands are applied).
            record = chain._records[position]
            yield record
            sequence += 1

    # -- applying -------------------------------------------------------------------------------

    def apply(self, command: Command, index: int, state: ControllerState) -> int:
        """Apply an ``audit-decisions`` or ``audit-prune``: the number of records appended or
        dropped."""
        if isinstance(command, RecordDecisions):
            return self._record_decisions(command)
        if isinstance(command, PruneAudit):
            return self._prune(command.at, state)
        return 0

    def _record_decisions(self, command: RecordDecisions) -> int:
        appended = 0
        for decision in command.decisions:
            detail: dict[str, Any] = {"namespace": decision.namespace, "node": command.node}
            if decision.reason:
                detail["reason"] = decision.reason
            if decision.count != 1:
                detail["count"] = decision.count
            outcome: Outcome = "allowed" if decision.allowed else "denied"
            self._append(decision.tenant or CONTROLLER_CHAIN, decision.at, decision.actor,
                         decision.action, decision.namespace or decision.tenant or "",
                         outcome, detail)
            appended += 1
        if command.dropped:
            self._append(CONTROLLER_CHAIN, command.at, CONTROLLER_ACTOR,
                         "audit.decisions-dropped", command.node, "applied",
                         {"dropped": command.dropped, "node": command.node})
            appended += 1
        return appended

    def _prune(self, at: float, state: ControllerState) -> int:
        dropped = 0
        for tenant, chain in self.chains.items():
            days = retention_days(state, tenant)
            if days is not None:
                dropped += chain.prune(at - days * DAY)
        return dropped

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None:
        if type(command) in COMMAND_TYPES:
            return  # the module's own commands record what they do in apply
        found = entries(command, result, state, self.owners)
        if not found:
            return
        at = float(getattr(command, "at", 0.0) or 0.0)
        for entry in found:
            self._append_entry(entry, at)

    def refused(self, command: Command, refusal: Rejected, index: int,
                state: ControllerState) -> None:
        """A command a module's admission refused (a quota, a suspended tenant, storage
        outside the tenant's roots, a crossing without agreement) is recorded as denied."""
        entry = refusal_entry(command, refusal)
        at = float(getattr(command, "at", 0.0) or 0.0)
        self._append(entry.tenant, at, entry.actor, entry.action, entry.target, "denied",
                     entry.detail)

    def _append_entry(self, entry: AuditEntry, at: float) -> None:
        self._append(entry.tenant, at, entry.actor, entry.action, entry.target, "applied",
                     entry.detail)

    def _append(self, tenant: str, at: float, actor: str, action: str, target: str,
                outcome: Outcome, detail: Mapping[str, Any]) -> None:
        chain = self.chains.get(tenant)
        if chain is None:
            chain = self.chains[tenant] = AuditChain(tenant)
        if len(chain):
            at = max(at, chain._records[-1].at)
        try:
            chain.append(at=at, actor=actor, action=action, target=target, outcome=outcome,
                         detail=detail)
        except AuditError as exc:
            # A detail that cannot be written as JSON must not stop the state machine: the
            # action is still recorded, with why its detail is not.
            chain.append(at=at, actor=actor, action=action, target=target, outcome=outcome,
                         detail={"unrecordable_detail": str(exc)})

    # -- snapshot -------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return {"format": SNAPSHOT_FORMAT,
                "chains": [self.chains[t].to_data() for t in self.chains],
                "owners": self.owners.to_data()}

    def restore(self, data: Any) -> None:
        chains: dict[str, AuditChain] = {}
        owners = Owners()
        if data is not None:
            if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotFormatError("the snapshot's audit section is not format "
                                          f"{SNAPSHOT_FORMAT}: restore it with the "
                                          "quorus-tenant version that wrote it")
            try:
                for plain in data.get("chains", []):
                    chain = AuditChain.from_data(plain)
                    chains[chain.tenant] = chain
            except AuditError as exc:
                raise SnapshotFormatError(f"the snapshot's audit section is malformed: {exc}"
                                          ) from None
            owners = Owners.from_data(data.get("owners"))
        self.chains = chains
        self.owners = owners


def retention_days(state: ControllerState, tenant: str) -> float | None:
    """``governance.audit.retentionDays`` of ``tenant`` or its nearest ancestor that sets it,
    as the ``tenant`` state module knows them; ``None`` (keep everything) without one."""
    tenants = state.modules.get("tenant")
    lineage = getattr(tenants, "chain", None)
    lookup = getattr(tenants, "tenant", None)
    if not callable(lineage) or not callable(lookup):
        return None
    for tenant_id in lineage(tenant):
        found = lookup(tenant_id)
        settings = getattr(found, "settings", None)
        if not isinstance(settings, Mapping):
            continue
        governance = settings.get("governance")
        audit = governance.get("audit") if isinstance(governance, Mapping) else None
        days = audit.get("retentionDays") if isinstance(audit, Mapping) else None
        if isinstance(days, int | float) and not isinstance(days, bool) and days >= 0:
            return float(days)
    return None


__all__ = ["SNAPSHOT_FORMAT", "AuditStateModule", "retention_days"]
