"""The replicated commands of the workflow state module: executions submitted, advanced by the
leader's decisions, their steps ended, paused, resumed, cancelled and their actions recorded;
workflows registered with triggers, and trigger fires.

Each command is a frozen dataclass that carries everything applying it needs (times, ids, the
YAML text of the files), so every controller applying the same log reaches the same state.
They travel as msgpack through quorus-core's codec like the core's own commands.

A submission, a registration and a trigger fire carry the workflow's :class:`WorkflowReach`
(its owner, the tenants its groups run in, the data-sharing agreements it names, whether it
declares ``crossTenantAllowed`` and the roles of ``spec.tenants``) and declare it through
:meth:`~quorus.core.controller.commands.Command.tenant_reach`, so that a state module fencing
tenants (quorus-tenant's ``sharing``) can refuse one no agreement covers. Commands logged
before the reach existed carry none and are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from quorus.core.controller.commands import Command, TenantReach
from quorus.workflow.summary import ActionOutcome

if TYPE_CHECKING:
    from quorus.workflow.model import WorkflowDefinition

#: Execution ids and registration names: they become part of job ids and URL paths.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_ID = 128
_ID = re.compile(ID_PATTERN)
#: A value the submitting client bound for a reference (``${env:HOME}`` → ``/home/x``).
Scalar = bool | int | float | str | None
DECISION_KINDS = ("open", "start", "skip", "fail", "abort", "finish")
STEP_END_STATUSES = ("completed", "failed", "cancelled")


def check_id(kind: str, value: str) -> None:
    """Raise :class:`ValueError` naming ``kind`` when ``value`` cannot be an id."""
    if not value or len(value) > MAX_ID or not _ID.match(value):
        raise ValueError(f"invalid {kind} {value!r}: 1 to {MAX_ID} letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit")


#: A workflow's reach: core's :class:`~quorus.core.controller.commands.TenantReach`, with the
#: roles its ``spec.tenants`` gives.
WorkflowReach = TenantReach


def workflow_reach(workflow: WorkflowDefinition) -> WorkflowReach:
    """The reach of ``workflow``: owned by its ``metadata.tenant``, reaching its groups'
    tenants (each once, in group order)."""
    return WorkflowReach(
        owner=workflow.tenant, tenants=tuple(dict.fromkeys(g.tenant for g in workflow.groups)),
        agreements=workflow.agreements, declared=workflow.cross_tenant_allowed,
        roles=workflow.tenant_roles)


@dataclass(frozen=True, slots=True)
class SubmitExecution(Command):
    """A new execution of the workflow the YAML ``files`` (file name → text) define.
    ``workflow`` picks one when the files define several; ``bindings`` are the values the
    client bound (``${env:...}``, ``${file:...}``, context values) by reference text."""

    NAME: ClassVar[str] = "workflow-submit-execution"
    execution_id: str
    at: float
    files: Mapping[str, str]
    workflow: str | None = None
    environment: str | None = None
    sets: Mapping[str, str] = field(default_factory=dict)
    bindings: Mapping[str, Scalar] = field(default_factory=dict)
    mode: str = "normal"
    submitted_by: str = ""
    tenant: str = "default"
    namespace: str = "default"
    reach: WorkflowReach | None = None

    def __post_init__(self) -> None:
        check_id("execution id", self.execution_id)

    def tenant_reach(self) -> TenantReach | None:
        return self.reach


@dataclass(frozen=True, slots=True)
class AdvanceExecution(Command):
    """The leader carried out ``decisions`` (each :meth:`Decision.to_json`) in order; a
    ``start`` has its job's id in ``job_ids``."""

    NAME: ClassVar[str] = "workflow-advance-execution"
    execution_id: str
    at: float
    decisions: tuple[tuple[str, str, str, str], ...]
    job_ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, *_ in self.decisions:
            if kind not in DECISION_KINDS:
                raise ValueError(f"unknown decision {kind!r}: one of {', '.join(DECISION_KINDS)}")


@dataclass(frozen=True, slots=True)
class StepEnded(Command):
    """The job of a running step ended (``status``: completed, failed or cancelled)."""

    NAME: ClassVar[str] = "workflow-step-ended"
    execution_id: str
    step_id: str
    at: float
    status: str
    bytes: int = 0
    sha256: str | None = None
    attempts: int = 0
    error: str | None = None
    source: str = ""
    destination: str = ""

    def __post_init__(self) -> None:
        if self.status not in STEP_END_STATUSES:
            raise ValueError(f"a step ends {', '.join(STEP_END_STATUSES)}, not {self.status!r}")


@dataclass(frozen=True, slots=True)
class PauseExecution(Command):
    """Hold new starts (running steps go on)."""

    NAME: ClassVar[str] = "workflow-pause-execution"
    execution_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ResumeExecution(Command):
    """Start steps again after a pause."""

    NAME: ClassVar[str] = "workflow-resume-execution"
    execution_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelExecution(Command):
    """Abort running steps and skip the rest."""

    NAME: ClassVar[str] = "workflow-cancel-execution"
    execution_id: str
    at: float
    reason: str = "cancelled on request"


@dataclass(frozen=True, slots=True)
class RecordActions(Command):
    """The ``onSuccess``/``onFailure`` actions the leader ran after the execution ended."""

    NAME: ClassVar[str] = "workflow-record-actions"
    execution_id: str
    at: float
    outcomes: tuple[ActionOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterWorkflow(Command):
    """Keep a workflow whose triggers the quorum fires by itself, under ``name`` (a new
    registration under the same name replaces the old one and its trigger bookkeeping)."""

    NAME: ClassVar[str] = "workflow-register"
    name: str
    at: float
    files: Mapping[str, str]
    workflow: str | None = None
    environment: str | None = None
    sets: Mapping[str, str] = field(default_factory=dict)
    bindings: Mapping[str, Scalar] = field(default_factory=dict)
    submitted_by: str = ""
    tenant: str = "default"
    namespace: str = "default"
    reach: WorkflowReach | None = None

    def __post_init__(self) -> None:
        check_id("registration name", self.name)

    def tenant_reach(self) -> TenantReach | None:
        return self.reach


@dataclass(frozen=True, slots=True)
class UnregisterWorkflow(Command):
    """Forget a registration; executions it started stay."""

    NAME: ClassVar[str] = "workflow-unregister"
    name: str
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class TriggerFired(Command):
    """Trigger ``trigger`` of registration ``registration`` fired for ``scheduled_at`` (a
    cron time, or when a flag file was seen with ``signature``): an execution starts whose id
    derives from these, so the same fire proposed twice starts one execution."""

    NAME: ClassVar[str] = "workflow-trigger-fired"
    registration: str
    trigger: str
    scheduled_at: float
    at: float
    signature: str | None = None
    #: The registration's reach, checked again at the fire (an agreement may have been
    #: revoked or expired since it was registered).
    reach: WorkflowReach | None = None

    def tenant_reach(self) -> TenantReach | None:
        return self.reach


@dataclass(frozen=True, slots=True)
class TriggerRefused(Command):
    """A fire of trigger ``trigger`` was refused (``reason``: what the state answered, e.g.
    no data-sharing agreement in force): the fire is recorded as refused, so it is not
    proposed again, and the registration stays; later fires are checked anew."""

    NAME: ClassVar[str] = "workflow-trigger-refused"
    registration: str
    trigger: str
    scheduled_at: float
    at: float
    reason: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerCleared(Command):
    """The flag file of a ``fileSystem`` trigger is gone: its next appearance fires, even
    with the same signature."""

    NAME: ClassVar[str] = "workflow-trigger-cleared"
    registration: str
    trigger: str
    at: float


COMMAND_TYPES: tuple[type[Command], ...] = (
    SubmitExecution, AdvanceExecution, StepEnded, PauseExecution, ResumeExecution,
    CancelExecution, RecordActions, RegisterWorkflow, UnregisterWorkflow, TriggerFired,
    TriggerCleared, TriggerRefused,
)

__all__ = [
    "COMMAND_TYPES",
    "ID_PATTERN",
    "AdvanceExecution",
    "CancelExecution",
    "PauseExecution",
    "RecordActions",
    "RegisterWorkflow",
    "ResumeExecution",
    "Scalar",
    "StepEnded",
    "SubmitExecution",
    "TriggerCleared",
    "TriggerFired",
    "TriggerRefused",
    "UnregisterWorkflow",
    "WorkflowReach",
    "check_id",
    "workflow_reach",
]
