"""The ``audit`` state module on a controller state machine fed encoded commands, as consensus
would: records for job, agent, tenant, workflow and access changes; decisions; retention by the
tenant's ``governance.audit.retentionDays``; edits detected; snapshots restored exactly; two
replicas applying the same log build the same chains."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from quorus.core.controller import (
    AgentCapabilities,
    Applied,
    AssignJob,
    CancelJob,
    Command,
    CompleteAttempt,
    ControllerState,
    DrainAgent,
    JobStarted,
    RegisterAgent,
    Rejected,
    SubmitJob,
)
from quorus.core.controller.state import SnapshotFormatError
from quorus.tenant.access.commands import BindRole, CreatePrincipal, IssueToken
from quorus.tenant.access.state import AccessStateModule
from quorus.tenant.audit import AuditRecord
from quorus.tenant.auditlog import (
    CONTROLLER_CHAIN,
    AuditDecision,
    AuditStateModule,
    PruneAudit,
    RecordDecisions,
)
from quorus.tenant.commands import ApplyTenants, DeleteTenant, SuspendTenant
from quorus.tenant.state import TenantStateModule
from quorus.workflow.controller.commands import CancelExecution, SubmitExecution
from quorus.workflow.controller.state import WorkflowStateModule

T0 = 1_700_000_000.0
DAY = 86400.0
SHA = "ab" * 32
WORKFLOW = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: nightly
spec:
  groups:
    - name: stage
      transferGroup:
        spec:
          transfers:
            - name: users
              source: {path: /data/in/users.csv}
              destination: {path: /data/out/users.csv}
"""


def tenant_doc(name: str, parent: str | None = None, retention: int | None = None) -> str:
    governance = (f"  governance:\n    audit:\n      retentionDays: {retention}\n"
                  if retention is not None else "")
    return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: {name}\n"
            f"spec:\n  hierarchy:\n    parent: {parent or 'null'}\n{governance}")


class Replica:
    """A controller state with the tenant, access, workflow and audit modules."""

    def __init__(self) -> None:
        self.state = ControllerState([TenantStateModule(), AccessStateModule(),
                                      WorkflowStateModule(), AuditStateModule()])
        self.index = 0

    @property
    def audit(self) -> AuditStateModule:
        module = self.state.modules["audit"]
        assert isinstance(module, AuditStateModule)
        return module

    def apply(self, command: Command) -> Any:
        self.index += 1
        result = self.state.apply(self.index, command.encode())
        assert isinstance(result, Applied), result
        return result

    def actions(self, tenant: str) -> list[tuple[str, str, str]]:
        chain = self.audit.chain(tenant)
        assert chain is not None, f"no chain for {tenant}"
        return [(r.actor, r.action, r.target) for r in chain]


def submit(job_id: str, tenant: str, at: float = T0, by: str = "alice") -> SubmitJob:
    return SubmitJob.new(f"/data/tenants/{tenant}/a", f"/data/tenants/{tenant}/{job_id}",
                         job_id=job_id, at=at, tenant=tenant,
                         submitted_by=by)


def test_a_jobs_life_and_its_agent_are_recorded_in_its_tenants_chain() -> None:
    replica = Replica()
    replica.apply(ApplyTenants(T0, tenant_doc("acme") + "---\n" + tenant_doc("beta"),
                               applied_by="root"))
    caps = AgentCapabilities(protocols=("file",), max_concurrent=4)
    replica.apply(RegisterAgent("agent-1", T0, capabilities=caps, tenant="acme"))
    replica.apply(submit("j1", "acme"))
    replica.apply(AssignJob("j1", "agent-1", 1, T0 + 1))
    replica.apply(JobStarted("j1", "agent-1", 1, T0 + 2))
    replica.apply(CompleteAttempt("j1", "agent-1", 1, T0 + 3, 10, SHA))
    replica.apply(submit("j2", "acme", T0 + 4, by=""))
    replica.apply(CancelJob("j2", T0 + 5, "no longer needed"))
    replica.apply(DrainAgent("agent-1", T0 + 6, T0 + 60))
    assert replica.actions("acme") == [
        ("root", "tenant.applied", "acme"),
        ("controller", "agent.registered", "agent-1"),
        ("alice", "job.submitted", "j1"),
        ("controller", "job.assigned", "j1"),
        ("controller", "job.started", "j1"),
        ("controller", "job.completed", "j1"),
        ("controller", "job.submitted", "j2"),
        ("controller", "job.cancelled", "j2"),
        ("controller", "agent.drained", "agent-1"),
    ]
    chain = replica.audit.chain("acme")
    assert chain is not None and chain.verify() is None
    records = chain.records
    assert [r.sequence for r in records] == list(range(1, 10))
    assert all(r.outcome == "applied" for r in records)
    assert records[2].detail == {"namespace": "default", "source": "/data/tenants/acme/a",
                                 "destination": "/data/tenants/acme/j1"}
    assert records[5].detail["bytes"] == 10
    assert records[7].detail["reason"] == "no longer needed"
    assert replica.actions("beta") == [("root", "tenant.applied", "beta")]


def test_tenant_commands_are_recorded_and_refused_ones_are_not() -> None:
    replica = Replica()
    replica.apply(ApplyTenants(T0, tenant_doc("acme") + "---\n" + tenant_doc("hr", "acme"),
                               applied_by="root"))
    replica.apply(SuspendTenant("hr", T0 + 1, "audit pending"))
    replica.apply(SuspendTenant("hr", T0 + 2))  # already suspended: nothing changed
    replica.apply(DeleteTenant("acme", T0 + 3))  # refused: it has a child
    replica.apply(DeleteTenant("hr", T0 + 4))
    assert replica.actions("hr") == [("root", "tenant.applied", "hr"),
                                     ("controller", "tenant.suspended", "hr"),
                                     ("controller", "tenant.deleted", "hr")]
    assert replica.audit.chain("hr").records[1].detail == {  # type: ignore[union-attr]
        "reason": "audit pending"}
    assert replica.actions("acme") == [("root", "tenant.applied", "acme")]


def test_submissions_admission_refuses_are_recorded_as_denied_with_the_reason() -> None:
    replica = Replica()
    quota = ("  resources:\n    quotas: {maxDailyTransfers: 1}\n")
    replica.apply(ApplyTenants(T0, tenant_doc("acme") + quota, applied_by="root"))
    replica.apply(submit("j1", "acme"))
    replica.index += 1
    refused = replica.state.apply(replica.index, submit("j2", "acme", by="bob").encode())
    assert isinstance(refused, Rejected)
    replica.index += 1
    outside = SubmitJob.new("/data/tenants/acme/a", "/etc/passwd", job_id="j3", at=T0,
                            tenant="acme", submitted_by="mallory")
    assert isinstance(replica.state.apply(replica.index, outside.encode()), Rejected)
    chain = replica.audit.chain("acme")
    assert chain is not None
    denied = [r for r in chain if r.outcome == "denied"]
    assert [(r.actor, r.action, r.target) for r in denied] == [
        ("bob", "job.refused", "j2"), ("mallory", "job.refused", "j3")]
    assert denied[0].detail["code"] == "quota-exceeded"
    assert denied[0].detail["details"]["quota"] == "maxDailyTransfers"
    assert "outside the storage of tenant acme" in denied[1].detail["reason"]
    assert chain.verify() is None


def test_workflow_submissions_and_controls_land_in_the_submitting_tenants_chain() -> None:
    replica = Replica()
    replica.apply(SubmitExecution("e1", T0, {"wf.yaml": WORKFLOW}, submitted_by="bob",
                                  tenant="acme", namespace="etl"))
    replica.apply(CancelExecution("e1", T0 + 1, "wrong day"))
    replica.apply(CancelExecution("nope", T0 + 2))  # unknown: refused, not recorded
    assert replica.actions("acme") == [("bob", "workflow.submitted", "e1"),
                                       ("controller", "workflow.cancelled", "e1")]
    records = replica.audit.chain("acme").records  # type: ignore[union-attr]
    assert records[0].detail == {"namespace": "etl", "workflow": None}
    assert records[1].detail == {"reason": "wrong day"}


def test_access_changes_are_recorded_by_name_without_the_token_hash() -> None:
    replica = Replica()
    replica.apply(CreatePrincipal("ci-bot", "service-account", "acme", T0, created_by="root"))
    replica.apply(IssueToken("ci-bot", "tok-1", "cd" * 32, T0 + 1))
    replica.apply(BindRole("ci-bot", "transfer-user", "*", T0 + 2))
    replica.apply(IssueToken("ghost", "tok-2", "ef" * 32, T0 + 3))  # refused: no principal
    assert replica.actions("acme") == [
        ("root", "access.create-principal", "ci-bot"),
        ("controller", "access.issue-token", "ci-bot"),
        ("controller", "access.bind-role", "ci-bot"),
    ]
    records = replica.audit.chain("acme").records  # type: ignore[union-attr]
    assert records[1].detail == {"token_id": "tok-1"}
    assert records[2].detail == {"role": "transfer-user", "tenant": CONTROLLER_CHAIN}
    assert "cd" * 32 not in str([r.to_data() for r in records])


def test_decisions_are_appended_allowed_and_denied_with_the_dropped_count() -> None:
    replica = Replica()
    replica.apply(RecordDecisions(T0 + 1, "c1", (
        AuditDecision("alice", "jobs.submit", "acme", "etl", True, "", T0),
        AuditDecision("eve", "jobs.read", "acme", None, False, "eve reads nothing", T0, 3),
        AuditDecision("eve", "cluster.admin", None, None, False, "not an admin", T0),
    ), dropped=7))
    acme = replica.audit.chain("acme")
    assert acme is not None
    assert [(r.actor, r.action, r.outcome) for r in acme] == [
        ("alice", "jobs.submit", "allowed"), ("eve", "jobs.read", "denied")]
    assert acme.records[1].detail == {"namespace": None, "node": "c1",
                                      "reason": "eve reads nothing", "count": 3}
    assert replica.actions(CONTROLLER_CHAIN) == [
        ("eve", "cluster.admin", ""),
        ("controller", "audit.decisions-dropped", "c1")]
    assert replica.audit.chain(CONTROLLER_CHAIN).records[1].detail == {  # type: ignore[union-attr]
        "dropped": 7, "node": "c1"}


def test_retention_prunes_by_the_nearest_retention_days_and_keeps_the_chain_verifiable(
) -> None:
    replica = Replica()
    replica.apply(ApplyTenants(T0, tenant_doc("acme", retention=2) + "---\n"
                               + tenant_doc("hr", "acme") + "---\n" + tenant_doc("keep")))
    for day in range(5):
        for tenant in ("hr", "keep"):
            replica.apply(submit(f"{tenant}-{day}", tenant, T0 + day * DAY))
    result = replica.apply(PruneAudit(T0 + 5 * DAY))
    hr = replica.audit.chain("hr")
    assert hr is not None
    # hr inherits acme's two days: what is older than day 3 goes (its applied record too).
    assert [r.target for r in hr] == ["hr-3", "hr-4"]
    assert hr.start == 5 and hr.verify() is None
    assert len(replica.audit.chain("keep")) == 6  # type: ignore[arg-type]
    assert result.value == 4 + 1  # hr's 4, acme's one tenant.applied
    assert replica.audit.chain("acme").records == ()  # type: ignore[union-attr]


def test_a_record_time_never_goes_back_in_its_chain() -> None:
    replica = Replica()
    replica.apply(submit("j1", "acme", T0 + 10))
    replica.apply(submit("j2", "acme", T0))  # a new leader's clock is behind
    assert [r.at for r in replica.audit.chain("acme")] == [T0 + 10, T0 + 10]  # type: ignore[union-attr]


def test_an_edited_record_is_detected_at_its_sequence() -> None:
    replica = Replica()
    for n in range(5):
        replica.apply(submit(f"j{n}", "acme", T0 + n))
    chain = replica.audit.chain("acme")
    assert chain is not None and chain.verify() is None
    third = chain._records[2]
    chain._records[2] = dataclasses.replace(third, actor="mallory")
    found = chain.find_break()
    assert found is not None and found.sequence == 3 and "altered" in found.reason
    # Recomputing its hash does not help: the next record no longer follows it.
    forged = dataclasses.replace(third, actor="mallory")
    chain._records[2] = dataclasses.replace(forged, hash=forged.computed_hash())
    assert chain.verify() == 4


def test_snapshot_and_restore_are_exact_and_replicas_agree() -> None:
    first, second = Replica(), Replica()
    commands: list[Command] = [
        ApplyTenants(T0, tenant_doc("acme", retention=30), applied_by="root"),
        CreatePrincipal("ci-bot", "service-account", "acme", T0),
        submit("j1", "acme"), CancelJob("j1", T0 + 1),
        SubmitExecution("e1", T0 + 2, {"wf.yaml": WORKFLOW}, tenant="acme"),
        RecordDecisions(T0 + 3, "c1", (AuditDecision("a", "jobs.read", "acme", None, True,
                                                     "", T0 + 3),)),
    ]
    for command in commands:
        first.apply(command)
        second.apply(command)
    assert first.audit.snapshot() == second.audit.snapshot()
    restored = Replica()
    restored.state.restore(first.state.snapshot(), first.index)
    assert restored.audit.chains == first.audit.chains
    assert restored.audit.owners == first.audit.owners
    assert restored.audit.snapshot() == first.audit.snapshot()
    # The restored replica goes on exactly like the original (owners included).
    for replica in (first, restored):
        replica.index = first.index
        replica.apply(IssueToken("ci-bot", "tok-1", "cd" * 32, T0 + 4))
    assert restored.audit.chain("acme").head == first.audit.chain("acme").head  # type: ignore[union-attr]
    empty = Replica()
    empty.audit.restore(None)
    assert empty.audit.chains == {}
    with pytest.raises(SnapshotFormatError, match="format 1"):
        empty.audit.restore({"format": 99})
    with pytest.raises(SnapshotFormatError, match="malformed"):
        empty.audit.restore({"format": 1, "chains": [{"tenant": "x"}]})


def test_records_iterate_across_appends_and_pruning() -> None:
    replica = Replica()
    replica.apply(ApplyTenants(T0, tenant_doc("acme", retention=1)))
    replica.apply(submit("j1", "acme", T0 + DAY))
    walking = replica.audit.records("acme")
    first = next(walking)
    assert first.action == "tenant.applied"
    replica.apply(submit("j2", "acme", T0 + 3 * DAY))
    replica.apply(PruneAudit(T0 + 3 * DAY))  # drops the first two
    rest: list[AuditRecord] = list(walking)
    assert [r.target for r in rest] == ["j2"]
    assert list(replica.audit.records("nobody")) == []
