"""``WorkflowStateModule``: the replicated records of workflow executions and registrations,
a section of the controller's state machine (``workflow`` in its snapshot).

Applying a command is deterministic: a submission's files are parsed, validated, planned and
bound again on every controller from the command alone, and the leader's decisions, step ends,
pauses and cancels are applied to the same :class:`~quorus.workflow.execution.Execution`
there. A command that does not fit (an unknown execution, invalid files) changes nothing and
returns a refused :class:`WorkflowResult`; it never raises.

Memory is bounded: an execution whose actions are recorded is *done* and kept only as its
final view (summary and plan), and only the last :data:`MAX_DONE` done executions are kept;
older ones are forgotten, oldest first (a submission repeating a forgotten id starts anew).
The snapshot holds each live execution's submission and events, replayed on restore, and each
done one's view.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from quorus.core.controller.codec import from_plain, to_plain
from quorus.core.controller.commands import Command, MalformedCommandError
from quorus.core.controller.state import ControllerState
from quorus.workflow.controller.commands import (
    COMMAND_TYPES,
    AdvanceExecution,
    CancelExecution,
    PauseExecution,
    RecordActions,
    RegisterWorkflow,
    ResumeExecution,
    StepEnded,
    SubmitExecution,
    TriggerCleared,
    TriggerFired,
    TriggerRefused,
    UnregisterWorkflow,
    WorkflowReach,
    check_id,
    workflow_reach,
)
from quorus.workflow.controller.prepared import SubmissionError, prepare
from quorus.workflow.controller.records import (
    LiveExecution,
    Registration,
    TriggerState,
    WorkflowResult,
    refused,
)
from quorus.workflow.execution import Decision, Execution
from quorus.workflow.model import WorkflowDefinition
from quorus.workflow.summary import StepStatus
from quorus.workflow.triggers import fire_execution_id

#: Done executions kept for their status.
MAX_DONE = 1000
_BY_NAME: dict[str, type[Command]] = {t.NAME: t for t in COMMAND_TYPES}


class WorkflowStateModule:
    """The ``workflow`` section of the controller's state (see the module docstring)."""

    name = "workflow"
    command_types: Sequence[type[Command]] = COMMAND_TYPES

    def __init__(self, *, max_done: int = MAX_DONE) -> None:
        self.max_done = max_done
        self._live: dict[str, LiveExecution] = {}
        self._done: dict[str, dict[str, Any]] = {}
        self._registrations: dict[str, Registration] = {}

    # -- reading ------------------------------------------------------------------------------------

    def live(self) -> list[LiveExecution]:
        """Executions the leader still drives (not done), in submission order."""
        return list(self._live.values())

    def execution(self, execution_id: str) -> LiveExecution | None:
        return self._live.get(execution_id)

    def view(self, execution_id: str) -> dict[str, Any] | None:
        """The API's view of an execution, live or done; ``None`` if unknown."""
        live = self._live.get(execution_id)
        if live is not None:
            return live.view()
        done = self._done.get(execution_id)
        return dict(done) if done is not None else None

    def views(self) -> Iterator[dict[str, Any]]:
        """Every execution's view, newest first."""
        views = [r.view() for r in self._live.values()] + [dict(v) for v in self._done.values()]
        views.sort(key=lambda v: (v["started_at"] or 0.0, v["execution_id"]), reverse=True)
        return iter(views)

    def registrations(self) -> list[Registration]:
        return [self._registrations[n] for n in sorted(self._registrations)]

    def registration(self, name: str) -> Registration | None:
        return self._registrations.get(name)

    # -- applying -----------------------------------------------------------------------------------

    def apply(self, command: Command, index: int, state: ControllerState) -> WorkflowResult:
        if isinstance(command, SubmitExecution):
            return self._submit(command)
        if isinstance(command, RegisterWorkflow):
            return self._register(command)
        if isinstance(command, UnregisterWorkflow):
            if self._registrations.pop(command.name, None) is None:
                return refused(f"no registered workflow {command.name!r}")
            return WorkflowResult(True)
        if isinstance(command, TriggerFired | TriggerCleared | TriggerRefused):
            return self._trigger(command)
        execution_id = getattr(command, "execution_id", "")
        record = self._live.get(execution_id)
        if record is None:
            if execution_id in self._done:
                return refused(f"execution {execution_id!r} is done", execution_id)
            return refused(f"no execution {execution_id!r}", execution_id)
        result = self._event(record, command)
        if result.ok and not result.duplicate:
            record.events.append(command)
            if record.done:
                self._retire(record)
        return result

    def _submit(self, command: SubmitExecution, registration: str | None = None
                ) -> WorkflowResult:
        execution_id = command.execution_id
        if execution_id in self._live or execution_id in self._done:
            return WorkflowResult(True, execution_id, duplicate=True)
        if command.mode != "normal":
            return refused(f"mode {command.mode!r} does not run on the quorum: dry and virtual "
                           "runs are local (quorus workflow run --dry-run)", execution_id)
        try:
            prepared = prepare(command.files, workflow=command.workflow,
                               environment=command.environment, sets=command.sets,
                               bindings=command.bindings, execution_id=execution_id,
                               started_at=command.at)
        except SubmissionError as exc:
            return refused(exc.message, execution_id)
        mismatch = _reach_mismatch(command.reach, prepared.workflow)
        if mismatch:
            return refused(mismatch, execution_id)
        execution = Execution(execution_id, prepared.plan, prepared.binder.judge,
                              started_at=command.at, mode=command.mode)
        self._live[execution_id] = LiveExecution(command, execution, prepared.binder,
                                                 prepared.plan, registration)
        return WorkflowResult(True, execution_id)

    def _event(self, record: LiveExecution, command: Command) -> WorkflowResult:
        execution = record.execution
        execution_id = record.execution_id
        if isinstance(command, AdvanceExecution):
            decisions = [Decision.from_json(d) for d in command.decisions]
            problem = _decision_problem(record, decisions)
            if problem:
                return refused(problem, execution_id)
            for decision in decisions:
                execution.apply(decision, command.at,
                                job_id=command.job_ids.get(decision.target)
                                if decision.kind == "start" else None)
        elif isinstance(command, StepEnded):
            if command.step_id not in execution.outcomes:
                return refused(f"execution {execution_id!r} has no step {command.step_id!r}",
                               execution_id)
            execution.finish_step(command.step_id, StepStatus(command.status), command.at,
                                  bytes=command.bytes, sha256=command.sha256,
                                  attempts=command.attempts, error=command.error,
                                  source=command.source, destination=command.destination)
        elif isinstance(command, PauseExecution | ResumeExecution | CancelExecution):
            if record.finished:
                return refused(f"execution {execution_id!r} already ended "
                               f"({execution.status})", execution_id)
            if isinstance(command, PauseExecution):
                execution.pause()
            elif isinstance(command, ResumeExecution):
                execution.resume()
            else:
                execution.cancel(command.reason)
        elif isinstance(command, RecordActions):
            if not record.finished:
                return refused(f"execution {execution_id!r} has not ended", execution_id)
            if record.actions is not None:
                return WorkflowResult(True, execution_id, duplicate=True)
            record.actions = command.outcomes
        else:
            return refused(f"the workflow module does not apply {command.NAME}")
        return WorkflowResult(True, execution_id)

    def _retire(self, record: LiveExecution) -> None:
        del self._live[record.execution_id]
        self._done[record.execution_id] = record.view()
        while len(self._done) > self.max_done:
            del self._done[next(iter(self._done))]

    def _register(self, command: RegisterWorkflow) -> WorkflowResult:
        existing = self._registrations.get(command.name)
        if existing is not None and existing.same_submission(command):
            return WorkflowResult(True, duplicate=True)
        try:
            prepared = prepare(command.files, workflow=command.workflow,
                               environment=command.environment, sets=command.sets,
                               bindings=command.bindings, execution_id="", started_at=command.at,
                               needs_triggers=True)
        except SubmissionError as exc:
            return refused(exc.message)
        mismatch = _reach_mismatch(command.reach, prepared.workflow)
        if mismatch:
            return refused(mismatch)
        for trigger in prepared.workflow.triggers:
            try:
                check_id("execution id", fire_execution_id(command.name, trigger.name, 0.0))
            except ValueError:
                return refused(f"registration {command.name!r} with trigger {trigger.name!r} "
                               "makes execution ids too long: choose shorter names")
        triggers = {t.name: TriggerState() for t in prepared.workflow.triggers}
        self._registrations[command.name] = Registration(command, prepared.workflow, triggers)
        return WorkflowResult(True)

    def _trigger(self, command: TriggerFired | TriggerCleared | TriggerRefused
                 ) -> WorkflowResult:
        registration = self._registrations.get(command.registration)
        kept = registration.triggers.get(command.trigger) if registration else None
        if registration is None or kept is None:
            return refused(f"no trigger {command.trigger!r} of a registered workflow "
                           f"{command.registration!r}")
        if isinstance(command, TriggerCleared):
            kept.signature = None
            return WorkflowResult(True)
        if command.signature is not None:
            if command.signature == kept.signature:
                return WorkflowResult(True, kept.last_execution or "", duplicate=True)
        elif kept.last_fire is not None and command.scheduled_at <= kept.last_fire:
            return WorkflowResult(True, kept.last_execution or "", duplicate=True)
        if isinstance(command, TriggerRefused):
            # The fire is spent (not proposed again); the registration stays for later ones.
            kept.last_fire = command.scheduled_at
            kept.signature = command.signature
            kept.refusals += 1
            kept.last_refusal = command.reason
            kept.last_refused_at = command.scheduled_at
            return WorkflowResult(True)
        expected = registration.command.reach
        if expected is not None and command.reach != expected:
            return refused(f"the fire of {registration.name}/{command.trigger} does not carry "
                           "its registration's tenant reach")
        execution_id = fire_execution_id(registration.name, command.trigger,
                                         command.scheduled_at)
        source = registration.command
        submission = SubmitExecution(
            execution_id=execution_id, at=command.scheduled_at, files=source.files,
            workflow=source.workflow, environment=source.environment, sets=source.sets,
            bindings=source.bindings, submitted_by=f"trigger {registration.name}/"
            f"{command.trigger}", tenant=source.tenant, namespace=source.namespace,
            reach=source.reach)
        kept.last_fire = command.scheduled_at
        kept.signature = command.signature
        kept.fires += 1
        kept.last_execution = execution_id
        started = self._submit(submission, registration.name)
        return WorkflowResult(started.ok, execution_id, started.message)

    # -- snapshot -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "live": [{"submission": to_plain(r.submission), "registration": r.registration,
                      "events": [[e.NAME, to_plain(e)] for e in r.events],
                      "actions": None if r.actions is None else to_plain(r.actions)}
                     for r in self._live.values()],
            "done": [[i, v] for i, v in self._done.items()],
            "registrations": [{"command": to_plain(r.command),
                               "triggers": {n: t.to_plain() for n, t in r.triggers.items()}}
                              for r in self._registrations.values()],
        }

    def restore(self, data: Any) -> None:
        self._live, self._done, self._registrations = {}, {}, {}
        if data is None:
            return
        for item in data["registrations"]:
            command = from_plain(RegisterWorkflow, item["command"])
            self._register(command)
            registration = self._registrations[command.name]
            for name, kept in item["triggers"].items():
                registration.triggers[name] = TriggerState.from_plain(kept)
        for execution_id, view in data["done"]:
            self._done[execution_id] = view
        for item in data["live"]:
            submission = from_plain(SubmitExecution, item["submission"])
            result = self._submit(submission, item["registration"])
            if not result.ok:
                raise MalformedCommandError(f"snapshot execution {submission.execution_id!r} "
                                            f"cannot be rebuilt: {result.message}")
            record = self._live[submission.execution_id]
            for name, plain in item["events"]:
                event = from_plain(_BY_NAME[name], plain)
                self._event(record, event)
                record.events.append(event)
            if item["actions"] is not None:
                from quorus.workflow.summary import ActionOutcome

                record.actions = tuple(ActionOutcome.from_json(a) for a in item["actions"])


def _reach_mismatch(reach: WorkflowReach | None, workflow: WorkflowDefinition) -> str | None:
    """Why a command's declared reach is not its workflow's (``None``: it is, or the command
    declares none, as those logged before reaches existed)."""
    if reach is None or reach == workflow_reach(workflow):
        return None
    return (f"the command's tenant reach (owner {reach.owner}, tenants "
            f"{', '.join(reach.tenants)}) is not that of workflow {workflow.name!r}: propose "
            "it again from the workflow's files")


def _decision_problem(record: LiveExecution, decisions: list[Decision]) -> str | None:
    groups = {g.name for g in record.plan.workflow.groups}
    for decision in decisions:
        if decision.kind == "open":
            known = decision.target in groups
        elif decision.kind == "finish":
            known = decision.status in ("completed", "failed", "cancelled", "timeout")
        else:
            known = decision.target in record.execution.outcomes
        if not known:
            return (f"execution {record.execution_id!r}: decision {decision.to_json()} names "
                    "nothing it has")
    return None


__all__ = ["MAX_DONE", "WorkflowStateModule"]
