"""The workflow state module on its own (no sockets): executions submitted, advanced by the
leader's decisions and ended; idempotent submissions and fires; pause, resume and cancel;
refusals that change nothing; snapshots restored exactly; done executions bounded."""

from __future__ import annotations

from typing import Any

import pytest
from quorus.core.controller import Applied, ControllerState, MalformedCommandError
from quorus.core.controller.commands import Command
from quorus.workflow.controller import (
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
    UnregisterWorkflow,
    WorkflowResult,
    WorkflowStateModule,
    job_id_for,
)
from quorus.workflow.execution import Decision
from quorus.workflow.summary import ActionOutcome

T0 = 1_700_000_000.0
SHA = "ab" * 32


def workflow_yaml(name: str = "nightly", triggers: str = "") -> str:
    """Three transfers: ``users``, ``orders`` after it, ``report`` after both when both
    succeeded; a workflow-level notify on success."""
    return f"""\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: {name}
spec:
  groups:
    - name: stage
      transferGroup:
        spec:
          execution: {{strategy: parallel, maxConcurrency: 4}}
          transfers:
            - name: users
              source: {{path: "${{ROOT}}/in/users.csv"}}
              destination: {{path: "${{ROOT}}/out/users.csv"}}
            - name: orders
              source: {{path: "${{ROOT}}/in/orders.csv"}}
              destination: {{path: "${{ROOT}}/out/orders.csv"}}
              dependsOn: [users]
            - name: report
              source: {{path: "${{ROOT}}/in/report.csv"}}
              destination: {{path: "${{ROOT}}/out/report.csv"}}
              dependsOn: [users, orders]
              condition: "${{users.success}} && ${{orders.success}}"
  onSuccess:
    - action: notify
      target: "https://hooks.example/done"
{triggers}"""


CRON = """\
  triggers:
    - name: nightly
      type: cron
      schedule: "0 2 * * *"
      timezone: Europe/Paris
    - name: flag
      type: fileSystem
      path: /srv/flags/ready
"""


class Log:
    """A controller state machine fed through encoded commands, as consensus would."""

    def __init__(self) -> None:
        self.state = ControllerState([WorkflowStateModule()])
        self.index = 0
        self.commands: list[Command] = []

    @property
    def module(self) -> WorkflowStateModule:
        module = self.state.modules["workflow"]
        assert isinstance(module, WorkflowStateModule)
        return module

    def apply(self, command: Command) -> WorkflowResult:
        self.index += 1
        self.commands.append(command)
        applied = self.state.apply(self.index, command.encode())
        assert isinstance(applied, Applied)
        assert isinstance(applied.value, WorkflowResult)
        return applied.value

    def submit(self, execution_id: str = "e1", **fields: Any) -> WorkflowResult:
        values: dict[str, Any] = {"files": {"wf.yaml": workflow_yaml()},
                                  "sets": {"ROOT": "/data"}}
        values.update(fields)
        return self.apply(SubmitExecution(execution_id, T0, **values))

    def advance(self, execution_id: str, at: float) -> list[Decision]:
        """Decide as a leader would and record it; the decisions made."""
        record = self.module.execution(execution_id)
        assert record is not None
        decisions = record.execution.decide(at)
        starts = {d.target: job_id_for(execution_id, d.target)
                  for d in decisions if d.kind == "start"}
        result = self.apply(AdvanceExecution(
            execution_id, at, tuple((d.kind, d.target, d.reason, d.status) for d in decisions),
            starts))
        assert result.ok, result.message
        return decisions

    def end(self, execution_id: str, step: str, status: str, at: float) -> WorkflowResult:
        return self.apply(StepEnded(execution_id, step, at, status, bytes=10,
                                    sha256=SHA if status == "completed" else None, attempts=1,
                                    error=None if status == "completed" else "disk full"))


def kinds(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.kind, d.target) for d in decisions]


def test_an_execution_runs_from_submission_to_done() -> None:
    log = Log()
    assert log.submit() == WorkflowResult(True, "e1")
    assert kinds(log.advance("e1", T0 + 1)) == [("open", "stage")]
    assert kinds(log.advance("e1", T0 + 1)) == [("start", "stage/users")]
    record = log.module.execution("e1")
    assert record is not None
    assert record.execution.outcomes["stage/users"].job_id == "wf-e1-stage.users-1"
    assert log.advance("e1", T0 + 2) == []  # orders waits for users
    assert log.end("e1", "stage/users", "completed", T0 + 3).ok
    assert kinds(log.advance("e1", T0 + 3)) == [("start", "stage/orders")]
    log.end("e1", "stage/orders", "completed", T0 + 4)
    assert kinds(log.advance("e1", T0 + 4)) == [("start", "stage/report")]
    log.end("e1", "stage/report", "completed", T0 + 5)
    assert log.advance("e1", T0 + 5) == [Decision("finish", status="completed")]

    view = log.module.view("e1")
    assert view is not None
    assert view["status"] == "completed" and not view["actions_recorded"]
    assert view["plan"]["levels"] == [["stage/users"], ["stage/orders"], ["stage/report"]]
    assert [s["sha256"] for s in view["steps"]] == [SHA] * 3
    assert [r.execution_id for r in log.module.live()] == ["e1"]  # its actions are due

    outcome = ActionOutcome("notify", "https://hooks.example/done", True, "sent")
    assert log.apply(RecordActions("e1", T0 + 6, (outcome,))).ok
    assert log.module.live() == []
    done = log.module.view("e1")
    assert done is not None and done["actions"] == [outcome.to_json()]
    assert done["actions_recorded"]
    # A done execution takes no more events.
    assert not log.end("e1", "stage/report", "failed", T0 + 7).ok


def test_a_failed_step_skips_its_dependents_and_fails_the_execution() -> None:
    log = Log()
    log.submit()
    log.advance("e1", T0)
    log.advance("e1", T0)
    log.end("e1", "stage/users", "failed", T0 + 1)
    decisions = log.advance("e1", T0 + 1) + log.advance("e1", T0 + 1)
    assert [(d.kind, d.target, d.status) for d in decisions] == [
        ("skip", "stage/orders", "skipped"), ("skip", "stage/report", "skipped")]
    assert kinds(log.advance("e1", T0 + 1)) == [("finish", "")]
    view = log.module.view("e1")
    assert view is not None and view["status"] == "failed"
    assert "users" in view["error"] and "disk full" in view["error"]


def test_submitting_the_same_id_again_changes_nothing() -> None:
    log = Log()
    log.submit()
    log.advance("e1", T0)
    before = _section(log)
    again = log.submit(files={"other.yaml": workflow_yaml("other")})
    assert again == WorkflowResult(True, "e1", duplicate=True)
    assert _section(log) == before


def test_pause_holds_starts_resume_continues_cancel_aborts_and_skips() -> None:
    log = Log()
    log.submit()
    log.advance("e1", T0)
    assert log.apply(PauseExecution("e1", T0)).ok
    assert log.advance("e1", T0) == []
    view = log.module.view("e1")
    assert view is not None and view["status"] == "paused" and view["paused"]
    assert log.apply(ResumeExecution("e1", T0)).ok
    assert kinds(log.advance("e1", T0)) == [("start", "stage/users")]

    assert log.apply(CancelExecution("e1", T0 + 1, "operator said so")).ok
    decisions = log.advance("e1", T0 + 1)
    assert kinds(decisions) == [("abort", "stage/users"), ("skip", "stage/orders"),
                                ("skip", "stage/report")]
    assert log.advance("e1", T0 + 1) == []  # the aborted step's job has not ended yet
    log.end("e1", "stage/users", "cancelled", T0 + 2)
    assert kinds(log.advance("e1", T0 + 2)) == [("finish", "")]
    view = log.module.view("e1")
    assert view is not None and view["status"] == "cancelled"
    assert {s["status"] for s in view["steps"]} == {"cancelled"}
    # An execution that ended cannot be paused or cancelled again.
    assert not log.apply(PauseExecution("e1", T0 + 3)).ok
    assert not log.apply(CancelExecution("e1", T0 + 3)).ok


@pytest.mark.parametrize(("fields", "message"), [
    ({"files": {"wf.yaml": "kind: [unclosed"}}, "wf.yaml:2:1: YAML syntax error"),
    ({"files": {"wf.yaml": workflow_yaml().replace("dependsOn: [users]",
                                                     "dependsOn: [nobody]")}}, "nobody"),
    ({"workflow": "missing"}, "no workflow, group or transfer named 'missing'"),
    ({"environment": "prod"}, "no environment 'prod'"),
    ({"mode": "dry-run"}, "dry and virtual runs are local"),
    ({"files": {}}, "no files given"),
])
def test_submissions_that_cannot_run_are_refused_and_change_nothing(
    fields: dict[str, Any], message: str
) -> None:
    log = Log()
    empty = _section(log)
    result = log.submit(**fields)
    assert not result.ok and message in result.message
    assert _section(log) == empty
    # Refused the same way on every replica: the decision is the command's alone.
    other = Log()
    assert other.submit(**fields) == result


def test_events_for_unknown_executions_or_steps_are_refused() -> None:
    log = Log()
    assert "no execution 'nope'" in log.apply(PauseExecution("nope", T0)).message
    log.submit()
    bad = AdvanceExecution("e1", T0, (("start", "stage/ghost", "", ""),), {})
    assert "names nothing" in log.apply(bad).message
    assert "no step" in log.end("e1", "stage/ghost", "completed", T0).message
    with pytest.raises(MalformedCommandError, match="unknown decision"):
        log.state.apply(99, _tampered(AdvanceExecution(
            "e1", T0, (("open", "stage", "", ""),), {})))


def test_snapshot_restores_live_done_and_registrations_exactly() -> None:
    log = Log()
    log.submit("e1")
    log.advance("e1", T0)
    log.advance("e1", T0)
    log.end("e1", "stage/users", "completed", T0 + 1)
    log.apply(PauseExecution("e1", T0 + 2))
    log.submit("e2")
    log.advance("e2", T0)
    log.apply(CancelExecution("e2", T0, "no longer needed"))
    log.advance("e2", T0)
    log.advance("e2", T0)
    log.apply(RecordActions("e2", T0 + 1, ()))
    log.apply(RegisterWorkflow("nightly", T0, {"wf.yaml": workflow_yaml(triggers=CRON)},
                               sets={"ROOT": "/data"}))
    log.apply(TriggerFired("nightly", "flag", T0 + 5, T0 + 5, signature="1:2:3:4"))

    snapshot = log.state.snapshot()
    restored = ControllerState([WorkflowStateModule()])
    restored.restore(snapshot, log.index)
    module = restored.modules["workflow"]
    assert isinstance(module, WorkflowStateModule)
    assert restored.snapshot() == snapshot
    assert [v for v in module.views()] == [v for v in log.module.views()]
    assert [r.view() for r in module.registrations()] == \
        [r.view() for r in log.module.registrations()]
    # The restored execution goes on exactly like the original.
    live = module.execution("e1")
    original = log.module.execution("e1")
    assert live is not None and original is not None
    assert live.execution.paused and live.execution.decide(T0 + 3) == \
        original.execution.decide(T0 + 3) == []
    live.execution.resume()
    original.execution.resume()
    assert live.execution.decide(T0 + 3) == original.execution.decide(T0 + 3) != []


def test_only_the_last_done_executions_are_kept() -> None:
    log = Log()
    log.state = ControllerState([WorkflowStateModule(max_done=2)])
    for number in range(4):
        execution_id = f"e{number}"
        log.submit(execution_id)
        log.apply(CancelExecution(execution_id, T0))
        log.advance(execution_id, T0)
        log.advance(execution_id, T0)
        assert log.apply(RecordActions(execution_id, T0, ())).ok
    assert [v["execution_id"] for v in log.module.views()] == ["e3", "e2"]
    assert log.module.view("e0") is None


def test_trigger_fires_start_one_execution_each_whoever_proposes_them() -> None:
    log = Log()
    files = {"wf.yaml": workflow_yaml(triggers=CRON)}
    assert log.apply(RegisterWorkflow("nightly", T0, files, sets={"ROOT": "/data"})).ok
    # A client retrying its registration changes nothing.
    again = log.apply(RegisterWorkflow("nightly", T0 + 9, files, sets={"ROOT": "/data"}))
    assert again.duplicate

    fired = log.apply(TriggerFired("nightly", "nightly", T0 + 60, T0 + 61))
    assert fired.ok and not fired.duplicate
    assert fired.execution_id == "nightly-nightly-20231114T221420000Z"
    # The same fire from a second leader, and an older one, start nothing.
    assert log.apply(TriggerFired("nightly", "nightly", T0 + 60, T0 + 62)).duplicate
    assert log.apply(TriggerFired("nightly", "nightly", T0 + 30, T0 + 62)).duplicate
    record = log.module.execution(fired.execution_id)
    assert record is not None and record.registration == "nightly"
    assert record.execution.started_at == T0 + 60

    first = log.apply(TriggerFired("nightly", "flag", T0 + 70, T0 + 70, signature="s1"))
    assert log.apply(TriggerFired("nightly", "flag", T0 + 71, T0 + 71, signature="s1")
                     ).duplicate
    assert log.apply(TriggerCleared("nightly", "flag", T0 + 72)).ok
    second = log.apply(TriggerFired("nightly", "flag", T0 + 73, T0 + 73, signature="s1"))
    assert first.ok and second.ok and not second.duplicate
    assert first.execution_id != second.execution_id
    registration = log.module.registration("nightly")
    assert registration is not None
    kept = registration.triggers
    assert (kept["nightly"].fires, kept["flag"].fires) == (1, 2)
    assert kept["flag"].last_execution == second.execution_id
    assert len(log.module.live()) == 3

    assert log.apply(UnregisterWorkflow("nightly", T0 + 80)).ok
    assert not log.apply(TriggerFired("nightly", "nightly", T0 + 90, T0 + 90)).ok
    assert len(log.module.live()) == 3  # executions it started stay


def test_registrations_without_usable_triggers_are_refused() -> None:
    log = Log()
    sets = {"ROOT": "/srv"}
    assert "has no triggers" in log.apply(RegisterWorkflow(
        "plain", T0, {"wf.yaml": workflow_yaml()}, sets=sets)).message
    bad_zone = CRON.replace("Europe/Paris", "Europe/Atlantis")
    assert "not an IANA zone" in log.apply(RegisterWorkflow(
        "zone", T0, {"wf.yaml": workflow_yaml(triggers=bad_zone)}, sets=sets)).message
    assert log.module.registrations() == []


def _section(log: Log) -> Any:
    return log.module.snapshot()


def _tampered(command: AdvanceExecution) -> bytes:
    import msgpack
    from quorus.core.controller.codec import to_plain

    plain = to_plain(command)
    plain["decisions"] = [["explode", "stage", "", ""]]
    packed: bytes = msgpack.packb([command.NAME, plain], use_bin_type=True)
    return packed
