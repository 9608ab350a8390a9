"""run_actions: order, unknown and failing actions, cancellation, dry runs; validate_action
and describe_target."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import pytest
from quorus.core.errors import ConfigurationError
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.fixtures import anyio_backend, free_port
from quorus.workflow.actions import (
    BUILTIN_ACTIONS,
    ActionContext,
    ActionError,
    ActionSettings,
    WorkflowAction,
    describe_target,
    installed_actions,
    merge_actions,
    run_actions,
    validate_action,
)
from quorus.workflow.summary import ActionOutcome, ExecutionStatus, ExecutionSummary

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

SUMMARY = ExecutionSummary("e-3", "wf", ExecutionStatus.FAILED)


class Recording:
    """Records its calls; ``behaviour`` decides what a call does."""

    def __init__(self, calls: list[str], behaviour: str = "ok") -> None:
        self.calls = calls
        self.behaviour = behaviour

    async def __call__(self, spec: Mapping[str, Any], summary: ExecutionSummary,
                       context: ActionContext) -> ActionOutcome:
        self.calls.append(str(spec["id"]))
        if self.behaviour == "raise":
            raise RuntimeError("disk on fire")
        if self.behaviour == "action-error":
            raise ActionError("custom: the endpoint said no; check its token")
        if self.behaviour == "config-error":
            raise ConfigurationError("option x is invalid")
        if self.behaviour == "hang":
            await anyio.sleep_forever()
        if self.behaviour == "wrong-type":
            return "done"  # type: ignore[return-value]
        return ActionOutcome(str(spec["action"]), "", True, f"ran {spec['id']} "
                             f"(dry={context.dry_run}, workflow={summary.workflow})")


def actions(calls: list[str]) -> dict[str, WorkflowAction]:
    names = ("ok", "raise", "action-error", "config-error", "hang", "wrong-type")
    return {name: Recording(calls, name) for name in names}


@pytest.mark.anyio
async def test_actions_run_in_order_and_failures_do_not_stop_the_rest() -> None:
    calls: list[str] = []
    specs = [{"action": name, "id": str(i)} for i, name in enumerate(
        ["ok", "raise", "action-error", "config-error", "wrong-type", "ok"])]
    outcomes = await run_actions(specs, SUMMARY, ActionContext(), actions(calls))
    assert calls == ["0", "1", "2", "3", "4", "5"]
    assert [o.ok for o in outcomes] == [True, False, False, False, False, True]
    assert outcomes[0].detail == "ran 0 (dry=False, workflow=wf)"
    assert outcomes[1].detail == "raise failed unexpectedly: RuntimeError: disk on fire"
    assert outcomes[2].detail == "custom: the endpoint said no; check its token"
    assert outcomes[3].detail == "config-error: option x is invalid"
    assert outcomes[4].detail == "action 'wrong-type' returned str, not an ActionOutcome"
    assert [o.action for o in outcomes] == [s["action"] for s in specs]


@pytest.mark.anyio
async def test_an_unknown_action_fails_naming_the_installed_ones() -> None:
    calls: list[str] = []
    unknown, missing, ran = await run_actions(
        [{"action": "okk", "id": "x"}, {"id": "y"}, {"action": "ok", "id": "z"}],
        SUMMARY, ActionContext(), actions(calls))
    assert not unknown.ok
    assert unknown.detail == ("unknown action 'okk': did you mean 'ok'? installed actions are "
                              "action-error, config-error, hang, ok, raise, wrong-type")
    assert not missing.ok and missing.action == "?"
    assert ran.ok and calls == ["z"]


@pytest.mark.anyio
async def test_cancellation_is_not_swallowed() -> None:
    calls: list[str] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            async def run() -> None:
                await run_actions([{"action": "hang", "id": "1"}, {"action": "ok", "id": "2"}],
                                  SUMMARY, ActionContext(), actions(calls))
                calls.append("run_actions returned")

            tg.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert calls == ["1"]


@pytest.mark.anyio
async def test_a_dry_run_of_every_builtin_action_changes_nothing(tmp_path: Path) -> None:
    old = tmp_path / "backup" / "old.tar"
    old.parent.mkdir()
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    partial = tmp_path / ".data.bin.quorus-partial"
    partial.write_bytes(b"half")
    summary = ExecutionSummary("e-3", "wf", ExecutionStatus.FAILED, steps=())
    context = ActionContext(
        settings=ActionSettings(slack_webhook=f"http://127.0.0.1:{free_port()}/never",
                                smtp_host="127.0.0.1", smtp_port=free_port()),
        dry_run=True)
    outcomes = await run_actions([
        {"action": "notify", "target": "slack://ops"},
        {"action": "notify", "target": f"http://127.0.0.1:{free_port()}/hook"},
        {"action": "email", "to": "ops@x.test"},
        {"action": "cleanup", "target": str(tmp_path / "backup"), "retentionDays": 1},
        {"action": "rollback", "strategy": "deleteAll"},
    ], summary, context)
    assert all(o.ok for o in outcomes), outcomes
    assert all(o.detail.startswith("would ") for o in outcomes), outcomes
    assert old.exists() and partial.exists()


@pytest.mark.anyio
async def test_a_spec_that_is_not_a_mapping_is_a_failed_outcome() -> None:
    calls: list[str] = []
    bad: Any = "notify slack://ops"
    failed, ran = await run_actions([bad, {"action": "ok", "id": "1"}], SUMMARY,
                                    ActionContext(), actions(calls))
    assert not failed.ok and "must be a mapping" in failed.detail
    assert ran.ok and calls == ["1"]


def test_builtin_actions_are_the_four_documented_ones() -> None:
    assert sorted(BUILTIN_ACTIONS) == ["cleanup", "email", "notify", "rollback"]


@pytest.mark.parametrize(("spec", "problem"), [
    ("notify", "an action must be a mapping with an 'action' key, not str"),
    ({"target": "slack://x"}, "an action needs 'action'"),
    ({"action": 3}, "an action needs 'action'"),
    ({"action": "notfy", "target": "slack://x"}, "unknown action 'notfy': did you mean 'notify'?"),
    ({"action": "teleport"}, "installed actions are cleanup, email, notify, rollback"),
])
def test_validate_action_shape_and_name(spec: object, problem: str) -> None:
    [found] = validate_action(spec)
    assert problem in found


def test_validate_action_with_other_actions_skips_those_without_a_validator() -> None:
    extra: dict[str, WorkflowAction] = {"page": Recording([])}
    assert validate_action({"action": "page", "anything": 1}, MappingProxyType(extra)) == []
    assert validate_action({"action": "notify"}, MappingProxyType(extra)) != []


@pytest.mark.parametrize(("spec", "shown"), [
    ({"action": "notify", "target": "https://u:pw@h.test/x?token=t"}, "https://***@h.test/x?token=***"),
    ({"action": "notify", "target": "slack://ops"}, "slack://ops"),
    ({"action": "notify", "target": "email://a@x.test"}, "email://a@x.test"),
    ({"action": "email", "to": ["a@x.test", "b@x.test"]}, "email://a@x.test,b@x.test"),
    ({"action": "cleanup", "target": "/backup"}, "/backup"),
    ({"action": "cleanup", "target": "sftp://u:pw@h.test/backup"}, "sftp://***@h.test/backup"),
    ({"action": "rollback"}, "deletePartial"),
    ({"action": "rollback", "strategy": "deleteAll"}, "deleteAll"),
])
def test_describe_target_never_shows_credentials(spec: dict[str, Any], shown: str) -> None:
    assert describe_target(spec) == shown


def test_merge_actions_keeps_the_first_under_a_name_and_reports_the_rest() -> None:
    page = Recording([])
    other_notify = Recording([])
    merged = merge_actions([
        {"page": page, "notify": BUILTIN_ACTIONS["notify"]},  # the built-ins again: fine
        {"notify": other_notify, "page": page},
        {"broken": "not callable"},
        ["not", "a", "mapping"],
    ])
    assert sorted(merged.actions) == ["cleanup", "email", "notify", "page", "rollback"]
    assert merged.actions["notify"] is BUILTIN_ACTIONS["notify"]
    assert merged.actions["page"] is page
    assert len(merged.problems) == 3
    assert "workflow action 'notify' is contributed more than once" in merged.problems[0]
    assert "workflow action 'broken' is 'not callable'" in merged.problems[1]
    assert "returned list, not a mapping" in merged.problems[2]


@pytest.mark.anyio
async def test_actions_contributed_through_the_hook_can_be_run() -> None:
    calls: list[str] = []

    class PagerPlugin:
        @hookimpl
        def quorus_workflow_actions(self) -> Mapping[str, object]:
            return {"page": Recording(calls)}

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(PagerPlugin())
    installed = installed_actions(pm)
    assert installed.problems == ()
    [outcome] = await run_actions([{"action": "page", "id": "p"}], SUMMARY, ActionContext(),
                                  installed.actions)
    assert outcome.ok and calls == ["p"]
