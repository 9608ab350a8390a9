"""The execution state machine driven by hand, with explicit times: what starts when under
each strategy and limit, how failures, conditions, timeouts, pause and cancel play out, and
what the summary records."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import load_text
from quorus.workflow.execution import Decision, Execution
from quorus.workflow.model import build_definitions
from quorus.workflow.planner import plan
from quorus.workflow.summary import ExecutionStatus, ExecutionSummary, StepStatus

T0 = 1_000.0


def transfer(name: str, *deps: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "source": {"path": f"/src/{name}"},
                            "destination": {"path": f"/dst/{name}"}}
    if deps:
        spec["dependsOn"] = list(deps)
    spec.update(extra)
    return spec


def group(name: str, *transfers: dict[str, Any], after: tuple[str, ...] = (),
          condition: str | None = None, **execution: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"transfers": list(transfers)}
    if execution:
        spec["execution"] = execution
    entry: dict[str, Any] = {"name": name, "transferGroup": {"spec": spec}}
    if after:
        entry["dependsOn"] = list(after)
    if condition is not None:
        entry["condition"] = condition
    return entry


def start(*groups: dict[str, Any], **execution: Any) -> Execution:
    spec: dict[str, Any] = {"groups": list(groups)}
    if execution:
        spec["execution"] = execution
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf"}, "spec": spec}, sort_keys=False)
    workflow = build_definitions(load_text(text, "wf.yaml")).select()
    binder = Binder(workflow, RunContext(started_at=T0))
    return Execution("ex-1", plan(workflow), binder.judge, started_at=T0)


def settle(execution: Execution, now: float) -> list[Decision]:
    """Decide and apply until nothing is left to decide, as a runner does."""
    done: list[Decision] = []
    while decisions := execution.decide(now):
        for decision in decisions:
            execution.apply(decision, now)
        done.extend(decisions)
    return done


def started(decisions: list[Decision]) -> list[str]:
    return [d.target for d in decisions if d.kind == "start"]


def status(execution: Execution, step: str) -> StepStatus:
    return execution.outcomes[step].status


def end(execution: Execution, step: str, now: float, ok: bool = True, **kw: Any) -> list[str]:
    execution.finish_step(step, StepStatus.COMPLETED if ok else StepStatus.FAILED, now, **kw)
    return started(settle(execution, now))


# -- strategies and limits ------------------------------------------------------------------


def test_parallel_group_starts_up_to_max_concurrency_in_plan_order() -> None:
    ex = start(group("A", *(transfer(n) for n in "abcde"), strategy="parallel",
                     maxConcurrency=2))
    assert started(settle(ex, T0)) == ["A/a", "A/b"]
    assert end(ex, "A/b", T0 + 1) == ["A/c"]
    assert end(ex, "A/a", T0 + 2) == ["A/d"]
    assert sorted(ex.running) == ["A/c", "A/d"]


def test_parallel_dependent_starts_as_soon_as_its_dependency_ends() -> None:
    ex = start(group("A", transfer("a"), transfer("b", "a"), transfer("slow"),
                     strategy="parallel", maxConcurrency=4))
    assert started(settle(ex, T0)) == ["A/a", "A/slow"]
    assert end(ex, "A/a", T0 + 1) == ["A/b"]


def test_workflow_parallelism_bounds_all_groups_together() -> None:
    ex = start(group("A", *(transfer(f"a{i}") for i in range(3)), strategy="parallel",
                     maxConcurrency=3),
               group("B", *(transfer(f"b{i}") for i in range(3)), strategy="parallel",
                     maxConcurrency=3),
               parallelism=4)
    assert started(settle(ex, T0)) == ["A/a0", "A/a1", "A/a2", "B/b0"]
    assert end(ex, "A/a0", T0 + 1) == ["B/b1"]
    assert len(ex.running) == 4


def test_sequential_group_runs_one_at_a_time_declared_dependencies_first() -> None:
    ex = start(group("A", transfer("first", "third"), transfer("second"), transfer("third"),
                     strategy="sequential", maxConcurrency=3))
    order = started(settle(ex, T0))
    now = T0
    while ex.running:
        assert len(ex.running) == 1
        now += 1
        order += end(ex, ex.running[0], now)
    assert order == ["A/second", "A/third", "A/first"]
    assert ex.status is ExecutionStatus.COMPLETED


def test_mixed_group_runs_level_by_level() -> None:
    ex = start(group("A", transfer("a"), transfer("b", "a"), transfer("c"),
                     strategy="mixed", maxConcurrency=4))
    assert started(settle(ex, T0)) == ["A/a", "A/c"]
    assert end(ex, "A/a", T0 + 1) == []  # b is level 1: level 0 (c) still runs
    assert end(ex, "A/c", T0 + 2) == ["A/b"]


def test_mixed_group_starts_a_later_written_step_of_the_current_level() -> None:
    # Plan order is a, b, c, d but d is level 0 like a and c: once a ends, b (level 1) waits
    # and d must still start, instead of the group stalling behind b.
    ex = start(group("A", transfer("a"), transfer("b", "a"), transfer("c"), transfer("d"),
                     strategy="mixed", maxConcurrency=2))
    assert started(settle(ex, T0)) == ["A/a", "A/c"]
    assert end(ex, "A/a", T0 + 1) == ["A/d"]
    assert end(ex, "A/c", T0 + 2) == []
    assert end(ex, "A/d", T0 + 3) == ["A/b"]
    end(ex, "A/b", T0 + 4)
    assert ex.status is ExecutionStatus.COMPLETED


def test_a_group_waits_for_every_step_of_the_groups_it_depends_on() -> None:
    ex = start(group("A", transfer("a1"), transfer("a2"), strategy="parallel"),
               group("B", transfer("b"), after=("A",)))
    assert started(settle(ex, T0)) == ["A/a1", "A/a2"]
    assert end(ex, "A/a1", T0 + 1) == []
    assert end(ex, "A/a2", T0 + 2) == ["B/b"]


# -- failures and conditions -------------------------------------------------------------------


def test_a_failure_stops_the_rest_of_its_group_and_fails_the_execution() -> None:
    ex = start(group("A", transfer("a"), transfer("b"), transfer("c"), strategy="parallel",
                     maxConcurrency=2))
    settle(ex, T0)
    assert end(ex, "A/a", T0 + 1, ok=False, error="disk full") == []
    assert status(ex, "A/c") is StepStatus.SKIPPED
    assert ex.outcomes["A/c"].reason == "step 'a' of group 'A' failed: disk full"
    assert status(ex, "A/b") is StepStatus.RUNNING  # what already runs goes on
    end(ex, "A/b", T0 + 2)
    assert ex.status is ExecutionStatus.FAILED
    assert ex.error == "step 'a' of group 'A' failed: disk full"


def test_continue_on_error_skips_only_dependents_and_completes() -> None:
    ex = start(group("A", transfer("a"), transfer("b", "a"), transfer("c"),
                     strategy="parallel", maxConcurrency=1, continueOnError=True))
    settle(ex, T0)
    assert end(ex, "A/a", T0 + 1, ok=False, error="refused") == ["A/c"]
    assert status(ex, "A/b") is StepStatus.SKIPPED
    assert ex.outcomes["A/b"].reason == "'a' did not complete (failed)"
    end(ex, "A/c", T0 + 2)
    assert ex.status is ExecutionStatus.COMPLETED
    assert ex.group_succeeded("A") is False


def test_a_condition_on_a_failed_dependency_decides_instead_of_the_skip() -> None:
    ex = start(group("A", transfer("a"), transfer("cleanup", "a", condition="!${a.success}"),
                     transfer("next", "a", condition="${a.success}"),
                     strategy="parallel", continueOnError=True))
    settle(ex, T0)
    assert end(ex, "A/a", T0 + 1, ok=False, error="boom") == ["A/cleanup"]
    assert status(ex, "A/next") is StepStatus.SKIPPED
    assert ex.outcomes["A/next"].reason == "condition ${a.success} was false (a.success=false)"


def test_a_false_condition_gives_the_values_it_read() -> None:
    ex = start(group("A", transfer("user-data"), transfer("order-data"),
                     transfer("analytics", "user-data", "order-data",
                              condition="${user-data.success} && ${order-data.bytes} > 100"),
                     strategy="parallel", maxConcurrency=3))
    settle(ex, T0)
    end(ex, "A/user-data", T0 + 1, bytes=10)
    end(ex, "A/order-data", T0 + 2, bytes=50)
    assert status(ex, "A/analytics") is StepStatus.SKIPPED
    assert ex.outcomes["A/analytics"].reason == (
        "condition ${user-data.success} && ${order-data.bytes} > 100 was false "
        "(user-data.success=true, order-data.bytes=50)")
    assert ex.status is ExecutionStatus.COMPLETED


def test_a_condition_that_cannot_be_evaluated_fails_the_step() -> None:
    ex = start(group("A", transfer("a"), transfer("b", "a", condition='${a.bytes} > "x"'),
                     strategy="parallel"))
    settle(ex, T0)
    end(ex, "A/a", T0 + 1, bytes=5)
    assert status(ex, "A/b") is StepStatus.FAILED
    error = ex.outcomes["A/b"].error or ""
    assert error.startswith("condition failed:") and "number" in error and "string" in error
    assert ex.status is ExecutionStatus.FAILED


def test_group_depending_on_a_failed_group_is_skipped_with_the_reason() -> None:
    ex = start(group("A", transfer("a")), group("B", transfer("b1"), transfer("b2"),
                                                after=("A",)))
    settle(ex, T0)
    end(ex, "A/a", T0 + 1, ok=False, error="gone")
    assert [status(ex, s) for s in ("B/b1", "B/b2")] == [StepStatus.SKIPPED] * 2
    assert ex.outcomes["B/b1"].reason == "group 'A' did not complete"
    assert ex.status is ExecutionStatus.FAILED


def test_group_condition_decides_whether_a_group_runs() -> None:
    ex = start(group("A", transfer("a"), continueOnError=True),
               group("recover", transfer("r"), after=("A",), condition="!${A.success}"),
               group("report", transfer("p"), after=("A",), condition="${A.success}"))
    settle(ex, T0)
    assert end(ex, "A/a", T0 + 1, ok=False, error="x") == ["recover/r"]
    assert ex.outcomes["report/p"].reason == "condition ${A.success} was false (A.success=false)"
    end(ex, "recover/r", T0 + 2)
    assert ex.status is ExecutionStatus.COMPLETED


def test_group_condition_that_fails_to_evaluate_fails_its_steps() -> None:
    ex = start(group("A", transfer("a")), group("B", transfer("b"), after=("A",),
                                                condition='"a" / 2'))
    settle(ex, T0)
    end(ex, "A/a", T0 + 1)
    assert status(ex, "B/b") is StepStatus.FAILED
    assert (ex.outcomes["B/b"].error or "").startswith("condition of group 'B' failed:")
    assert ex.status is ExecutionStatus.FAILED


# -- timeouts -----------------------------------------------------------------------------------


def test_step_timeout_aborts_then_fails_the_step() -> None:
    ex = start(group("A", transfer("slow", timeout="5s"), transfer("next")))
    settle(ex, T0)
    assert ex.next_deadline() == T0 + 5
    assert ex.decide(T0 + 4.9) == []
    assert ex.decide(T0 + 5) == [Decision("abort", "A/slow", "timed out after 5 s")]
    settle(ex, T0 + 5)
    assert ex.decide(T0 + 6) == []  # not aborted twice
    ex.finish_step("A/slow", StepStatus.CANCELLED, T0 + 5.5)
    settle(ex, T0 + 5.5)
    assert status(ex, "A/slow") is StepStatus.FAILED
    assert ex.outcomes["A/slow"].error == "timed out after 5 s"
    assert status(ex, "A/next") is StepStatus.SKIPPED
    assert ex.status is ExecutionStatus.FAILED


def test_group_timeout_aborts_running_and_fails_waiting_steps() -> None:
    ex = start(group("A", transfer("a"), transfer("b"), timeout="10s"),
               group("B", transfer("c")))
    settle(ex, T0 + 1)
    assert ex.next_deadline() == T0 + 11
    decisions = settle(ex, T0 + 11)
    why = "group 'A' timed out after 10 s"
    assert Decision("abort", "A/a", why) in decisions
    assert Decision("fail", "A/b", why) in decisions
    ex.finish_step("A/a", StepStatus.CANCELLED, T0 + 11)
    settle(ex, T0 + 11)
    assert ex.outcomes["A/a"].error == why
    assert status(ex, "B/c") is StepStatus.RUNNING  # another group is not concerned
    end(ex, "B/c", T0 + 12)
    assert ex.status is ExecutionStatus.FAILED


def test_workflow_timeout_aborts_everything_and_fails_with_timed_out() -> None:
    ex = start(group("A", transfer("a"), transfer("b")), timeout="60s")
    settle(ex, T0)
    assert ex.next_deadline() == T0 + 60
    decisions = settle(ex, T0 + 60)
    why = "workflow timed out after 60 s"
    assert Decision("abort", "A/a", why) in decisions
    assert Decision("skip", "A/b", why, "skipped") in decisions
    assert ex.status is ExecutionStatus.RUNNING  # until the aborted step has ended
    ex.finish_step("A/a", StepStatus.CANCELLED, T0 + 61)
    settle(ex, T0 + 61)
    assert ex.status is ExecutionStatus.FAILED
    assert ex.error == why
    assert ex.outcomes["A/a"].error == why


# -- pause, resume, cancel --------------------------------------------------------------------


def test_pause_holds_new_starts_and_resume_continues() -> None:
    ex = start(group("A", transfer("a"), transfer("b")))
    settle(ex, T0)
    ex.pause()
    assert ex.shown_status is ExecutionStatus.PAUSED
    assert end(ex, "A/a", T0 + 1) == []
    assert ex.status is ExecutionStatus.RUNNING and not ex.running
    ex.resume()
    assert started(settle(ex, T0 + 2)) == ["A/b"]
    assert ex.shown_status is ExecutionStatus.RUNNING


def test_cancel_aborts_running_cancels_pending_and_ends_cancelled() -> None:
    ex = start(group("A", transfer("a"), transfer("b")), group("B", transfer("c"),
                                                             after=("A",)))
    settle(ex, T0)
    ex.cancel("stopped by alice")
    decisions = settle(ex, T0 + 1)
    assert Decision("abort", "A/a", "stopped by alice") in decisions
    assert status(ex, "A/b") is StepStatus.CANCELLED
    assert status(ex, "B/c") is StepStatus.CANCELLED
    ex.finish_step("A/a", StepStatus.CANCELLED, T0 + 2)
    settle(ex, T0 + 2)
    assert status(ex, "A/a") is StepStatus.CANCELLED
    assert ex.outcomes["A/a"].reason == "stopped by alice"
    assert ex.status is ExecutionStatus.CANCELLED
    assert ex.error == "stopped by alice"


def test_a_step_that_completes_despite_an_abort_stays_completed() -> None:
    ex = start(group("A", transfer("a")))
    settle(ex, T0)
    ex.cancel("stop")
    settle(ex, T0)
    ex.finish_step("A/a", StepStatus.COMPLETED, T0 + 1, bytes=3)
    settle(ex, T0 + 1)
    assert status(ex, "A/a") is StepStatus.COMPLETED
    assert ex.status is ExecutionStatus.CANCELLED


def test_late_reports_and_decisions_after_the_end_change_nothing() -> None:
    ex = start(group("A", transfer("a")))
    settle(ex, T0)
    end(ex, "A/a", T0 + 1, bytes=7)
    assert ex.status is ExecutionStatus.COMPLETED and ex.finished_at == T0 + 1
    ex.finish_step("A/a", StepStatus.FAILED, T0 + 2, error="late")
    ex.cancel("too late")
    assert ex.outcomes["A/a"].status is StepStatus.COMPLETED
    assert ex.decide(T0 + 3) == []
    assert ex.status is ExecutionStatus.COMPLETED


# -- summary -------------------------------------------------------------------------------------


def test_summary_records_every_step_in_plan_order() -> None:
    ex = start(group("A", transfer("a"), transfer("b", "a"), transfer("c"),
                     strategy="parallel", continueOnError=True))
    settle(ex, T0)
    end(ex, "A/a", T0 + 2, ok=False, error="bad", attempts=3)
    end(ex, "A/c", T0 + 4, bytes=2048, sha256="ab" * 32, attempts=1, source="/src/c",
        destination="/dst/c")
    summary = ex.summary(variables={"X": "1"})
    assert [s.step for s in summary.steps] == ["A/a", "A/b", "A/c"]
    assert summary.status is ExecutionStatus.COMPLETED
    assert summary.counts() == {"failed": 1, "skipped": 1, "completed": 1}
    assert summary.bytes == 2048
    c = summary.step("A/c")
    assert c is not None
    assert (c.duration, c.attempts, c.sha256, c.started_at, c.finished_at) == (
        4.0, 1, "ab" * 32, T0, T0 + 4)
    a = summary.step("A/a")
    assert a is not None and (a.error, a.attempts) == ("bad", 3)
    assert summary.variables == {"X": "1"}
    assert (summary.execution_id, summary.workflow, summary.mode) == ("ex-1", "wf", "normal")
    again = ExecutionSummary.from_json(summary.to_json())
    assert again.steps == summary.steps and again.status is summary.status


def test_decisions_round_trip_through_json() -> None:
    decision = Decision("skip", "A/b", "why", "cancelled")
    assert Decision.from_json(decision.to_json()) == decision


def test_an_unknown_decision_is_refused() -> None:
    ex = start(group("A", transfer("a")))
    with pytest.raises(ValueError, match="unknown decision 'jump'"):
        ex.apply(Decision("jump", "A/a"), T0)


def test_a_timeout_that_fired_is_no_longer_a_deadline() -> None:
    # A runner sleeps until next_deadline(): one in the past would wake it at once, forever.
    ex = start(group("A", transfer("slow", timeout="5s"), transfer("b"), timeout="30s"),
               timeout="60s")
    settle(ex, T0)
    assert ex.next_deadline() == T0 + 5
    settle(ex, T0 + 5)
    assert ex.next_deadline() == T0 + 30  # the step's abort is under way
    settle(ex, T0 + 30)
    assert ex.next_deadline() == T0 + 60  # the group's steps are all aborted or failed
    settle(ex, T0 + 60)
    assert ex.next_deadline() is None
    ex.finish_step("A/slow", StepStatus.CANCELLED, T0 + 61)
    settle(ex, T0 + 61)
    assert ex.status is ExecutionStatus.FAILED
