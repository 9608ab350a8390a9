"""Properties of the execution state machine over random workflows: random dependency graphs,
strategies, limits and conditions, random step outcomes and a random order of completions.
Whatever happens, every step ends once, nothing starts early or beyond a limit, and the
execution always finishes with the status its failures call for."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.execution import Decision, Execution
from quorus.workflow.model import (
    Endpoint,
    GroupDefinition,
    Origin,
    TransferStep,
    WorkflowDefinition,
)
from quorus.workflow.planner import plan
from quorus.workflow.summary import ExecutionStatus, StepStatus

ORIGIN = Origin("random.yaml", "spec")


@dataclass(frozen=True, slots=True)
class Scenario:
    workflow: WorkflowDefinition
    outcomes: dict[str, StepStatus]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    group_count = draw(st.integers(1, 4))
    groups: list[GroupDefinition] = []
    outcomes: dict[str, StepStatus] = {}
    for g in range(group_count):
        name = f"g{g}"
        size = draw(st.integers(1, 5))
        transfers: list[TransferStep] = []
        for i in range(size):
            earlier = [f"t{g}_{j}" for j in range(i)]
            deps = tuple(draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2))
                         if earlier else [])
            condition = None
            if deps and draw(st.booleans()):
                condition = draw(st.sampled_from([
                    " && ".join(f"${{{d}.success}}" for d in deps),
                    f"!${{{deps[0]}.success}}",
                    f'${{{deps[0]}.bytes}} > "x"',  # a type error: the step fails
                ]))
            step = TransferStep(
                name=f"t{g}_{i}", group=name, source=Endpoint(f"/s/{g}/{i}", True),
                destination=Endpoint(f"/d/{g}/{i}", True), origin=ORIGIN, depends_on=deps,
                condition=condition)
            transfers.append(step)
            outcomes[step.step_id] = draw(st.sampled_from(
                [StepStatus.COMPLETED, StepStatus.COMPLETED, StepStatus.FAILED]))
        earlier_groups = [f"g{j}" for j in range(g)]
        group_deps = tuple(draw(st.lists(st.sampled_from(earlier_groups), unique=True,
                                         max_size=2)) if earlier_groups else [])
        group_condition = None
        if group_deps and draw(st.integers(0, 2)) == 0:
            group_condition = draw(st.sampled_from([
                f"${{{group_deps[0]}.success}} || true",
                f"${{{group_deps[0]}.success}}",
                '"a" / 2',  # cannot be evaluated: the group's steps fail
            ]))
        strategy = draw(st.sampled_from(["sequential", "parallel", "mixed"]))
        groups.append(GroupDefinition(
            name=name, transfers=tuple(transfers), origin=ORIGIN, depends_on=group_deps,
            condition=group_condition, strategy=strategy,
            max_concurrency=draw(st.integers(1, 3)),
            continue_on_error=draw(st.booleans())))
    parallelism = draw(st.none() | st.integers(1, 4))
    workflow = WorkflowDefinition(name="random", kind="TransferWorkflow", groups=tuple(groups),
                                  origin=ORIGIN, parallelism=parallelism)
    return Scenario(workflow, outcomes)


def _ended_group(execution: Execution, group: GroupDefinition) -> bool:
    return all(execution.outcomes[s.step_id].status.finished for s in group.transfers)


def _check_start(execution: Execution, step_id: str, groups: dict[str, GroupDefinition]) -> None:
    planned = execution.plan.by_id()[step_id]
    group = groups[planned.group]
    for dep in planned.step.depends_on:
        assert execution.outcomes[f"{group.name}/{dep}"].status.finished, (step_id, dep)
    for dep_group in group.depends_on:
        assert _ended_group(execution, groups[dep_group]), (step_id, dep_group)


def _check_limits(execution: Execution, workflow: WorkflowDefinition) -> None:
    running = execution.running
    if workflow.parallelism is not None:
        assert len(running) <= workflow.parallelism
    for group in workflow.groups:
        limit = 1 if group.strategy == "sequential" else group.max_concurrency
        in_group = [s for s in running if s.startswith(f"{group.name}/")]
        assert len(in_group) <= limit, (group.name, in_group)


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_random_executions_keep_every_invariant(scenario: Scenario, data: st.DataObject) -> None:
    workflow = scenario.workflow
    groups = {g.name: g for g in workflow.groups}
    binder = Binder(workflow, RunContext(started_at=0.0))
    execution = Execution("prop", plan(workflow), binder.judge, started_at=0.0)
    ends: dict[str, int] = {s.step_id: 0 for s in workflow.steps}
    now = 0.0
    for _ in range(10_000):
        decisions = execution.decide(now)
        for decision in decisions:
            _apply(execution, decision, now, ends, groups)
            _check_limits(execution, workflow)
        if decisions:
            continue
        running = sorted(execution.running)
        if not running:
            assert execution.status.finished, "nothing runs, nothing to decide, not finished"
            break
        now += 1.0
        chosen = data.draw(st.sampled_from(running))
        execution.finish_step(chosen, scenario.outcomes[chosen], now)
        ends[chosen] += 1
    else:
        raise AssertionError("the execution did not finish")

    assert all(count == 1 for count in ends.values()), ends
    assert all(o.status.finished for o in execution.outcomes.values())
    broken = [s.step_id for g in workflow.groups if not g.continue_on_error
              for s in g.transfers
              if execution.outcomes[s.step_id].status in (StepStatus.FAILED,
                                                           StepStatus.CANCELLED)]
    expected = ExecutionStatus.FAILED if broken else ExecutionStatus.COMPLETED
    assert execution.status is expected, (broken, execution.error)
    assert execution.decide(now + 1) == []


def _apply(execution: Execution, decision: Decision, now: float, ends: dict[str, int],
           groups: dict[str, GroupDefinition]) -> None:
    if decision.kind in ("start", "skip", "fail"):
        assert execution.outcomes[decision.target].status is StepStatus.PENDING, decision
    if decision.kind == "start":
        _check_start(execution, decision.target, groups)
    execution.apply(decision, now)
    if decision.kind in ("skip", "fail"):
        ends[decision.target] += 1


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios(), cancel_after=st.integers(0, 12), pauses=st.lists(st.booleans(),
                                                                                 max_size=12),
       data=st.data())
def test_pause_and_cancel_at_any_point_end_every_step_once(
        scenario: Scenario, cancel_after: int, pauses: list[bool], data: st.DataObject) -> None:
    workflow = scenario.workflow
    groups = {g.name: g for g in workflow.groups}
    binder = Binder(workflow, RunContext(started_at=0.0))
    execution = Execution("prop", plan(workflow), binder.judge, started_at=0.0)
    ends: dict[str, int] = {s.step_id: 0 for s in workflow.steps}
    now, completions = 0.0, 0
    cancelled = False
    for _ in range(10_000):
        if completions >= cancel_after and not cancelled and not execution.status.finished:
            execution.cancel("stopped by the operator")
            cancelled = True
        decisions = execution.decide(now)
        for decision in decisions:
            if execution.paused:
                assert decision.kind != "start", decision
            _apply(execution, decision, now, ends, groups)
            _check_limits(execution, workflow)
        if decisions:
            continue
        running = sorted(execution.running)
        if not running:
            if execution.paused and not execution.status.finished:
                execution.resume()
                continue
            assert execution.status.finished
            break
        now += 1.0
        chosen = data.draw(st.sampled_from(running))
        status = scenario.outcomes[chosen]
        if chosen in execution.aborting:
            status = StepStatus.CANCELLED  # the runner stopped it
        execution.finish_step(chosen, status, now)
        ends[chosen] += 1
        completions += 1
        if completions - 1 < len(pauses):
            if pauses[completions - 1]:
                execution.pause()
            else:
                execution.resume()
    else:
        raise AssertionError("the execution did not finish")

    assert all(count == 1 for count in ends.values()), ends
    if cancelled:
        assert execution.status is ExecutionStatus.CANCELLED
        assert not any(o.status is StepStatus.PENDING for o in execution.outcomes.values())
