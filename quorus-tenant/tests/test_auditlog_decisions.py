"""The leader's decision queue (coalescing, bounded with a dropped count, batches put back) and
the audit extension's ``authorized`` hook: it records the controller's every verdict, only
while leading, and re-queues a batch whose proposal failed; the leader prunes for retention
when it starts leading and every prune interval after."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from quorus.core.auth import Principal
from quorus.core.controller.commands import Command
from quorus.core.controller.service import InvalidRequest, LeaderElsewhere
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.auditlog import (
    AuditDecision,
    AuditExtension,
    DecisionQueue,
    PruneAudit,
    RecordDecisions,
    parse_time,
)

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

ALICE = Principal("alice", "api-token")


def decision(actor: str, allowed: bool = True, at: float = 1.0) -> AuditDecision:
    return AuditDecision(actor, "jobs.read", "acme", None, allowed,
                         "" if allowed else "no role", at)


def test_identical_decisions_coalesce_in_first_seen_order() -> None:
    queue = DecisionQueue()
    for actor in ("a", "b", "a", "a"):
        queue.add(decision(actor, at=len(queue)))
    queue.add(decision("a", allowed=False))
    batch = queue.take()
    assert [(d.actor, d.allowed, d.count, d.at) for d in batch.decisions] == [
        ("a", True, 3, 0), ("b", True, 1, 1), ("a", False, 1, 1.0)]
    assert batch.dropped == 0 and len(queue) == 0 and not queue.take()


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    queue = DecisionQueue(capacity=2)
    queue.add(decision("a"))
    queue.add(decision("a"))
    queue.add(decision("b"))
    queue.add(decision("c"))
    batch = queue.take()
    assert [d.actor for d in batch.decisions] == ["b", "c"]
    assert batch.dropped == 2 and queue.dropped_total == 2
    queue.put_back(batch)
    queue.add(decision("d"))
    again = queue.take()
    assert [d.actor for d in again.decisions] == ["c", "d"]
    assert again.dropped == 3 and queue.dropped_total == 3
    with pytest.raises(ValueError, match="at least 1"):
        DecisionQueue(capacity=0)


class Runtime:
    """The controller's authorization: every authorizer in turn, the first objection wins;
    then every observer is told the verdict."""

    def __init__(self) -> None:
        self.authorizers: list[Any] = []
        self.observers: list[Any] = []

    def authorization(self, principal: Principal, action: str, tenant: str | None,
                      namespace: str | None) -> str | None:
        verdict: str | None = None
        for authorize in self.authorizers:
            verdict = authorize(principal, action, tenant, namespace)
            if verdict is not None:
                break
        for observe in self.observers:
            observe(principal, action, tenant, namespace, verdict)
        return verdict


class Service:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime


class Leadership:
    node_id = "c1"

    def __init__(self, service: Service, fail: bool = False) -> None:
        self.service = service
        self.fail = fail
        self.proposed: list[Command] = []

    async def propose(self, command: Command) -> Any:
        if self.fail:
            raise LeaderElsewhere("c2", None)
        self.proposed.append(command)
        return None


def deny_beta(principal: Principal, action: str, tenant: str | None,
              namespace: str | None) -> str | None:
    return "beta is closed" if tenant == "beta" else None


def wired() -> tuple[AuditExtension, Runtime]:
    extension = AuditExtension(clock=lambda: 42.0)
    runtime = Runtime()
    runtime.authorizers = [deny_beta]
    runtime.observers = [extension.authorized]
    extension.routes(Service(runtime))  # type: ignore[arg-type]
    return extension, runtime


def test_every_verdict_is_recorded_only_while_leading() -> None:
    extension, runtime = wired()
    assert runtime.authorization(ALICE, "jobs.read", "acme", None) is None
    assert len(extension.queue) == 0  # not leading: nothing recorded
    extension._leading = True
    assert runtime.authorization(ALICE, "jobs.read", "acme", "etl") is None
    assert runtime.authorization(ALICE, "jobs.read", "beta", None) == "beta is closed"
    batch = extension.queue.take()
    assert batch.decisions == (
        AuditDecision("alice", "jobs.read", "acme", "etl", True, "", 42.0),
        AuditDecision("alice", "jobs.read", "beta", None, False, "beta is closed", 42.0))


@pytest.mark.anyio
async def test_flush_proposes_one_batch_and_puts_it_back_when_that_fails() -> None:
    extension, runtime = wired()
    service = Service(runtime)
    extension._leading = True
    runtime.authorization(ALICE, "jobs.read", "beta", None)
    failing = Leadership(service, fail=True)
    with pytest.raises(LeaderElsewhere):
        await extension.flush(failing)
    assert len(extension.queue) == 1
    runtime.authorization(ALICE, "jobs.submit", "acme", None)
    leading = Leadership(service)
    await extension.flush(leading)
    await extension.flush(leading)  # nothing queued: nothing proposed
    (command,) = leading.proposed
    assert isinstance(command, RecordDecisions) and command.node == "c1"
    assert [(d.action, d.allowed) for d in command.decisions] == [
        ("jobs.read", False), ("jobs.submit", True)]


@pytest.mark.anyio
async def test_the_leader_prunes_when_it_starts_leading_and_every_interval_after() -> None:
    extension = AuditExtension(clock=lambda: 42.0, flush_interval=0.01, prune_interval=0.1)
    leading = Leadership(Service(Runtime()))
    with anyio.move_on_after(0.45):
        await extension.lead(leading)
    assert not extension._leading  # no longer recording once it stopped leading
    assert isinstance(leading.proposed[0], PruneAudit)  # at once, not a day later
    assert all(isinstance(c, PruneAudit) and c.at == 42.0 for c in leading.proposed)
    assert 2 <= len(leading.proposed) <= 5


def test_times_are_seconds_or_iso_8601() -> None:
    assert parse_time(None, "from") is None
    assert parse_time(" ", "from") is None
    assert parse_time("1700000000.5", "from") == 1700000000.5
    assert parse_time("2026-01-31", "from") == 1769817600.0
    assert parse_time("2026-01-31T01:00:00+01:00", "to") == 1769817600.0
    with pytest.raises(InvalidRequest, match="invalid to 'yesterday'"):
        parse_time("yesterday", "to")
