"""``AuditExtension``: the audit trail's controller extension — ``GET /v1/audit/export`` (the
tenant's records as JSON lines, streamed) and ``GET /v1/audit/verify`` (whether its chain is
intact), each behind ``audit.read`` in that tenant (``tenant=*``: the chain of actions about
no single tenant, behind ``audit.read`` on the whole controller) — and the recording of
authorization decisions.

It decides nothing: the controller tells its ``authorized`` hook every final verdict it
reaches (REST endpoints and agent registrations alike), whichever extension objected, and it
queues the decision (allowed, or denied with the reason). Decisions are recorded by the leader
that served them: its ``lead`` task writes the queue every :data:`FLUSH_INTERVAL` seconds as
one ``audit-decisions`` command, so each decision reaches its tenant's chain at least once and
normally at most a flush interval late: a batch whose proposal failed is queued again (and may
then be written twice) and written when this controller's leader task next runs. A controller
that does not lead (a follower serving a read with ``consistent=false``) records none. The
queue is bounded; the count of decisions dropped from it is written with the next batch.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from quorus.core.auth import Principal
from quorus.core.controller.extension import request_principal as caller
from quorus.core.controller.service import ControllerService, InvalidRequest
from quorus.tenant.audit import export
from quorus.tenant.auditlog.commands import AuditDecision, PruneAudit, RecordDecisions
from quorus.tenant.auditlog.decisions import DEFAULT_CAPACITY, DecisionQueue
from quorus.tenant.auditlog.events import CONTROLLER_CHAIN
from quorus.tenant.auditlog.state import DAY, AuditStateModule

log = logging.getLogger(__name__)

#: Seconds between two writes of the leader's queued decisions.
FLUSH_INTERVAL = 0.5
#: Seconds between two retention runs of a leader.
PRUNE_INTERVAL = DAY
#: Lines per chunk of a streamed export.
EXPORT_CHUNK = 256

Consistent = Annotated[bool, Query(description="wait for a linearizable read")]


def parse_time(text: str | None, name: str) -> float | None:
    """Seconds since the epoch from ``text``: a number of seconds, or an ISO 8601 date or
    time (UTC unless it says otherwise); ``None`` for no text."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"invalid {name} {text!r}: give seconds since the epoch or an "
                             "ISO 8601 date or time (2026-01-31, 2026-01-31T12:00:00Z)"
                             ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def audit_router(service: ControllerService) -> APIRouter:
    """The routes, reading the ``audit`` module of ``service``'s state."""
    router = APIRouter(tags=["audit"])

    def module() -> AuditStateModule:
        return service.state_module(AuditStateModule, "quorus-tenant")

    async def readable(request: Request, tenant: str, consistent: bool) -> AuditStateModule:
        await service.consistent_read(consistent)
        service.authorize(caller(request), "audit.read",
                          None if tenant == CONTROLLER_CHAIN else tenant, None)
        return module()

    @router.get("/v1/audit/export")
    async def export_audit(
        request: Request,
        tenant: Annotated[str, Query(min_length=1, max_length=256)],
        start: Annotated[str | None, Query(alias="from")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
        consistent: Consistent = True,
    ) -> StreamingResponse:
        """The tenant's records with ``from <= at < to`` as JSON lines, oldest first."""
        from_at, to_at = parse_time(start, "from"), parse_time(end, "to")
        audit = await readable(request, tenant, consistent)
        chain = audit.chain(tenant)
        # The records there are now: those appended while streaming belong to a later export.
        last = chain.next_sequence if chain is not None else 0

        async def lines() -> AsyncIterator[str]:
            chunk: list[str] = []
            records = (r for r in audit.records(tenant) if r.sequence < last)
            for line in export(records, from_at, to_at):
                chunk.append(line)
                if len(chunk) >= EXPORT_CHUNK:
                    yield "".join(chunk)
                    chunk.clear()
                    await anyio.lowlevel.checkpoint()
            if chunk:
                yield "".join(chunk)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @router.get("/v1/audit/verify")
    async def verify_audit(
        request: Request,
        tenant: Annotated[str, Query(min_length=1, max_length=256)],
        consistent: Consistent = True,
    ) -> dict[str, Any]:
        """Whether the tenant's chain is intact: ``broken_at`` is the first record that is
        not (``null`` when it is), ``reason`` says how."""
        chain = (await readable(request, tenant, consistent)).chain(tenant)
        if chain is None:
            return {"tenant": tenant, "ok": True, "records": 0, "first": None,
                    "broken_at": None, "reason": None, "head": None}
        found = chain.find_break()
        return {"tenant": tenant, "ok": found is None, "records": len(chain),
                "first": chain.start if len(chain) else None,
                "broken_at": None if found is None else found.sequence,
                "reason": None if found is None else found.reason, "head": chain.head}

    return router


class AuditExtension:
    """The audit trail's controller extension (see the module docstring). ``clock`` gives the
    time decisions and commands carry."""

    name = "audit"

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 flush_interval: float = FLUSH_INTERVAL,
                 prune_interval: float = PRUNE_INTERVAL,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.clock = clock
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self.queue = DecisionQueue(capacity)
        self._leading = False

    def routes(self, service: ControllerService) -> Any:
        return audit_router(service)

    def authorized(self, principal: Principal, action: str, tenant: str | None,
                   namespace: str | None, reason: str | None) -> None:
        """Queue the controller's final verdict on a request (only while this controller
        leads: the leader records what it served)."""
        if self._leading:
            self.queue.add(AuditDecision(principal.name, action, tenant, namespace,
                                         reason is None, reason or "", self.clock()))

    async def lead(self, leadership: Any) -> None:
        """Write the queued decisions every flush interval; prune for retention when leading
        starts and every prune interval after."""
        self._leading = True
        try:
            next_prune = 0.0
            while True:
                await self.flush(leadership)
                now = anyio.current_time()
                if now >= next_prune:
                    await leadership.propose(PruneAudit(self.clock()))
                    next_prune = now + self.prune_interval
                await anyio.sleep(self.flush_interval)
        finally:
            self._leading = False

    async def flush(self, leadership: Any) -> None:
        """Propose what is queued as one ``audit-decisions`` command (nothing when empty);
        a batch that could not be proposed is queued again and the error raised."""
        batch = self.queue.take()
        if not batch:
            return
        try:
            await leadership.propose(RecordDecisions(self.clock(), leadership.node_id,
                                                     batch.decisions, batch.dropped))
        except BaseException:
            self.queue.put_back(batch)
            raise


__all__ = ["EXPORT_CHUNK", "FLUSH_INTERVAL", "PRUNE_INTERVAL", "AuditExtension",
           "audit_router", "parse_time"]
