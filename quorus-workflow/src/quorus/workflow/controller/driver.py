"""The leader's workflow driver: the controller extension that turns ready steps into jobs,
job ends into step ends, trigger fires into executions, and runs the actions of executions
that ended.

Every round, for each live execution, the driver asks the replicated
:class:`~quorus.workflow.execution.Execution` what to do (``decide``) and records it FIRST
(``AdvanceExecution``, with each started step's deterministic job id), THEN submits the jobs
(idempotent by id) and cancels the jobs of aborted steps. A job of a running step that ended
becomes ``StepEnded``. After a failover the new leader rebuilds all of this from replicated
state: a step recorded as running whose job does not exist (the old leader died between the
two writes) is submitted under the same id; one whose job ended is recorded as ended. So no
step runs twice and none is lost.

A trigger fire carries its registration's tenant reach and is checked again when applied: one
the state refuses (say, the data-sharing agreement it needs was revoked or has expired since
the workflow was registered) is recorded as refused (``TriggerRefused``, with the reason, shown
on the registration and in the audit trail); the registration stays and its later fires are
checked anew.

An execution that ended has its ``onSuccess``/``onFailure`` actions run here, on the leader,
and then recorded (``RecordActions``). Actions run at least once: a leader that dies after
running them but before recording them leaves them to the next leader, which runs them again.

Rounds run when a command this controller proposed is applied (a job moved) and at least every
``round_interval`` seconds; flag files are looked at every ``file_check_interval`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import anyio
from quorus.core.controller.commands import Command
from quorus.core.controller.service import CommandRefused, LeaderElsewhere, Unavailable
from quorus.core.errors import QuorusError
from quorus.workflow.actions import ActionContext, ActionSettings, WorkflowAction
from quorus.workflow.afterrun import run_after
from quorus.workflow.controller.commands import (
    AdvanceExecution,
    RecordActions,
    StepEnded,
    TriggerCleared,
    TriggerFired,
    TriggerRefused,
)
from quorus.workflow.controller.jobs import JobSpec, job_spec, step_ended
from quorus.workflow.controller.records import LiveExecution, Registration
from quorus.workflow.controller.state import WorkflowStateModule
from quorus.workflow.execution import Decision
from quorus.workflow.summary import ActionOutcome
from quorus.workflow.triggers import due_fires, file_fires, file_signature, next_fire

if TYPE_CHECKING:
    from quorus.core.controller.extension import Leadership
    from quorus.core.controller.service import ControllerService

log = logging.getLogger(__name__)

#: Rounds of decide-and-record for one execution in one pass (a cascade of skips ends sooner).
MAX_CASCADE = 100


class WorkflowExtension:
    """The workflow package's controller extension: REST routes under ``/v1/workflows`` and
    the leader's driver (see the module docstring). ``actions`` are the post-execution
    actions by name (default: the built-in ones and those of installed plugins); ``clock``
    gives the time commands carry and triggers are evaluated at."""

    name = "workflow"

    def __init__(self, *, actions: Mapping[str, WorkflowAction] | None = None,
                 action_context: ActionContext | None = None,
                 clock: Callable[[], float] = time.time, round_interval: float = 0.2,
                 file_check_interval: float = 0.5) -> None:
        self.actions = actions
        self.action_context = action_context
        self.clock = clock
        self.round_interval = round_interval
        self.file_check_interval = file_check_interval

    def routes(self, service: ControllerService) -> Any:
        from quorus.workflow.controller.routes import workflow_router

        return workflow_router(service, clock=self.clock)

    async def lead(self, leadership: Leadership) -> None:
        actions = self.actions
        if actions is None:
            from quorus.workflow.plugin import installed_actions

            actions = cast(Mapping[str, WorkflowAction], installed_actions())
        context = self.action_context
        if context is None:
            # Notify and email settings come from the controller's environment
            # (QUORUS_SLACK_WEBHOOK, QUORUS_SMTP_*), as they do for a local run.
            context = ActionContext(settings=ActionSettings.from_env(dict(os.environ)))
        await LeaderDriver(leadership, actions, context,
                           clock=self.clock, round_interval=self.round_interval,
                           file_check_interval=self.file_check_interval).run()


class LeaderDriver:
    """One leadership term of the driver."""

    def __init__(self, leadership: Leadership, actions: Mapping[str, WorkflowAction],
                 action_context: ActionContext, *, clock: Callable[[], float],
                 round_interval: float, file_check_interval: float) -> None:
        self.leadership = leadership
        self.service = leadership.service
        #: The flag-file signature seen at the previous check, per (registration, trigger).
        self._last_look: dict[tuple[str, str], str | None] = {}
        self.actions = actions
        self.action_context = action_context
        self.clock = clock
        self.round_interval = round_interval
        self.file_check_interval = file_check_interval
        self._next_file_check = -math.inf

    @property
    def module(self) -> WorkflowStateModule:
        module = self.service.state.modules.get(WorkflowStateModule.name)
        if not isinstance(module, WorkflowStateModule):
            raise RuntimeError("this controller's state has no workflow module: the "
                               "quorus-workflow plugin must be installed on every controller")
        return module

    async def run(self) -> None:
        while True:
            change = self.leadership.next_change()
            try:
                await self.round()
            except (LeaderElsewhere, Unavailable) as exc:
                log.info("workflow driver paused: %s", exc)
            with anyio.move_on_after(self._wait()):
                await change.wait()

    def _wait(self) -> float:
        now = self.clock()
        wake = now + self.round_interval
        for record in self.module.live():
            deadline = record.execution.next_deadline()
            if deadline is not None:
                wake = min(wake, deadline)
        for registration in self.module.registrations():
            for trigger in registration.workflow.triggers:
                if trigger.type == "cron" and trigger.enabled:
                    kept = registration.triggers[trigger.name]
                    since = kept.last_fire if kept.last_fire is not None else \
                        registration.command.at
                    wake = min(wake, max(next_fire(trigger, since), now))
        # A little past the deadline, so the clock has reached it when the round runs.
        return max(0.0, wake - now) + 0.001

    async def round(self) -> None:
        """Carry every live execution forward and fire due triggers."""
        await self._triggers()
        for record in self.module.live():
            await self._drive(record)

    async def _propose(self, command: Command) -> Any:
        applied = await self.leadership.propose(command)
        return applied.value

    # -- executions ---------------------------------------------------------------------------------

    async def _drive(self, record: LiveExecution) -> None:
        execution = record.execution
        for step_id in execution.running:
            await self._reconcile(record, step_id)
        for _ in range(MAX_CASCADE):
            decisions = execution.decide(self.clock())
            if not decisions:
                break
            await self._carry_out(record, decisions)
        if record.finished and record.actions is None:
            outcomes = await self._run_actions(record)
            await self._propose(RecordActions(record.execution_id, self.clock(), outcomes))

    async def _reconcile(self, record: LiveExecution, step_id: str) -> None:
        """Bring a running step in line with its job: submit it when missing, record its end,
        cancel it when the step is being aborted."""
        outcome = record.execution.outcomes[step_id]
        if outcome.job_id is None:
            return
        job = self.service.state.job(outcome.job_id)
        aborting = record.execution.aborting.get(step_id)
        if job is None and aborting is not None:  # never submitted, and no longer wanted
            await self._propose(StepEnded(record.execution_id, step_id, self.clock(),
                                          "cancelled", error=aborting))
            return
        if job is None:
            try:
                spec = job_spec(record.execution, record.plan, record.binder, step_id)
            except QuorusError as exc:
                await self._propose(StepEnded(record.execution_id, step_id, self.clock(),
                                              "failed", error=_message(exc)))
                return
            await self._submit(record, step_id, replace(spec, job_id=outcome.job_id))
            return
        ended = step_ended(record.execution_id, step_id, job, self.clock())
        if ended is not None:
            await self._propose(ended)
        elif aborting is not None:
            await self._cancel(outcome.job_id, aborting)

    async def _carry_out(self, record: LiveExecution, decisions: list[Decision]) -> None:
        specs: dict[str, JobSpec] = {}
        carried: list[Decision] = []
        for decision in decisions:
            if decision.kind == "start":
                try:
                    specs[decision.target] = job_spec(record.execution, record.plan,
                                                      record.binder, decision.target)
                except QuorusError as exc:
                    carried.append(Decision("fail", decision.target, _message(exc)))
                    continue
            carried.append(decision)
        # Recorded before any job exists: a job never runs for a start the log lacks.
        await self._propose(AdvanceExecution(
            record.execution_id, self.clock(),
            tuple((d.kind, d.target, d.reason, d.status) for d in carried),
            {step: spec.job_id for step, spec in specs.items()}))
        for step_id, spec in specs.items():
            await self._submit(record, step_id, spec)
        for decision in carried:
            if decision.kind == "abort":
                job_id = record.execution.outcomes[decision.target].job_id
                if job_id is not None:
                    await self._cancel(job_id, decision.reason)

    async def _submit(self, record: LiveExecution, step_id: str, spec: JobSpec) -> None:
        try:
            await self.service.submit_job(
                spec.source, spec.destination, job_id=spec.job_id, options=spec.options,
                priority=spec.priority, retry=spec.retry, submitted_by=spec.submitted_by,
                tenant=spec.tenant, namespace=spec.namespace)
        except (LeaderElsewhere, Unavailable):
            raise
        except QuorusError as exc:  # refused by the controller: the step cannot run
            await self._propose(StepEnded(record.execution_id, step_id, self.clock(), "failed",
                                          error=f"the job could not be submitted: {exc}"))

    async def _cancel(self, job_id: str, reason: str) -> None:
        job = self.service.state.job(job_id)
        if job is None or job.state.terminal:
            return
        try:
            await self.service.cancel_job(job_id, reason or "workflow step aborted")
        except CommandRefused as exc:
            log.debug("cancelling %s refused: %s", job_id, exc)

    # -- actions ------------------------------------------------------------------------------------

    async def _run_actions(self, record: LiveExecution) -> tuple[ActionOutcome, ...]:
        execution = record.execution
        summary = execution.summary()
        destinations = {}
        for step_id, outcome in execution.outcomes.items():
            job = self.service.state.job(outcome.job_id) if outcome.job_id else None
            if job is not None:
                destinations[step_id] = job.destination
        context = replace(self.action_context, destinations=destinations)
        return await run_after(execution, record.binder, summary, context, self.actions)

    # -- triggers -----------------------------------------------------------------------------------

    async def _triggers(self) -> None:
        now = self.clock()
        look_at_files = now >= self._next_file_check
        if look_at_files:
            self._next_file_check = now + self.file_check_interval
        for registration in self.module.registrations():
            for trigger in registration.workflow.triggers:
                if not trigger.enabled:
                    continue
                kept = registration.triggers[trigger.name]
                if trigger.type == "cron":
                    for scheduled in due_fires(trigger, kept.last_fire,
                                               registration.command.at, now):
                        await self._fire(registration, trigger.name, scheduled, now, None)
                elif look_at_files and trigger.path:
                    signature = await anyio.to_thread.run_sync(file_signature, trigger.path)
                    # A flag file still being written changes between two looks: it fires
                    # once it has held still for one check interval, not once per write.
                    key = (registration.name, trigger.name)
                    steady = self._last_look.get(key) == signature
                    self._last_look[key] = signature
                    if signature is None and kept.signature is not None:
                        await self._propose(TriggerCleared(registration.name, trigger.name,
                                                           now))
                    elif steady and file_fires(kept.signature, signature):
                        await self._fire(registration, trigger.name, now, now, signature)

    async def _fire(self, registration: Registration, trigger: str, scheduled: float,
                    now: float, signature: str | None) -> None:
        """Propose a fire; one the state refuses is recorded as refused, with the reason."""
        try:
            await self._propose(TriggerFired(registration.name, trigger, scheduled, now,
                                             signature=signature,
                                             reach=registration.command.reach))
        except CommandRefused as exc:
            log.warning("trigger %s/%s refused: %s", registration.name, trigger, exc)
            await self._propose(TriggerRefused(registration.name, trigger, scheduled, now,
                                               str(exc), signature=signature))


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


__all__ = ["LeaderDriver", "WorkflowExtension"]
