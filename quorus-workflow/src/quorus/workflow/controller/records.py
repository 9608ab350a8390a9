"""The records the workflow state module keeps: a live execution (its inputs, the
:class:`~quorus.workflow.execution.Execution` rebuilt from them and every event applied since),
a registration with its triggers' bookkeeping, and the result of applying a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quorus.core.controller.codec import to_plain
from quorus.core.controller.commands import Command
from quorus.workflow.binding import Binder
from quorus.workflow.controller.commands import RegisterWorkflow, SubmitExecution
from quorus.workflow.execution import Execution
from quorus.workflow.model import WorkflowDefinition
from quorus.workflow.planner import Plan
from quorus.workflow.summary import ActionOutcome, ExecutionSummary


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """What applying a workflow command returned: ``ok``, or why not (``message``);
    ``duplicate`` when it repeated one already applied (nothing changed)."""

    ok: bool
    execution_id: str = ""
    message: str = ""
    duplicate: bool = False


def refused(message: str, execution_id: str = "") -> WorkflowResult:
    return WorkflowResult(False, execution_id, message)


@dataclass(slots=True)
class LiveExecution:
    """An execution whose actions are not recorded yet. ``events`` are the commands applied to
    it after its submission, in log order: replaying them rebuilds ``execution`` exactly."""

    submission: SubmitExecution
    execution: Execution
    binder: Binder
    plan: Plan
    registration: str | None = None
    events: list[Command] = field(default_factory=list)
    actions: tuple[ActionOutcome, ...] | None = None

    @property
    def execution_id(self) -> str:
        return self.submission.execution_id

    @property
    def finished(self) -> bool:
        return self.execution.status.finished

    @property
    def done(self) -> bool:
        """Finished, and its actions recorded: nothing is left for the leader to do."""
        return self.finished and self.actions is not None

    def summary(self) -> ExecutionSummary:
        return self.execution.summary(self.actions or ())

    def view(self) -> dict[str, Any]:
        """The execution as the API shows it: the summary, the plan's levels and how it
        came to be."""
        data = self.summary().to_json()
        data["plan"] = self.plan.to_json()
        data["paused"] = self.execution.paused
        data["submitted_by"] = self.submission.submitted_by
        data["registration"] = self.registration
        data["submitted_tenant"] = self.submission.tenant
        data["submitted_namespace"] = self.submission.namespace
        data["actions_recorded"] = self.actions is not None
        return data


@dataclass(slots=True)
class TriggerState:
    """What the quorum remembers of one trigger: the last fire (its scheduled time), the flag
    file's signature at that fire, how many fires and the last execution started, and the
    fires that were refused."""

    last_fire: float | None = None
    signature: str | None = None
    fires: int = 0
    last_execution: str | None = None
    #: Fires the state refused (no data-sharing agreement in force...), the last one's
    #: reason and scheduled time.
    refusals: int = 0
    last_refusal: str | None = None
    last_refused_at: float | None = None

    def to_plain(self) -> dict[str, Any]:
        return {"last_fire": self.last_fire, "signature": self.signature, "fires": self.fires,
                "last_execution": self.last_execution, "refusals": self.refusals,
                "last_refusal": self.last_refusal, "last_refused_at": self.last_refused_at}

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> TriggerState:
        # Snapshots written before refusals were recorded have none.
        return cls(data["last_fire"], data["signature"], int(data["fires"]),
                   data["last_execution"], int(data.get("refusals", 0)),
                   data.get("last_refusal"), data.get("last_refused_at"))


@dataclass(slots=True)
class Registration:
    """A workflow the quorum starts by itself when one of its triggers fires."""

    command: RegisterWorkflow
    workflow: WorkflowDefinition
    triggers: dict[str, TriggerState]

    @property
    def name(self) -> str:
        return self.command.name

    def view(self) -> dict[str, Any]:
        from quorus.workflow.triggers import next_fire

        triggers = []
        for trigger in self.workflow.triggers:
            kept = self.triggers[trigger.name]
            since = kept.last_fire if kept.last_fire is not None else self.command.at
            triggers.append({
                "name": trigger.name, "type": trigger.type, "schedule": trigger.schedule,
                "timezone": trigger.timezone, "path": trigger.path, "action": trigger.action,
                "missed_fires": trigger.missed_fires, "enabled": trigger.enabled,
                "next_fire": next_fire(trigger, since)
                if trigger.type == "cron" and trigger.enabled else None,
                **kept.to_plain(),
            })
        return {"name": self.name, "workflow": self.workflow.name,
                "registered_at": self.command.at, "submitted_by": self.command.submitted_by,
                "tenant": self.command.tenant, "namespace": self.command.namespace,
                "files": sorted(self.command.files), "triggers": triggers,
                "reach": None if self.command.reach is None else to_plain(self.command.reach)}

    def same_submission(self, other: RegisterWorkflow) -> bool:
        """``other`` registers the same thing again (a client's retry)."""
        mine, theirs = to_plain(self.command), to_plain(other)
        mine.pop("at")
        theirs.pop("at")
        return bool(mine == theirs)


__all__ = ["LiveExecution", "Registration", "TriggerState", "WorkflowResult", "refused"]
