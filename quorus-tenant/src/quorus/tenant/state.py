"""``TenantStateModule``: the ``tenant`` section of the controller's replicated state — the
tenants and their hierarchy, quota reservations and usage — and the checks it makes of the
core's commands.

- ``admit`` (before a ``SubmitJob`` is applied): the job's tenant must exist once any tenant is
  configured (the ``default`` tenant always does), be active with every ancestor, own the
  job's namespace, and the job must fit every quota up the hierarchy
  (:mod:`quorus.tenant.quotas`). A refusal is a core ``Rejected``: ``quota-exceeded`` with
  ``details`` ``{quota, limit, usage, tenant}`` (HTTP 429) or ``admission-denied`` (403).
- ``admit`` (before a ``RegisterAgent`` is applied): once any tenant is configured, an agent
  keeps the tenant and namespace it registered with until it is deregistered, so a principal
  allowed to register agents in one tenant cannot take over another tenant's (or a shared)
  agent by registering its id (and with it the jobs that agent holds).
- ``observe`` (after a core command applied): an admitted job reserves, an ended one releases
  and is counted in the usage.
- ``may_place``: an agent registered with a configured tenant serves only that tenant and its
  descendants; a tenant with ``dedicated`` allocation runs only on its own agents (physical
  isolation), a ``hybrid`` one on its own and shared ones, its own first
  (``placement_preference``).
- ``job_constraints``: the job's storage roots (``allowedDestinations`` up the hierarchy, else
  ``/data/tenants/<id>``) and bandwidth cap (the lowest ``maxBandwidthMbps``), which the leader
  sends with the assignment and the agent enforces.

With no tenant configured nothing is refused and every agent may take every job, exactly as
without this package; usage is still recorded, per tenant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from quorus.core.controller.commands import Command, RegisterAgent, SubmitJob
from quorus.core.controller.model import AgentRecord, AgentState, JobRecord
from quorus.core.controller.results import Applied, RejectCode, Rejected
from quorus.core.controller.state import ControllerState, JobConstraints
from quorus.tenant.commands import (
    COMMAND_TYPES,
    ActivateTenant,
    ApplyTenants,
    DeleteTenant,
    SuspendTenant,
    TenantResult,
)
from quorus.tenant.config import TenantConfigError, ancestors, merge, parse_configuration
from quorus.tenant.model import (
    DEFAULT_NAMESPACE,
    DEFAULT_TENANT,
    Allocation,
    Quotas,
    Tenant,
    TenantStatus,
    tenant_from_plain,
    tenant_to_plain,
)
from quorus.tenant.paths import StoragePathError, default_roots, location_inside, tree_patterns
from quorus.tenant.quotas import QuotaLedger

SNAPSHOT_FORMAT = 1


class TenantStateModule:
    """The ``tenant`` section of the controller's state (see the module docstring)."""

    name = "tenant"
    command_types: Sequence[type[Command]] = COMMAND_TYPES
    #: After these the leader judges every connected agent's access again: the agents of a
    #: deleted tenant may no longer serve (a suspended tenant keeps its agents: its running
    #: jobs finish on them).
    access_commands: Sequence[type[Command]] = (DeleteTenant,)

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.ledger = QuotaLedger()
        self._chains: dict[str, tuple[str, ...]] = {}

    # -- reading --------------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def chain(self, tenant_id: str) -> tuple[str, ...]:
        """``tenant_id`` and its ancestors, nearest first (just ``tenant_id`` if unknown)."""
        found = self._chains.get(tenant_id)
        if found is None:
            found = tuple(ancestors(self.tenants, tenant_id)) or (tenant_id,)
            self._chains[tenant_id] = found
        return found

    def children(self, tenant_id: str) -> list[str]:
        return sorted(t.id for t in self.tenants.values() if t.parent == tenant_id)

    def tree(self) -> list[dict[str, Any]]:
        """The hierarchy: each root with its ``children``, recursively, sorted by id."""
        def node(tenant_id: str) -> dict[str, Any]:
            return {**self.tenants[tenant_id].summary(),
                    "children": [node(c) for c in self.children(tenant_id)]}

        return [node(t) for t in sorted(self.tenants) if self.tenants[t].parent is None]

    def max_file_size(self, tenant_id: str) -> int | None:
        found = self.tenants.get(tenant_id)
        return found.quotas.max_file_size if found is not None else None

    # -- applying the module's commands ---------------------------------------------------------

    def apply(self, command: Command, index: int, state: ControllerState) -> TenantResult:
        if isinstance(command, ApplyTenants):
            return self._apply_tenants(command)
        tenant_id = getattr(command, "tenant_id", "")
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            return TenantResult(False, f"no tenant {tenant_id!r}")
        if isinstance(command, SuspendTenant | ActivateTenant):
            status = (TenantStatus.SUSPENDED if isinstance(command, SuspendTenant)
                      else TenantStatus.ACTIVE)
            if tenant.status is status:
                return TenantResult(True, f"tenant {tenant_id} is already {status}",
                                    (tenant_id,), duplicate=True)
            self.tenants[tenant_id] = dataclasses.replace(tenant, status=status,
                                                          updated_at=command.at)
            return TenantResult(True, "", (tenant_id,))
        if isinstance(command, DeleteTenant):
            return self._delete(tenant, state)
        return TenantResult(False, f"the tenant module does not apply {command.NAME}")

    def _apply_tenants(self, command: ApplyTenants) -> TenantResult:
        try:
            parsed = parse_configuration(command.text, command.file)
            merged = merge(self.tenants, parsed)
        except TenantConfigError as exc:
            return TenantResult(False, str(exc))
        changed = [t.id for t in parsed.tenants] + [n.tenant for n in parsed.namespaces]
        for tenant_id in dict.fromkeys(changed):
            merged[tenant_id] = dataclasses.replace(merged[tenant_id], updated_at=command.at)
        self.tenants = merged
        self._chains.clear()
        return TenantResult(True, "", tuple(dict.fromkeys(changed)))

    def _delete(self, tenant: Tenant, state: ControllerState) -> TenantResult:
        children = self.children(tenant.id)
        if children:
            return TenantResult(False, f"tenant {tenant.id} has children "
                                f"({', '.join(children)}): delete them first")
        unfinished = sum(1 for job in state.jobs.values()
                         if job.tenant == tenant.id and not job.state.terminal)
        if unfinished:
            return TenantResult(False, f"tenant {tenant.id} has {unfinished} unfinished "
                                "jobs: cancel them or wait for them to end (suspend it to "
                                "refuse new ones)")
        del self.tenants[tenant.id]
        self._chains.clear()
        return TenantResult(True, "", (tenant.id,))

    # -- checking core commands -----------------------------------------------------------------

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None:
        if type(command) is RegisterAgent:
            return self._registration_problem(command, index, state)
        if type(command) is not SubmitJob or state.job(command.job_id) is not None:
            return None  # only new submissions; a repeated one is the core's to answer
        tenant = self.tenants.get(command.tenant)
        if tenant is None:
            if self.tenants and command.tenant != DEFAULT_TENANT:
                return _denied(command, index, f"no tenant {command.tenant}: apply its "
                               "TenantConfiguration (quorus tenant apply FILE)")
            chain: tuple[str, ...] = ()
        else:
            chain = self.chain(tenant.id)
            for tenant_id in chain:
                if self.tenants[tenant_id].status is TenantStatus.SUSPENDED:
                    whose = "is" if tenant_id == tenant.id else f"belongs to {tenant_id}, which is"
                    return _denied(command, index, f"tenant {tenant.id} {whose} suspended: "
                                   "activate it to submit jobs")
            if command.namespace != DEFAULT_NAMESPACE and \
                    command.namespace not in tenant.namespaces:
                known = ", ".join((DEFAULT_NAMESPACE, *tenant.namespaces))
                return _denied(command, index, f"tenant {tenant.id} has no namespace "
                               f"{command.namespace} (it has {known}): configure it with a "
                               f"TenantConfiguration whose metadata.tenant is {tenant.id}")
        if not chain:
            return None
        outside = self.storage_problem(chain, command)
        if outside is not None:
            return _denied(command, index, outside)
        quotas: list[tuple[str, Quotas]] = [(t, self.tenants[t].quotas) for t in chain]
        refused = self.ledger.refusal(quotas, command.at, command.options.expected_size)
        if refused is None:
            return None
        return Rejected(command.NAME, index, RejectCode.QUOTA_EXCEEDED,
                        f"quota {refused.quota} exceeded: {refused.message}",
                        refused.details())

    def _registration_problem(self, command: RegisterAgent, index: int,
                              state: ControllerState) -> Rejected | None:
        """Why an agent may not register with ``command``'s tenant and namespace: it is
        registered (and not deregistered) with others. Whoever registers is authorized in the
        tenant it names, not in the one the agent serves now, so a change of tenant would let
        one tenant's principal take another's agent, its assignments and its results. With no
        tenant configured, nothing is refused."""
        if not self.tenants:
            return None
        old = state.agent(command.agent_id)
        if old is None or old.state is AgentState.DEREGISTERED or \
                (old.tenant, old.namespace) == (command.tenant, command.namespace):
            return None
        return _denied(command, index, (
            f"agent {command.agent_id} is registered with tenant {old.tenant} namespace "
            f"{old.namespace}: it cannot register with tenant {command.tenant} namespace "
            f"{command.namespace} until it is deregistered (drain it with quorus agents drain "
            f"{command.agent_id}, or stop it), or choose another agent id"))

    def storage_roots(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        """The storage of the first tenant of ``chain``: its ``allowedDestinations``, else its
        nearest ancestor's, else its own default root ``/data/tenants/<id>``."""
        for tenant_id in chain:
            roots = self.tenants[tenant_id].allowed_destinations
            if roots:
                return roots
        return default_roots(chain[0])

    def storage_problem(self, chain: tuple[str, ...], command: SubmitJob) -> str | None:
        """Why the job's destination (or local source) is outside its tenant's storage
        (:meth:`storage_roots`). Traversal (``..``, encoded or not) is refused outright. The
        agent checks again, and writes local files without following symbolic links."""
        roots = self.storage_roots(chain)
        tenant = chain[0]
        patterns = tree_patterns(roots)
        places = [("destination", command.destination, command.destination_display)]
        if command.source_scheme == "file":
            places.append(("source", command.source, command.source_display))
        for what, location, shown in places:
            try:
                inside = location_inside(location, patterns)
            except StoragePathError as exc:
                return f"{what} {shown} is refused: {exc}"
            if not inside:
                return (f"{what} {shown} is outside the storage of tenant {tenant} "
                        f"(allowed: {', '.join(roots)})")
        return None

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None:
        if not result.jobs:
            return
        if type(command) is SubmitJob and not result.duplicate:
            job = result.jobs[0]
            self.ledger.reserve(job, self.chain(job.tenant))
            return
        held = self.ledger.open
        for job in result.jobs:
            if job.state.terminal and job.id in held:
                self.ledger.release(job, self.max_file_size)

    def may_place(self, job: JobRecord, agent: AgentRecord, state: ControllerState
                  ) -> str | None:
        if not self.tenants:
            return None
        chain = self.chain(job.tenant)
        owner = agent.tenant
        if owner != DEFAULT_TENANT and owner in self.tenants and owner not in chain:
            return f"it is dedicated to tenant {owner}"
        for depth, tenant_id in enumerate(chain):
            tenant = self.tenants.get(tenant_id)
            if tenant is None or tenant.allocation is Allocation.SHARED:
                continue
            if tenant.allocation is Allocation.DEDICATED and owner not in chain[:depth + 1]:
                return (f"tenant {tenant_id} runs only on agents registered with it "
                        "(dedicated allocation)")
            return None
        return None

    def placement_preference(self, job: JobRecord, agent: AgentRecord,
                             state: ControllerState) -> int:
        """Under ``hybrid`` allocation (the nearest tenant up the chain that chose one), the
        tenant's own agents first (0), shared agents only when they are full (1)."""
        shared = agent.tenant == DEFAULT_TENANT
        return 1 if shared and self.tenants and self._hybrid(job.tenant) else 0

    def _hybrid(self, tenant_id: str) -> bool:
        for chained in self.chain(tenant_id):
            tenant = self.tenants.get(chained)
            if tenant is not None and tenant.allocation is not Allocation.SHARED:
                return tenant.allocation is Allocation.HYBRID
        return False

    def job_constraints(self, job: JobRecord, state: ControllerState) -> JobConstraints | None:
        """How agents must run ``job``: inside its tenant's storage roots, and no faster than
        the lowest ``maxBandwidthMbps`` up its hierarchy. Jobs of the ``default`` tenant, and
        every job while no tenant is configured, are not constrained."""
        if job.tenant not in self.tenants:
            return None
        chain = self.chain(job.tenant)
        caps = [q for t in chain if (q := self.tenants[t].quotas.max_bandwidth_mbps) is not None]
        bandwidth = max(1, int(min(caps) * 1_000_000 / 8)) if caps else None
        return JobConstraints(bandwidth, self.storage_roots(chain))

    # -- snapshot -------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return {"format": SNAPSHOT_FORMAT,
                "tenants": [tenant_to_plain(self.tenants[t]) for t in self.tenants],
                "ledger": self.ledger.snapshot()}

    def restore(self, data: Any) -> None:
        tenants: dict[str, Tenant] = {}
        ledger = QuotaLedger()
        if data is not None:
            from quorus.core.controller.state import SnapshotFormatError

            if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotFormatError("the snapshot's tenant section is not format "
                                          f"{SNAPSHOT_FORMAT}: restore it with the "
                                          "quorus-tenant version that wrote it")
            for plain in data.get("tenants", []):
                tenant = tenant_from_plain(plain)
                tenants[tenant.id] = tenant
            ledger.restore(data.get("ledger", {}))
        self.tenants = tenants
        self.ledger = ledger
        self._chains.clear()


def _denied(command: Command, index: int, message: str) -> Rejected:
    return Rejected(command.NAME, index, RejectCode.ADMISSION_DENIED, message)


__all__ = ["SNAPSHOT_FORMAT", "TenantStateModule"]
