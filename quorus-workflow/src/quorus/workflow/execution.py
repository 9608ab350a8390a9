"""One execution of a plan as a state machine without I/O, shared by both runners.

:meth:`Execution.decide` looks at the recorded state and says what should happen next —
open a group, start, skip or fail a step, abort a running one (timeout, cancel), finish — and
changes nothing. The runner carries the decisions out and records them with
:meth:`Execution.apply` (the local runner at once; on the quorum the leader proposes them and
every controller applies them from the log), then records each step's end with
:meth:`Execution.finish_step`. Deciding again after recording continues the cascade (a skipped
step's dependents, a group that opens). Times come from the caller, so the same records give
the same state everywhere.

Rules: a step waits for the steps it depends on, and for every step of the groups its group
depends on. A group opens when those groups have finished; its ``condition``, or else the
success of those groups, decides whether it runs. A step whose dependencies did not all
complete is skipped unless it has a ``condition``, which then decides (that is what
``${x.success}`` conditions are for). A failure stops the rest of its group unless the group
has ``continueOnError``, and fails the execution. Timeouts (step, group, workflow) abort what
runs and skip what waits. Pause holds new starts; cancel aborts and skips everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from quorus.workflow.expr import ExpressionError
from quorus.workflow.model import GroupDefinition, TransferStep
from quorus.workflow.planner import Plan, PlannedStep
from quorus.workflow.summary import ExecutionStatus, ExecutionSummary, StepOutcome, StepStatus

#: Judges a condition: ``(execution, condition, group, step or None)`` → (value, detail).
#: Raises :class:`ExpressionError` when the condition cannot be evaluated.
Judge = Callable[["Execution", str, GroupDefinition, TransferStep | None], tuple[bool, str]]


@dataclass(frozen=True, slots=True)
class Decision:
    """What should happen next. ``kind`` is one of ``open`` (a group), ``start``, ``skip``,
    ``fail``, ``abort`` (a step) or ``finish`` (the execution, with ``status``)."""

    kind: str
    target: str = ""
    reason: str = ""
    status: str = ""

    def to_json(self) -> list[str]:
        return [self.kind, self.target, self.reason, self.status]

    @classmethod
    def from_json(cls, data: Iterable[str]) -> Decision:
        kind, target, reason, status = data
        return cls(kind, target, reason, status)


class _Group:
    __slots__ = ("definition", "deps_left", "eligible", "failed", "left", "open",
                 "running", "skipped", "started_at")

    def __init__(self, definition: GroupDefinition, deps: int) -> None:
        self.definition = definition
        self.deps_left = deps
        self.left = len(definition.transfers)
        self.open = False
        self.skipped = False
        self.failed: str | None = None
        self.started_at: float | None = None
        self.running = 0
        self.eligible: list[int] = []

    @property
    def finished(self) -> bool:
        return self.left == 0

    @property
    def succeeded(self) -> bool:
        return self.finished and not self.failed and not self.skipped


class Execution:
    """The state of one execution of ``plan`` (see the module docstring)."""

    def __init__(self, execution_id: str, plan: Plan, judge: Judge, *, started_at: float,
                 mode: str = "normal") -> None:
        self.execution_id = execution_id
        self.plan = plan
        self.workflow = plan.workflow
        self.judge = judge
        self.mode = mode
        self.started_at = started_at
        self.finished_at: float | None = None
        self.status = ExecutionStatus.RUNNING
        self.error: str | None = None
        self.paused = False
        self.cancel_reason: str | None = None
        self.timeout_reason: str | None = None
        self._planned = {p.step_id: p for p in plan.steps}
        self.outcomes: dict[str, StepOutcome] = {
            p.step_id: StepOutcome(p.step_id, StepStatus.PENDING) for p in plan.steps}
        self.aborting: dict[str, str] = {}
        self._deps_left = {p.step_id: len(p.after) for p in plan.steps}
        self._dependents: dict[str, list[str]] = {p.step_id: [] for p in plan.steps}
        for p in plan.steps:
            for d in p.after:
                self._dependents[d].append(p.step_id)
        self._groups = {g.name: _Group(g, len(plan.group_after[g.name]))
                        for g in self.workflow.groups}
        self._group_dependents: dict[str, list[str]] = {g: [] for g in self._groups}
        for g, deps in plan.group_after.items():
            for d in deps:
                self._group_dependents[d].append(g)
        self._running = 0
        self._unfinished = len(plan.steps)

    # -- queries ------------------------------------------------------------------------------

    @property
    def running(self) -> list[str]:
        return [s for s, o in self.outcomes.items() if o.status is StepStatus.RUNNING]

    def group_succeeded(self, name: str) -> bool | None:
        """Whether a group finished without failures or skips; ``None`` while it runs."""
        group = self._groups[name]
        return group.succeeded if group.finished else None

    def next_deadline(self) -> float | None:
        """The earliest time a timeout may fire, for a runner to wake up at. A timeout that
        has fired already is left out: a runner waiting for it would wake at once, forever."""
        deadlines: list[float] = []
        if self.workflow.timeout is not None and self.timeout_reason is None \
                and self.cancel_reason is None:
            deadlines.append(self.started_at + self.workflow.timeout)
        for group in self._groups.values():
            if group.definition.timeout is not None and group.started_at is not None \
                    and any(self._may_time_out(s.step_id) for s in group.definition.transfers):
                deadlines.append(group.started_at + group.definition.timeout)
        for step_id in self.running:
            step = self._planned[step_id].step
            started = self.outcomes[step_id].started_at
            if step.timeout is not None and started is not None and step_id not in self.aborting:
                deadlines.append(started + step.timeout)
        return min(deadlines, default=None)

    def _may_time_out(self, step_id: str) -> bool:
        status = self.outcomes[step_id].status
        return status is StepStatus.PENDING or (
            status is StepStatus.RUNNING and step_id not in self.aborting)

    # -- deciding ---------------------------------------------------------------------------

    def decide(self, now: float) -> list[Decision]:
        """What should happen next, given the recorded state at time ``now`` (changes
        nothing but internal ordering caches)."""
        if self.status.finished:
            return []
        decisions = self._stops(now)
        if decisions:
            return decisions
        if self.cancel_reason is not None or self.timeout_reason is not None:
            return self._finish_if_done()
        for name in self.plan.group_order:
            group = self._groups[name]
            if not group.open and not group.skipped and group.deps_left == 0:
                decisions.extend(self._open(group))
        if decisions:
            return decisions
        capacity = self._capacity()
        for name in self.plan.group_order:
            group = self._groups[name]
            if group.open and group.eligible:
                started = sum(1 for d in decisions if d.kind == "start")
                decisions.extend(self._steps(group, capacity, started))
        return decisions or self._finish_if_done()

    def _stops(self, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        reason = self.cancel_reason or self.timeout_reason
        if reason is None and self.workflow.timeout is not None \
                and now >= self.started_at + self.workflow.timeout:
            reason = f"workflow timed out after {self.workflow.timeout:g} s"
            decisions.append(Decision("finish", reason=reason, status="timeout"))
        if reason is not None:
            status = "cancelled" if self.cancel_reason is not None else "skipped"
            for step_id, outcome in self.outcomes.items():
                if outcome.status is StepStatus.RUNNING and step_id not in self.aborting:
                    decisions.append(Decision("abort", step_id, reason))
                elif outcome.status is StepStatus.PENDING:
                    decisions.append(Decision("skip", step_id, reason, status))
            return decisions
        for group in self._groups.values():
            limit = group.definition.timeout
            if limit is None or group.started_at is None or group.finished \
                    or now < group.started_at + limit:
                continue
            why = f"group {group.definition.name!r} timed out after {limit:g} s"
            for step in group.definition.transfers:
                outcome = self.outcomes[step.step_id]
                if outcome.status is StepStatus.RUNNING and step.step_id not in self.aborting:
                    decisions.append(Decision("abort", step.step_id, why))
                elif outcome.status is StepStatus.PENDING:
                    decisions.append(Decision("fail", step.step_id, why))
        for step_id in self.running:
            step = self._planned[step_id].step
            started = self.outcomes[step_id].started_at
            if step.timeout is not None and started is not None and step_id not in \
                    self.aborting and now >= started + step.timeout:
                decisions.append(Decision("abort", step_id, f"timed out after {step.timeout:g} s"))
        return decisions

    def _open(self, group: _Group) -> list[Decision]:
        definition = group.definition
        deps = self.plan.group_after[definition.name]
        unmet = [d for d in deps if not self._groups[d].succeeded]
        reason: str | None = None
        if definition.condition:
            try:
                value, detail = self.judge(self, definition.condition, definition, None)
            except ExpressionError as exc:
                why = f"condition of group {definition.name!r} failed: {exc.message}"
                # The group is settled too, or every decide() would judge it again.
                return [Decision("fail", s.step_id, why) for s in definition.transfers] + [
                    Decision("open", definition.name, why, "failed")]
            if not value:
                reason = f"condition {definition.condition} was false{_detail(detail)}"
        elif unmet:
            reason = f"group {unmet[0]!r} did not complete"
        if reason is not None:
            return [Decision("skip", s.step_id, reason, "skipped")
                    for s in definition.transfers] + [Decision("open", definition.name,
                                                               reason, "skipped")]
        return [Decision("open", definition.name)]

    def _capacity(self) -> int:
        if self.paused:
            return 0
        limit = self.workflow.parallelism
        return max(0, limit - self._running) if limit is not None else 1 << 30

    def _steps(self, group: _Group, capacity: int, taken: int) -> list[Decision]:
        definition = group.definition
        decisions: list[Decision] = []
        room = definition.max_concurrency - group.running
        if definition.strategy == "sequential":
            room = min(room, 1)
        barrier = self._level_barrier(group) if definition.strategy == "mixed" else None
        held: list[int] = []
        starts = 0
        while group.eligible:
            index = group.eligible[0]
            planned = self.plan.steps[index]
            if self.outcomes[planned.step_id].status is not StepStatus.PENDING:
                heapq.heappop(group.eligible)  # started or ended since: dropped lazily
                continue
            verdict = self._verdict(group, planned)
            if verdict is None:
                if starts >= room or taken + starts >= capacity:
                    break
                if barrier is not None and planned.level > barrier:
                    # Plan order is not level order: a step of the current level may come
                    # after this one, so hold this one and look further.
                    held.append(heapq.heappop(group.eligible))
                    continue
                decisions.append(Decision("start", planned.step_id))
                starts += 1
            else:
                decisions.append(verdict)
            held.append(heapq.heappop(group.eligible))
        for index in held:
            heapq.heappush(group.eligible, index)
        return decisions

    def _level_barrier(self, group: _Group) -> int | None:
        pending = [self._planned[s.step_id].level for s in group.definition.transfers
                   if not self.outcomes[s.step_id].status.finished]
        return min(pending, default=None)

    def _verdict(self, group: _Group, planned: PlannedStep) -> Decision | None:
        """Skip or fail instead of starting, or ``None`` to start."""
        step = planned.step
        if group.failed and not group.definition.continue_on_error:
            return Decision("skip", step.step_id, group.failed, "skipped")
        # Only declared dependencies: the order a sequential group adds passes no verdict.
        unmet = [f"{group.definition.name}/{d}" for d in step.depends_on
                 if not self.outcomes[f"{group.definition.name}/{d}"].success]
        if step.condition:
            try:
                value, detail = self.judge(self, step.condition, group.definition, step)
            except ExpressionError as exc:
                return Decision("fail", step.step_id, f"condition failed: {exc.message}")
            if not value:
                return Decision("skip", step.step_id,
                                f"condition {step.condition} was false{_detail(detail)}",
                                "skipped")
        elif unmet:
            dep = self.outcomes[unmet[0]]
            return Decision("skip", step.step_id,
                            f"{unmet[0].split('/', 1)[1]!r} did not complete ({dep.status})",
                            "skipped")
        return None

    def _finish_if_done(self) -> list[Decision]:
        if self._unfinished or self._running:
            return []
        if self.cancel_reason is not None:
            return [Decision("finish", reason=self.cancel_reason, status="cancelled")]
        if self.timeout_reason is not None:
            return [Decision("finish", reason=self.timeout_reason, status="failed")]
        failed = [g.failed for g in self._groups.values()
                  if g.failed and not g.definition.continue_on_error]
        if failed:
            return [Decision("finish", reason=str(failed[0]), status="failed")]
        return [Decision("finish", status="completed")]

    # -- recording ------------------------------------------------------------------------------

    def apply(self, decision: Decision, at: float, *, job_id: str | None = None) -> None:
        """Record ``decision`` as carried out at ``at``."""
        kind = decision.kind
        if kind == "open":
            self._record_open(decision)
        elif kind == "start":
            self._record_start(decision.target, at, job_id)
        elif kind == "skip":
            status = StepStatus.CANCELLED if decision.status == "cancelled" else StepStatus.SKIPPED
            self._end(decision.target, StepStatus.PENDING, replace(
                self.outcomes[decision.target], status=status, reason=decision.reason,
                finished_at=at))
        elif kind == "fail":
            self._end(decision.target, StepStatus.PENDING, replace(
                self.outcomes[decision.target], status=StepStatus.FAILED,
                error=decision.reason, finished_at=at))
        elif kind == "abort":
            if self.outcomes[decision.target].status is StepStatus.RUNNING:
                self.aborting[decision.target] = decision.reason
        elif kind == "finish":
            if decision.status == "timeout":
                self.timeout_reason = decision.reason
                self.error = decision.reason
            else:
                self.status = ExecutionStatus(decision.status)
                self.error = decision.reason or None
                self.finished_at = at
        else:
            raise ValueError(f"unknown decision {kind!r}")

    def _record_open(self, decision: Decision) -> None:
        group = self._groups[decision.target]
        if decision.status in ("skipped", "failed"):  # settled without running any step
            group.skipped = True
            return
        group.open = True
        for step in group.definition.transfers:
            if self._deps_left[step.step_id] == 0 and \
                    self.outcomes[step.step_id].status is StepStatus.PENDING:
                heapq.heappush(group.eligible, self._planned[step.step_id].index)

    def _record_start(self, step_id: str, at: float, job_id: str | None) -> None:
        outcome = self.outcomes[step_id]
        if outcome.status is not StepStatus.PENDING:
            return
        group = self._groups[self._planned[step_id].group]
        self.outcomes[step_id] = replace(outcome, status=StepStatus.RUNNING, started_at=at,
                                         job_id=job_id)
        group.running += 1
        self._running += 1
        if group.started_at is None:
            group.started_at = at

    def finish_step(self, step_id: str, status: StepStatus, at: float, *, bytes: int = 0,
                    sha256: str | None = None, attempts: int = 0, error: str | None = None,
                    source: str = "", destination: str = "") -> None:
        """Record how a started step ended (a finished step's later reports are ignored)."""
        outcome = self.outcomes[step_id]
        if outcome.status is not StepStatus.RUNNING:
            return
        abort = self.aborting.pop(step_id, None)
        if abort is not None and status is not StepStatus.COMPLETED:
            if self.cancel_reason is not None and abort == self.cancel_reason:
                status, error = StepStatus.CANCELLED, None
            else:
                status, error = StepStatus.FAILED, abort
        started = outcome.started_at if outcome.started_at is not None else at
        self._end(step_id, StepStatus.RUNNING, replace(
            outcome, status=status, finished_at=at, duration=max(0.0, at - started),
            bytes=bytes, sha256=sha256, attempts=attempts, error=error,
            reason=abort if status is StepStatus.CANCELLED else outcome.reason,
            source=source or outcome.source, destination=destination or outcome.destination))

    def _end(self, step_id: str, expected: StepStatus, outcome: StepOutcome) -> None:
        if self.outcomes[step_id].status is not expected:
            return
        planned = self._planned[step_id]
        group = self._groups[planned.group]
        self.outcomes[step_id] = outcome
        if expected is StepStatus.RUNNING:
            group.running -= 1
            self._running -= 1
        self._unfinished -= 1
        if outcome.status in (StepStatus.FAILED, StepStatus.CANCELLED) and group.failed is None:
            what = outcome.error or outcome.reason or str(outcome.status)
            group.failed = f"step {planned.step.name!r} of group {group.definition.name!r} " \
                           f"{outcome.status}: {what}"
        for dependent in self._dependents[step_id]:
            self._deps_left[dependent] -= 1
            if self._deps_left[dependent] == 0 and group.open and \
                    self.outcomes[dependent].status is StepStatus.PENDING:
                heapq.heappush(group.eligible, self._planned[dependent].index)
        group.left -= 1
        if group.finished:
            for name in self._group_dependents[group.definition.name]:
                self._groups[name].deps_left -= 1

    def pause(self) -> None:
        if not self.status.finished:
            self.paused = True

    def resume(self) -> None:
        self.paused = False

    def cancel(self, reason: str) -> None:
        if not self.status.finished and self.cancel_reason is None:
            self.cancel_reason = reason

    # -- reporting ----------------------------------------------------------------------------

    @property
    def shown_status(self) -> ExecutionStatus:
        if self.status is ExecutionStatus.RUNNING and self.paused:
            return ExecutionStatus.PAUSED
        return self.status

    def summary(self, actions: Iterable[Any] = (), variables: Mapping[str, str] | None = None
                ) -> ExecutionSummary:
        return ExecutionSummary(
            execution_id=self.execution_id, workflow=self.workflow.name,
            status=self.shown_status, tenant=self.workflow.tenant,
            namespace=self.workflow.namespace, mode=self.mode, started_at=self.started_at,
            finished_at=self.finished_at,
            steps=tuple(self.outcomes[p.step_id] for p in self.plan.steps),
            actions=tuple(actions), error=self.error, variables=dict(variables or {}))


def _detail(detail: str) -> str:
    return f" ({detail})" if detail else ""


__all__ = ["Decision", "Execution", "Judge"]
