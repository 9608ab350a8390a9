"""The ``tenant`` state module inside a real ``ControllerState``: tenant commands, quota
admission for each quota and up the hierarchy, reservations released when jobs end, suspended
and unknown tenants, dedicated agents, deletion rules, snapshot and restore."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from quorus.core.controller import (
    AgentCapabilities,
    Applied,
    AssignJob,
    CancelJob,
    CompleteAttempt,
    ControllerState,
    DeregisterAgent,
    FailAttempt,
    RegisterAgent,
    Rejected,
    SubmitJob,
)
from quorus.core.controller.model import AttemptRef, JobOptions, JobState
from quorus.core.controller.results import RejectCode
from quorus.core.controller.scheduler import schedule
from quorus.core.controller.server import transfer_options
from quorus.tenant.commands import (
    ActivateTenant,
    ApplyTenants,
    DeleteTenant,
    SuspendTenant,
    TenantResult,
)
from quorus.tenant.model import TenantStatus
from quorus.tenant.state import TenantStateModule

DAY = 86400.0
T0 = 20_000 * DAY  # 2024-10-04 00:00 UTC
SHA = "0" * 64
CAPS = AgentCapabilities(protocols=("file",), max_concurrent=100)


def doc(name: str, parent: str | None = None, *, strategy: str = "shared",
        namespace: str | None = None, **quotas: Any) -> str:
    written = "".join(f"\n      {k}: {v}" for k, v in quotas.items())
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n"
            f"  name: {name}{ns}\nspec:\n  hierarchy:\n    parent: {parent or 'null'}\n"
            f"  resources:\n    allocation:\n      strategy: {strategy}\n"
            f"    quotas:{written or ' {}'}\n")


class Fleet:
    """A controller state with the tenant module, driven command by command."""

    def __init__(self) -> None:
        self.module = TenantStateModule()
        self.state = ControllerState([self.module])
        self.index = itertools.count(1)
        self.ids = itertools.count(1)

    def run(self, command: Any) -> Any:
        return self.state.apply(next(self.index), command.encode())

    def tenants(self, *docs: str, at: float = T0) -> TenantResult:
        applied = self.run(ApplyTenants(at, "---\n".join(docs)))
        assert isinstance(applied, Applied)
        assert isinstance(applied.value, TenantResult)
        return applied.value

    def submit(self, tenant: str = "default", *, at: float = T0, namespace: str = "default",
               job_id: str | None = None, **options: Any) -> Applied | Rejected:
        job_id = job_id or f"j{next(self.ids)}"
        result = self.run(SubmitJob.new(f"/data/tenants/{tenant}/src", f"/data/tenants/{tenant}/dst/{job_id}",
                                        job_id=job_id, at=at,
                                        tenant=tenant, namespace=namespace,
                                        options=JobOptions(**options)))
        assert isinstance(result, Applied | Rejected)
        return result

    def agent(self, agent_id: str, tenant: str = "default") -> None:
        assert isinstance(self.run(RegisterAgent(agent_id, T0, capabilities=CAPS,
                                                 tenant=tenant)), Applied)

    def complete(self, job_id: str, written: int, *, at: float = T0) -> None:
        assert isinstance(self.run(AssignJob(job_id, "a1", 1, at)), Applied)
        assert isinstance(self.run(CompleteAttempt(job_id, "a1", 1, at, written, SHA)), Applied)


def refused(result: Applied | Rejected) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


def test_without_tenants_nothing_is_refused_but_usage_is_recorded(fleet: Fleet) -> None:
    for n in range(20):
        assert isinstance(fleet.submit("anyone", namespace=f"ns{n}"), Applied)
    assert fleet.module.ledger.running == {"anyone": 20}
    assert fleet.module.ledger.usage("anyone", "2024-10-04").submitted == 20


def test_concurrent_transfers_roll_up_and_are_released_on_every_end(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("company", maxConcurrentTransfers=3), doc("team-a", "company"),
                  doc("team-b", "company", maxConcurrentTransfers=2))
    assert isinstance(fleet.submit("team-a", job_id="a1j"), Applied)
    assert isinstance(fleet.submit("team-b", job_id="b1j"), Applied)
    assert isinstance(fleet.submit("team-b", job_id="b2j"), Applied)
    # team-b is full by its own quota; team-a by the company's (3 jobs below it).
    own = refused(fleet.submit("team-b"))
    assert own.code is RejectCode.QUOTA_EXCEEDED
    assert own.details == {"quota": "maxConcurrentTransfers", "limit": 2, "usage": 2,
                           "tenant": "team-b"}
    rolled = refused(fleet.submit("team-a"))
    assert rolled.details == {"quota": "maxConcurrentTransfers", "limit": 3, "usage": 3,
                              "tenant": "company"}
    assert "tenant company runs 3 of its 3 concurrent transfers" in rolled.message
    # Completing, failing for good and cancelling each free one slot.
    fleet.complete("a1j", 10)
    assert isinstance(fleet.submit("team-a", job_id="a2j"), Applied)
    assert isinstance(fleet.run(AssignJob("b1j", "a1", 1, T0)), Applied)
    assert isinstance(fleet.run(FailAttempt("b1j", "a1", 1, T0, "disk full", False)), Applied)
    assert fleet.state.job("b1j").state is JobState.FAILED  # type: ignore[union-attr]
    assert isinstance(fleet.submit("team-b", job_id="b3j"), Applied)
    assert isinstance(fleet.run(CancelJob("b2j", T0)), Applied)
    assert fleet.module.ledger.running == {"company": 2, "team-a": 1, "team-b": 1}
    day = fleet.module.ledger.usage("company", "2024-10-04")
    assert (day.submitted, day.completed, day.failed, day.cancelled, day.bytes) == (5, 1, 1, 1,
                                                                                   10)


def test_a_retryable_failure_keeps_the_slot(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("t", maxConcurrentTransfers=1))
    assert isinstance(fleet.submit("t", job_id="x"), Applied)
    assert isinstance(fleet.run(AssignJob("x", "a1", 1, T0)), Applied)
    assert isinstance(fleet.run(FailAttempt("x", "a1", 1, T0, "timeout", True)), Applied)
    assert fleet.state.job("x").state is JobState.QUEUED  # type: ignore[union-attr]
    assert refused(fleet.submit("t")).details["quota"] == "maxConcurrentTransfers"


def test_daily_transfers_count_per_utc_day(fleet: Fleet) -> None:
    fleet.tenants(doc("t", maxDailyTransfers=2))
    late = T0 + DAY - 1
    assert isinstance(fleet.submit("t", at=T0), Applied)
    cancelled = fleet.submit("t", at=late)
    assert isinstance(cancelled, Applied)
    fleet.run(CancelJob(cancelled.jobs[0].id, late))  # a cancelled job still counts
    day = refused(fleet.submit("t", at=late))
    assert day.details == {"quota": "maxDailyTransfers", "limit": 2, "usage": 2, "tenant": "t"}
    assert "on 2024-10-04 (UTC)" in day.message
    assert isinstance(fleet.submit("t", at=T0 + DAY), Applied)


def test_monthly_data_reserves_expected_sizes_and_counts_actual_bytes(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("t", maxMonthlyDataTransfer=1000))
    assert isinstance(fleet.submit("t", job_id="big", expected_size=600), Applied)
    over = refused(fleet.submit("t", expected_size=500))
    assert over.details == {"quota": "maxMonthlyDataTransfer", "limit": 1000, "usage": 600,
                            "tenant": "t"}
    assert isinstance(fleet.submit("t", job_id="small", expected_size=400), Applied)
    # Spent (by reservations): even a job of unknown size is refused now.
    assert refused(fleet.submit("t")).details["usage"] == 1000
    assert isinstance(fleet.run(CancelJob("big", T0)), Applied)
    assert isinstance(fleet.submit("t", job_id="unknown"), Applied)
    fleet.complete("unknown", 550)
    assert fleet.module.ledger.usage("t", "2024-10").bytes == 550
    assert refused(fleet.submit("t", expected_size=100)).details["usage"] == 950
    # A new month starts afresh (the open reservation still counts).
    assert isinstance(fleet.submit("t", at=T0 + 31 * DAY, expected_size=600), Applied)


def test_file_size_is_checked_at_admission_or_recorded_at_completion(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("company", maxFileSize=100), doc("team", "company"))
    big = refused(fleet.submit("team", expected_size=101))
    assert big.details == {"quota": "maxFileSize", "limit": 100, "usage": 101,
                           "tenant": "company"}
    assert isinstance(fleet.submit("team", job_id="blind"), Applied)
    fleet.complete("blind", 150)
    assert fleet.module.ledger.usage("company", "2024-10-04").oversize == 1
    assert fleet.module.ledger.usage("team", "2024-10-04").oversize == 0


def test_bandwidth_is_capped_by_the_lowest_limit_up_the_hierarchy(fleet: Fleet) -> None:
    fleet.tenants(doc("company", maxBandwidthMbps=100), doc("team", "company",
                                                            maxBandwidthMbps=50))
    unlimited = fleet.submit("team")
    assert isinstance(unlimited, Applied)  # capped, not refused
    job = unlimited.jobs[0]
    constraints = fleet.state.job_constraints(job)
    assert constraints.bandwidth_limit == 50 * 125_000  # 50 Mbps in bytes per second
    options = transfer_options(job, constraints)
    assert options.bandwidth_limit == 50 * 125_000  # what the agent is told
    slower = fleet.submit("team", bandwidth_mbps=10)
    assert isinstance(slower, Applied)
    options = transfer_options(slower.jobs[0], fleet.state.job_constraints(slower.jobs[0]))
    assert options.bandwidth_limit == 10 * 125_000  # the job's own, lower, limit stands
    faster = fleet.submit("company", bandwidth_mbps=120)
    assert isinstance(faster, Applied)
    assert fleet.state.job_constraints(faster.jobs[0]).bandwidth_limit == 100 * 125_000


def test_jobs_are_confined_to_their_tenants_storage_on_the_agent(fleet: Fleet) -> None:
    company = doc("company") + ("  security:\n    networking:\n"
                                "      allowedDestinations: [\"/srv/company/*\"]\n")
    fleet.tenants(company, doc("team", "company"), doc("solo"))
    solo = fleet.submit("solo")
    assert isinstance(solo, Applied)
    # A tenant (and its ancestors) naming no storage gets /data/tenants/<id>.
    assert fleet.state.job_constraints(solo.jobs[0]).storage_roots == ("/data/tenants/solo",)
    refused(fleet.submit("team"))  # /data/tenants/team is not the company's /srv/company
    team = fleet.run(SubmitJob.new("/srv/company/in/x", "/srv/company/out/x", job_id="t1",
                                   at=T0, tenant="team"))
    assert isinstance(team, Applied)
    options = transfer_options(team.jobs[0], fleet.state.job_constraints(team.jobs[0]))
    assert options.storage_roots == ("/srv/company/*",)
    # The default tenant is not confined (no TenantConfiguration names it).
    default = fleet.run(SubmitJob.new("/a", "/b", job_id="d1", at=T0))
    assert isinstance(default, Applied)
    assert fleet.state.job_constraints(default.jobs[0]).storage_roots is None


def test_storage_usage_counts_every_byte_written(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("t", maxStorageUsage=100))
    assert isinstance(fleet.submit("t", job_id="one"), Applied)
    fleet.complete("one", 100)
    stored = refused(fleet.submit("t", at=T0 + 40 * DAY))
    assert stored.details == {"quota": "maxStorageUsage", "limit": 100, "usage": 100,
                              "tenant": "t"}


def test_suspended_unknown_tenants_and_namespaces_are_denied(fleet: Fleet) -> None:
    fleet.tenants(doc("company"), doc("team", "company", namespace="ops"))
    assert isinstance(fleet.submit("team", namespace="ops"), Applied)
    assert isinstance(fleet.submit("default"), Applied)  # the default tenant stays open
    unknown = refused(fleet.submit("ghost"))
    assert unknown.code is RejectCode.ADMISSION_DENIED
    assert unknown.message == ("no tenant ghost: apply its TenantConfiguration "
                               "(quorus tenant apply FILE)")
    namespace = refused(fleet.submit("team", namespace="elsewhere"))
    assert "tenant team has no namespace elsewhere (it has default, ops)" in namespace.message
    fleet.run(SuspendTenant("company", T0))
    suspended = refused(fleet.submit("team"))
    assert suspended.code is RejectCode.ADMISSION_DENIED
    assert suspended.message == ("tenant team belongs to company, which is suspended: "
                                 "activate it to submit jobs")
    fleet.run(ActivateTenant("company", T0))
    assert isinstance(fleet.submit("team"), Applied)


def test_refusals_change_nothing(fleet: Fleet) -> None:
    fleet.tenants(doc("t", maxConcurrentTransfers=1))
    assert isinstance(fleet.submit("t", job_id="first"), Applied)
    before = fleet.module.snapshot()
    refused(fleet.submit("t", job_id="second"))
    assert fleet.state.job("second") is None
    assert fleet.module.snapshot() == before
    assert fleet.module.ledger.running == {"t": 1}
    # Resubmitting the admitted job is the core's duplicate, not a second reservation.
    again = fleet.submit("t", job_id="first")
    assert isinstance(again, Applied) and again.duplicate
    assert fleet.module.ledger.running == {"t": 1}


def test_dedicated_and_hybrid_allocation_bind_placement(fleet: Fleet) -> None:
    fleet.tenants(doc("company"), doc("finance", "company", strategy="dedicated"),
                  doc("payroll", "finance"), doc("hr", "company", strategy="hybrid"))
    fleet.agent("shared")
    fleet.agent("fin-agent", tenant="finance")
    fleet.agent("hr-agent", tenant="hr")
    for tenant in ("payroll", "finance", "hr", "company"):
        assert isinstance(fleet.submit(tenant, job_id=f"{tenant}-job"), Applied)
    placed = {a.job_id: a.agent_id for a in schedule(fleet.state).assignments}
    assert placed["payroll-job"] == "fin-agent"
    assert placed["finance-job"] == "fin-agent"
    assert placed["hr-job"] == "hr-agent"  # hybrid: its own agent first
    assert placed["company-job"] == "shared"
    refusal = refused(fleet.run(AssignJob("finance-job", "shared", 1, T0)))
    assert refusal.code is RejectCode.ADMISSION_DENIED
    assert "tenant finance runs only on agents registered with it" in refusal.message
    other = refused(fleet.run(AssignJob("company-job", "hr-agent", 1, T0)))
    assert "dedicated to tenant hr" in other.message
    assert isinstance(fleet.run(AssignJob("hr-job", "shared", 1, T0)), Applied)


def test_an_agent_keeps_its_tenant_until_it_is_deregistered(fleet: Fleet) -> None:
    # Registering is authorized in the tenant the registration names: were the agent's tenant
    # allowed to change, a principal who may register agents in sales could take hr's agent,
    # and with it the hr jobs it holds (their results would then be sales's to report).
    fleet.tenants(doc("hr", strategy="dedicated"), doc("sales"))
    fleet.agent("hr-1", tenant="hr")
    fleet.agent("shared-1")
    assert isinstance(fleet.submit("hr", job_id="payslips"), Applied)
    assert isinstance(fleet.run(AssignJob("payslips", "hr-1", 1, T0)), Applied)
    holding = (AttemptRef("payslips", 1),)
    for agent_id, tenant, namespace, was in (("hr-1", "sales", "default", "hr"),
                                             ("hr-1", "hr", "ops", "hr"),
                                             ("shared-1", "sales", "default", "default")):
        taken = refused(fleet.run(RegisterAgent(agent_id, T0 + 1, capabilities=CAPS,
                                                holding=holding, tenant=tenant,
                                                namespace=namespace)))
        assert taken.code is RejectCode.ADMISSION_DENIED
        assert f"agent {agent_id} is registered with tenant {was} namespace default: it " \
            f"cannot register with tenant {tenant} namespace {namespace} until it is " \
            "deregistered" in taken.message
    # Nothing changed: the agent is hr's and still runs hr's job.
    agent = fleet.state.agent("hr-1")
    assert agent is not None and (agent.tenant, agent.namespace) == ("hr", "default")
    job = fleet.state.job("payslips")
    assert job is not None and (job.state, job.agent_id) == (JobState.ASSIGNED, "hr-1")
    # The same tenant re-registers (a restart) as before.
    assert isinstance(fleet.run(RegisterAgent("hr-1", T0 + 2, capabilities=CAPS,
                                              holding=holding, tenant="hr")), Applied)
    # Once deregistered, the id may serve another tenant.
    assert isinstance(fleet.run(DeregisterAgent("hr-1", T0 + 3)), Applied)
    assert isinstance(fleet.run(RegisterAgent("hr-1", T0 + 4, capabilities=CAPS,
                                              tenant="sales")), Applied)
    assert fleet.state.agent("hr-1").tenant == "sales"  # type: ignore[union-attr]


def test_another_tenants_agent_cannot_report_on_a_job(fleet: Fleet) -> None:
    fleet.tenants(doc("hr", strategy="dedicated"), doc("sales", strategy="dedicated"))
    fleet.agent("hr-1", tenant="hr")
    fleet.agent("sales-1", tenant="sales")
    assert isinstance(fleet.submit("hr", job_id="payslips"), Applied)
    assert isinstance(fleet.run(AssignJob("payslips", "hr-1", 1, T0)), Applied)
    for command in (CompleteAttempt("payslips", "sales-1", 1, T0, 10, SHA),
                    FailAttempt("payslips", "sales-1", 1, T0, "gone", False),
                    AssignJob("payslips", "sales-1", 2, T0)):
        assert isinstance(fleet.run(command), Rejected), command
    job = fleet.state.job("payslips")
    assert job is not None and (job.state, job.agent_id, job.attempt) == (
        JobState.ASSIGNED, "hr-1", 1)
    assert fleet.module.ledger.running == {"hr": 1}


def test_without_tenants_an_agent_may_change_its_tenant(fleet: Fleet) -> None:
    fleet.agent("a1", tenant="hr")
    fleet.agent("a1", tenant="sales")
    assert fleet.state.agent("a1").tenant == "sales"  # type: ignore[union-attr]


def test_hybrid_tenants_fill_their_own_agents_before_shared_ones(fleet: Fleet) -> None:
    fleet.tenants(doc("company"), doc("hr", "company", strategy="hybrid"))
    fleet.agent("shared")
    fleet.agent("hr-agent", tenant="hr")
    for n in range(150):  # the hr agent takes 100 at most
        assert isinstance(fleet.submit("hr", job_id=f"hr-{n}"), Applied)
    placed = [a.agent_id for a in schedule(fleet.state).assignments]
    assert placed[:100] == ["hr-agent"] * 100
    assert placed[100:] == ["shared"] * 50


def test_delete_is_refused_with_children_or_unfinished_jobs(fleet: Fleet) -> None:
    fleet.tenants(doc("company"), doc("team", "company"))
    assert isinstance(fleet.submit("team", job_id="open"), Applied)
    children = fleet.run(DeleteTenant("company", T0)).value
    assert children == TenantResult(False, "tenant company has children (team): delete "
                                    "them first")
    busy = fleet.run(DeleteTenant("team", T0)).value
    assert not busy.ok and "tenant team has 1 unfinished jobs" in busy.message
    fleet.run(CancelJob("open", T0))
    assert fleet.run(DeleteTenant("team", T0)).value.ok
    assert fleet.run(DeleteTenant("company", T0)).value.ok
    assert fleet.module.tenants == {}
    assert not fleet.run(DeleteTenant("company", T0)).value.ok


def test_apply_is_checked_again_when_applied(fleet: Fleet) -> None:
    result = fleet.tenants(doc("team", "company"))
    assert not result.ok and "parent 'company' does not exist" in result.message
    assert fleet.module.tenants == {}
    assert fleet.tenants(doc("company"), doc("team", "company"), at=T0 + 5).tenants == (
        "company", "team")
    assert fleet.module.tenant("team").updated_at == T0 + 5  # type: ignore[union-attr]
    fleet.run(SuspendTenant("team", T0 + 6, "audit"))
    fleet.tenants(doc("team", "company", maxDailyTransfers=3))
    assert fleet.module.tenant("team").status is TenantStatus.SUSPENDED  # type: ignore[union-attr]


def test_snapshot_and_restore_are_exact(fleet: Fleet) -> None:
    fleet.agent("a1")
    fleet.tenants(doc("company", maxConcurrentTransfers=4, maxMonthlyDataTransfer=10_000),
                  doc("team", "company", namespace="ops", strategy="hybrid"))
    fleet.submit("team", job_id="done", expected_size=10)
    fleet.complete("done", 10)
    fleet.submit("team", job_id="held", expected_size=300, namespace="ops")
    fleet.submit("company", job_id="other", at=T0 + DAY)
    fleet.run(SuspendTenant("team", T0 + DAY))
    snapshot = fleet.state.snapshot()
    copy = Fleet()
    copy.state.restore(snapshot, fleet.state.applied_index)
    assert copy.state.snapshot() == snapshot
    assert copy.module.tenants == fleet.module.tenants
    assert copy.module.ledger.running == fleet.module.ledger.running
    assert copy.module.ledger.reserved == fleet.module.ledger.reserved == {"company": 300,
                                                                             "team": 300}
    # Both decide the same from here on.
    for replica in (fleet, copy):
        replica.index = itertools.count(100)
        assert refused(replica.submit("team")).code is RejectCode.ADMISSION_DENIED
        replica.run(ActivateTenant("team", T0 + DAY))
        assert isinstance(replica.submit("team", job_id="x1"), Applied)
        assert isinstance(replica.submit("team", job_id="x2"), Applied)
        assert refused(replica.submit("team", job_id="x3")).details == {
            "quota": "maxConcurrentTransfers", "limit": 4, "usage": 4, "tenant": "company"}
    assert copy.state.snapshot() == fleet.state.snapshot()
    empty = TenantStateModule()
    empty.restore(None)
    assert empty.tenants == {} and empty.ledger.open == {}
