"""What each applied command means for the audit trail: :func:`entries` turns a command and its
result into :class:`AuditEntry` values (tenant, actor, action, target, detail), for the core's
job and agent commands, the tenant module's, the workflow module's and, matched by name only,
those of an ``access`` module and of a ``sharing`` module (an agreement recorded or revoked is
in the chains of both tenants it names).

Pure and deterministic, like the state machine that calls it: the same command and result give
the same entries on every controller. Commands that changed nothing (refused, or repeating one
applied already) give none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quorus.core.controller.commands import (
    AssignJob,
    CancelJob,
    Command,
    CompleteAttempt,
    DeregisterAgent,
    DrainAgent,
    ExpireAgent,
    FailAttempt,
    JobStarted,
    RegisterAgent,
    SubmitJob,
)
from quorus.core.controller.model import JobRecord, JobState
from quorus.core.controller.results import Applied, Rejected
from quorus.core.controller.state import ControllerState

#: The chain of actions that concern no single tenant (``cluster.admin``, a role bound in
#: every tenant). ``*`` is no tenant name, so it cannot clash with one.
CONTROLLER_CHAIN = "*"
#: Who acted when a command does not say (the leader's own decisions: assignments, expiries).
CONTROLLER_ACTOR = "controller"

_JOB_COMMANDS = (AssignJob, JobStarted, CompleteAttempt, FailAttempt, CancelJob, RegisterAgent,
                 ExpireAgent, DeregisterAgent)
_JOB_ACTIONS = {
    JobState.QUEUED: "job.requeued",
    JobState.ASSIGNED: "job.assigned",
    JobState.RUNNING: "job.started",
    JobState.COMPLETED: "job.completed",
    JobState.FAILED: "job.failed",
    JobState.CANCELLED: "job.cancelled",
}
_AGENT_ACTIONS: dict[type[Command], str] = {
    RegisterAgent: "agent.registered",
    ExpireAgent: "agent.expired",
    DrainAgent: "agent.drained",
    DeregisterAgent: "agent.deregistered",
}
_TENANT_ACTIONS = {
    "tenant-apply": "tenant.applied",
    "tenant-suspend": "tenant.suspended",
    "tenant-activate": "tenant.activated",
    "tenant-delete": "tenant.deleted",
}
_WORKFLOW_CONTROLS = {
    "workflow-pause-execution": "workflow.paused",
    "workflow-resume-execution": "workflow.resumed",
    "workflow-cancel-execution": "workflow.cancelled",
}
_SHARING_ACTIONS = {
    "sharing-record-agreement": "agreement.recorded",
    "sharing-revoke-agreement": "agreement.revoked",
}
#: Fields of a sharing command worth keeping with its record.
_SHARING_DETAIL = ("provider", "recipient", "mutual", "valid_from", "expires_at", "purpose",
                   "classification", "reason")
#: Fields of an access command worth keeping (never a token's hash).
_ACCESS_DETAIL = ("kind", "role", "namespace", "token_id", "expires_at")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record to append to ``tenant``'s chain (the chain adds sequence, time and hashes)."""

    tenant: str
    actor: str
    action: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Owners:
    """Whose a name is, for commands that carry only the name: a workflow registration (its
    unregistration and trigger fires) and an access principal (its deletion and tokens).
    Replicated with the audit module's snapshot."""

    registrations: dict[str, str] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return {"registrations": dict(self.registrations), "principals": dict(self.principals)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Owners:
        data = data or {}
        return cls({str(k): str(v) for k, v in dict(data.get("registrations") or {}).items()},
                   {str(k): str(v) for k, v in dict(data.get("principals") or {}).items()})


def entries(command: Command, result: Applied, state: ControllerState,
            owners: Owners) -> list[AuditEntry]:
    """The audit entries ``command`` (applied with ``result``) calls for; ``owners`` is kept
    up to date with the registrations and principals it creates or removes."""
    if result.duplicate:
        return []
    name = command.NAME
    if name in _TENANT_ACTIONS:
        return _tenant_entries(command, result.value)
    if name.startswith("workflow-"):
        return _workflow_entries(command, result.value, state, owners)
    if name.startswith("access-"):
        return _access_entries(command, result.value, owners)
    if name.startswith("sharing-"):
        return _sharing_entries(command, result.value)
    return _core_entries(command, result)


def refusal_entry(command: Command, refusal: Rejected) -> AuditEntry:
    """What to record of a command admission refused: in the chain of the tenant it was for
    (a job's tenant, a workflow's owner), who asked, and why."""
    reach = command.tenant_reach()
    tenant = reach.owner if reach is not None else str(
        getattr(command, "tenant", "") or CONTROLLER_CHAIN)
    kind = ("job" if isinstance(command, SubmitJob) else
            "workflow" if command.NAME.startswith("workflow-") else "command")
    target = str(getattr(command, "job_id", "") or getattr(command, "execution_id", "")
                 or getattr(command, "registration", "") or command.NAME)
    detail: dict[str, Any] = {"command": command.NAME, "code": str(refusal.code),
                              "reason": refusal.message}
    if refusal.details:
        detail["details"] = dict(refusal.details)
    return AuditEntry(tenant, _actor(command), f"{kind}.refused", target, detail)


def _actor(command: Command) -> str:
    for attribute in ("submitted_by", "applied_by", "created_by", "requested_by"):
        found = getattr(command, attribute, "")
        if isinstance(found, str) and found:
            return found
    return CONTROLLER_ACTOR


def _changed(value: Any) -> bool:
    """Whether a module's result says the command changed something (duck-typed: the modules
    are not imported, and may not be installed)."""
    return getattr(value, "ok", True) is not False and not getattr(value, "duplicate", False)


def _core_entries(command: Command, result: Applied) -> list[AuditEntry]:
    found: list[AuditEntry] = []
    if isinstance(command, SubmitJob):
        for job in result.jobs[:1]:
            found.append(AuditEntry(job.tenant, _actor(command), "job.submitted", job.id, {
                "namespace": job.namespace, "source": job.source_display,
                "destination": job.destination_display}))
        return found
    action = _AGENT_ACTIONS.get(type(command))
    if action is not None:
        agent_id = getattr(command, "agent_id", "")
        for agent in result.agents:
            if agent.id == agent_id:
                found.append(AuditEntry(agent.tenant, _actor(command), action, agent.id,
                                        {"namespace": agent.namespace,
                                         "state": str(agent.state)}))
    if isinstance(command, _JOB_COMMANDS):
        found.extend(_job_entry(command, job) for job in result.jobs)
    return found


def _job_entry(command: Command, job: JobRecord) -> AuditEntry:
    detail: dict[str, Any] = {"namespace": job.namespace, "attempt": job.attempt,
                              "command": command.NAME}
    if job.agent_id is not None:
        detail["agent"] = job.agent_id
    if job.state is JobState.COMPLETED:
        detail["bytes"] = job.bytes_transferred
    if job.error:
        detail["error"] = job.error
    if isinstance(command, CancelJob):
        detail["reason"] = command.reason
    return AuditEntry(job.tenant, _actor(command), _JOB_ACTIONS[job.state], job.id, detail)


def _tenant_entries(command: Command, value: Any) -> list[AuditEntry]:
    if not _changed(value):
        return []
    action = _TENANT_ACTIONS[command.NAME]
    tenants = [str(t) for t in getattr(value, "tenants", ())] or \
        [str(getattr(command, "tenant_id", CONTROLLER_CHAIN))]
    detail: dict[str, Any] = {}
    for attribute in ("file", "reason"):
        found = getattr(command, attribute, "")
        if found:
            detail[attribute] = found
    return [AuditEntry(t, _actor(command), action, t, detail) for t in tenants]


def _workflow_entries(command: Command, value: Any, state: ControllerState,
                      owners: Owners) -> list[AuditEntry]:
    if not _changed(value):
        return []
    name = command.NAME
    actor = _actor(command)
    if name == "workflow-submit-execution":
        tenant = str(getattr(command, "tenant", CONTROLLER_CHAIN))
        return [AuditEntry(tenant, actor, "workflow.submitted",
                           str(getattr(command, "execution_id", "")),
                           {"namespace": getattr(command, "namespace", None),
                            "workflow": getattr(command, "workflow", None)})]
    if name == "workflow-register":
        registration = str(getattr(command, "name", ""))
        tenant = str(getattr(command, "tenant", CONTROLLER_CHAIN))
        owners.registrations[registration] = tenant
        return [AuditEntry(tenant, actor, "workflow.registered", registration,
                           {"namespace": getattr(command, "namespace", None)})]
    if name == "workflow-unregister":
        registration = str(getattr(command, "name", ""))
        tenant = owners.registrations.pop(registration, CONTROLLER_CHAIN)
        return [AuditEntry(tenant, actor, "workflow.unregistered", registration)]
    if name == "workflow-trigger-fired":
        registration = str(getattr(command, "registration", ""))
        trigger = str(getattr(command, "trigger", ""))
        return [AuditEntry(owners.registrations.get(registration, CONTROLLER_CHAIN),
                           f"trigger {registration}/{trigger}", "workflow.triggered",
                           str(getattr(value, "execution_id", "")),
                           {"registration": registration, "trigger": trigger})]
    if name == "workflow-trigger-refused":
        registration = str(getattr(command, "registration", ""))
        trigger = str(getattr(command, "trigger", ""))
        return [AuditEntry(owners.registrations.get(registration, CONTROLLER_CHAIN),
                           f"trigger {registration}/{trigger}", "workflow.trigger-refused",
                           registration, {"trigger": trigger,
                                          "reason": str(getattr(command, "reason", ""))})]
    action = _WORKFLOW_CONTROLS.get(name)
    if action is None:
        return []  # the leader's own progress (decisions, step ends): the jobs are audited
    execution_id = str(getattr(command, "execution_id", ""))
    reason = getattr(command, "reason", None)
    detail = {"reason": reason} if reason is not None else {}
    return [AuditEntry(_execution_tenant(state, execution_id), actor, action, execution_id,
                       detail)]


def _execution_tenant(state: ControllerState, execution_id: str) -> str:
    workflows = state.modules.get("workflow")
    view = getattr(workflows, "view", None)
    found = view(execution_id) if callable(view) else None
    if isinstance(found, Mapping):
        return str(found.get("submitted_tenant") or CONTROLLER_CHAIN)
    return CONTROLLER_CHAIN


def _access_entries(command: Command, value: Any, owners: Owners) -> list[AuditEntry]:
    if not _changed(value):
        return []
    principal = str(getattr(command, "principal", "") or getattr(command, "name", ""))
    tenant = getattr(command, "tenant", None)
    if not isinstance(tenant, str) or not tenant or tenant == CONTROLLER_CHAIN:
        tenant = owners.principals.get(principal, CONTROLLER_CHAIN)
    if command.NAME == "access-create-principal":
        owners.principals[principal] = tenant
    elif command.NAME == "access-delete-principal":
        owners.principals.pop(principal, None)
    detail = {k: getattr(command, k) for k in _ACCESS_DETAIL if getattr(command, k, None)
              is not None}
    if getattr(command, "tenant", None) == CONTROLLER_CHAIN:
        detail["tenant"] = CONTROLLER_CHAIN
    action = "access." + command.NAME.removeprefix("access-")
    return [AuditEntry(tenant, _actor(command), action, principal, detail)]


def _sharing_entries(command: Command, value: Any) -> list[AuditEntry]:
    if not _changed(value):
        return []
    tenants = [str(t) for t in dict.fromkeys(getattr(value, "tenants", ()) or ())] or \
        [CONTROLLER_CHAIN]
    actor = ""
    for attribute in ("recorded_by", "revoked_by"):
        found = getattr(command, attribute, "")
        if isinstance(found, str) and found:
            actor = found
    action = _SHARING_ACTIONS.get(command.NAME)
    if action is None:
        return []
    detail = {k: getattr(command, k) for k in _SHARING_DETAIL
              if getattr(command, k, None) not in (None, "")}
    target = str(getattr(command, "agreement_id", ""))
    return [AuditEntry(t, actor or CONTROLLER_ACTOR, action, target, detail) for t in tenants]


__all__ = ["CONTROLLER_ACTOR", "CONTROLLER_CHAIN", "AuditEntry", "Owners", "entries", "refusal_entry"]
