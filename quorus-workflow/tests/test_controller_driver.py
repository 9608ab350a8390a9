"""The leader's workflow driver in a real controller (standalone consensus, loopback REST) with
scripted agents that copy ``file`` jobs for real: executions submitted through REST run to the
end, failures skip dependents, pause holds starts, cancel cancels jobs, and triggers fire once
per fire (a fileSystem flag file in tmp, a cron schedule on an injected clock)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.controller import JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    controller_address,
    running_controller,
)
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.actions import ActionContext
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule
from quorus.workflow.summary import ActionOutcome, ExecutionSummary

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FINAL = ("completed", "failed", "cancelled")


def workflow_yaml(triggers: str = "") -> str:
    """``users``; ``orders`` after it; ``report`` after both when both succeeded."""
    return f"""\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: nightly
spec:
  defaults:
    retry: {{maxAttempts: 2}}
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
      target: "https://hooks.example/${{workflow.name}}"
  onFailure:
    - action: notify
      target: "https://hooks.example/failed"
{triggers}"""


class RecordingNotify:
    """A ``notify`` action that records what it was asked instead of sending anything."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, spec: Mapping[str, Any], summary: ExecutionSummary,
                       context: ActionContext) -> ActionOutcome:
        self.calls.append((str(spec["target"]), str(summary.status)))
        return ActionOutcome("notify", str(spec["target"]), True, "recorded")


class StatePlugin:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [WorkflowStateModule()]


class Fleet:
    """A controller with the workflow extension, one scripted agent and a REST client."""

    def __init__(self, server: ControllerServer, agent: ScriptedAgent, client: httpx.AsyncClient,
                 root: Path, notify: RecordingNotify) -> None:
        self.server = server
        self.agent = agent
        self.client = client
        self.root = root
        self.notify = notify

    @property
    def module(self) -> WorkflowStateModule:
        module = self.server.state.modules["workflow"]
        assert isinstance(module, WorkflowStateModule)
        return module

    async def submit(self, execution_id: str, **extra: Any) -> dict[str, Any]:
        body = {"files": {"nightly.yaml": workflow_yaml()}, "sets": {"ROOT": str(self.root)},
                "id": execution_id, **extra}
        answer = await self.client.post("/v1/workflows/executions", json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def execution(self, execution_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/v1/workflows/executions/{execution_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def wait(self, execution_id: str, what: str, check: Any, seconds: float = 20
                   ) -> dict[str, Any]:
        """Poll the execution until ``check(view)`` holds (at most ``seconds``)."""
        view: dict[str, Any] = {}
        with anyio.move_on_after(seconds):
            while True:
                view = await self.execution(execution_id)
                if check(view):
                    return view
                await anyio.sleep(0.05)
        raise AssertionError(f"execution {execution_id} never {what}: {view}")

    async def wait_done(self, execution_id: str) -> dict[str, Any]:
        return await self.wait(execution_id, "ended with its actions recorded",
                               lambda v: v["status"] in FINAL and v["actions_recorded"])

    def step(self, view: dict[str, Any], name: str) -> dict[str, Any]:
        return next(s for s in view["steps"] if s["step"] == f"stage/{name}")


@asynccontextmanager
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str = "complete",
                **driver: Any) -> AsyncIterator[Fleet]:
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(StatePlugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    for name in ("users", "orders", "report"):
        source = tmp_path / "in" / f"{name}.csv"
        source.parent.mkdir(exist_ok=True)
        source.write_text(f"{name}\n" * 1000)
    (tmp_path / "out").mkdir()
    notify = RecordingNotify()
    extension = WorkflowExtension(actions={"notify": notify}, **driver)
    async with running_controller(tmp_path / "c", extensions=[extension]) as server, \
            anyio.create_task_group() as tg:
        agent = ScriptedAgent("a1", [controller_address(server)], mode=mode, max_concurrent=4)
        tg.start_soon(agent.run)
        with anyio.fail_after(10):
            await agent.registered.wait()
        async with httpx.AsyncClient(base_url=f"http://{server.settings.listen_http}",
                                     headers=AUTH, timeout=10) as client:
            yield Fleet(server, agent, client, tmp_path, notify)
        agent.kill()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_workflow_runs_to_completion_one_job_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, monkeypatch) as f:
        submitted = await f.submit("run-1")
        assert submitted["execution_id"] == "run-1"
        assert submitted["plan"]["levels"] == [["stage/users"], ["stage/orders"],
                                               ["stage/report"]]
        view = await f.wait_done("run-1")
        assert view["status"] == "completed", view
        for name in ("users", "orders", "report"):
            step = f.step(view, name)
            target = tmp_path / "out" / f"{name}.csv"
            assert step["status"] == "completed"
            assert step["sha256"] == sha256(target) == sha256(tmp_path / "in" / f"{name}.csv")
            assert step["job_id"] == f"wf-run-1-stage.{name}-1"
            job = f.server.state.jobs[step["job_id"]]
            assert job.state is JobState.COMPLETED and len(job.attempts) == 1
        assert sorted(f.server.state.jobs) == sorted(f"wf-run-1-stage.{n}-1"
                                                     for n in ("users", "orders", "report"))
        assert f.notify.calls == [("https://hooks.example/nightly", "completed")]
        assert view["actions"] == [{"action": "notify", "target": "https://hooks.example/nightly",
                                    "ok": True, "detail": "recorded"}]
        # Submitting the same id again is the same execution, not a second one.
        again = await f.submit("run-1")
        assert again["status"] == "completed" and len(f.server.state.jobs) == 3


async def test_a_failing_step_fails_the_execution_and_skips_its_dependents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, monkeypatch, mode="fail") as f:
        await f.submit("run-2")
        view = await f.wait_done("run-2")
        assert view["status"] == "failed"
        users = f.step(view, "users")
        assert users["status"] == "failed" and users["attempts"] == 2
        assert "scripted failure" in users["error"]
        assert f.step(view, "orders")["status"] == "skipped"
        report = f.step(view, "report")
        assert report["status"] == "skipped" and "'users' of group 'stage' failed" in \
            report["reason"]
        assert list(f.server.state.jobs) == ["wf-run-2-stage.users-1"]
        assert f.notify.calls == [("https://hooks.example/failed", "failed")]


async def test_pause_holds_new_starts_and_resume_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, monkeypatch, mode="hold") as f:
        await f.submit("run-3")
        await f.wait("run-3", "started users",
                     lambda v: f.step(v, "users")["status"] == "running")
        await f.agent.wait_for(lambda: bool(f.agent.assigns()))
        paused = await f.client.post("/v1/workflows/executions/run-3/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        f.agent.finish_held(f.agent.assigns()[0])
        await f.wait("run-3", "recorded the end of users",
                     lambda v: f.step(v, "users")["status"] == "completed")
        index = f.server.state.applied_index
        # Several driver rounds pass (each at most 0.2 s apart): none starts orders.
        await anyio.sleep(1.0)
        view = await f.execution("run-3")
        assert f.step(view, "orders")["status"] == "pending" and view["status"] == "paused"
        assert "wf-run-3-stage.orders-1" not in f.server.state.jobs
        assert f.server.state.applied_index >= index
        resumed = await f.client.post("/v1/workflows/executions/run-3/resume")
        assert resumed.status_code == 200
        view = await f.wait_done("run-3")
        assert view["status"] == "completed"
        assert (tmp_path / "out" / "report.csv").exists()


async def test_cancel_cancels_running_jobs_and_skips_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, monkeypatch, mode="hold") as f:
        await f.submit("run-4")
        await f.agent.wait_for(lambda: bool(f.agent.assigns()))
        answer = await f.client.post("/v1/workflows/executions/run-4/cancel",
                                     json={"reason": "wrong day"})
        assert answer.status_code == 200
        view = await f.wait_done("run-4")
        assert view["status"] == "cancelled"
        assert [s["status"] for s in view["steps"]] == ["cancelled"] * 3
        job = f.server.state.jobs["wf-run-4-stage.users-1"]
        assert job.state is JobState.CANCELLED
        await f.agent.wait_for(lambda: ("wf-run-4-stage.users-1", 1) in f.agent.aborted)
        refused = await f.client.post("/v1/workflows/executions/run-4/pause")
        assert refused.status_code == 409 and "is done" in refused.json()["message"]


FLAG = """\
  triggers:
    - name: ready
      type: fileSystem
      path: {path}
"""


async def test_a_flag_file_fires_once_per_appearance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "flags" / "ready"
    flag.parent.mkdir()
    async with fleet(tmp_path, monkeypatch, file_check_interval=0.05) as f:
        body = {"files": {"nightly.yaml": workflow_yaml(FLAG.format(path=flag))},
                "sets": {"ROOT": str(tmp_path)}}
        answer = await f.client.post("/v1/workflows/registrations", json=body)
        assert answer.status_code == 201, answer.text
        assert answer.json()["name"] == "nightly"
        flag.write_text("go")
        fired = await wait_registration(f, lambda t: t["fires"] == 1)
        first = fired["last_execution"]
        view = await f.wait_done(first)
        assert view["status"] == "completed" and view["registration"] == "nightly"
        # The flag stays: file checks go on (every 0.05 s) without firing again.
        await anyio.sleep(0.5)
        assert (await registration(f))["fires"] == 1
        flag.unlink()
        await wait_registration(f, lambda t: t["signature"] is None)
        flag.write_text("go again")
        fired = await wait_registration(f, lambda t: t["fires"] == 2)
        assert fired["last_execution"] != first
        assert len(list(f.module.views())) == 2
        gone = await f.client.delete("/v1/workflows/registrations/nightly")
        assert gone.status_code == 200
        assert (await f.client.get("/v1/workflows/registrations")).json() == {
            "registrations": []}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


CRON = """\
  triggers:
    - name: two-am
      type: cron
      schedule: "0 2 * * *"
      timezone: Europe/Paris
"""


async def test_a_cron_trigger_fires_once_per_scheduled_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    clock = Clock(datetime(2024, 3, 30, 1, 59, 30, tzinfo=paris).timestamp())
    async with fleet(tmp_path, monkeypatch, clock=clock) as f:
        body = {"files": {"nightly.yaml": workflow_yaml(CRON)}, "sets": {"ROOT": str(tmp_path)}}
        answer = await f.client.post("/v1/workflows/registrations", json=body)
        assert answer.status_code == 201, answer.text
        two_am = datetime(2024, 3, 30, 2, 0, tzinfo=paris).timestamp()
        assert answer.json()["triggers"][0]["next_fire"] == two_am
        clock.now = two_am + 5
        fired = await wait_registration(f, lambda t: t["fires"] == 1)
        assert fired["last_fire"] == two_am
        assert fired["last_execution"] == "nightly-two-am-20240330T010000000Z"
        await f.wait_done(fired["last_execution"])
        # The clock stands still: rounds go on, nothing fires again.
        await anyio.sleep(0.5)
        assert (await registration(f))["fires"] == 1
        # The next night is the first in summer time: 02:00 does not exist, 03:00 CEST fires.
        clock.now = datetime(2024, 3, 31, 3, 0, 1, tzinfo=paris).timestamp()
        fired = await wait_registration(f, lambda t: t["fires"] == 2)
        assert datetime.fromtimestamp(fired["last_fire"], paris).isoformat() == \
            "2024-03-31T03:00:00+02:00"


async def registration(f: Fleet) -> dict[str, Any]:
    answer = await f.client.get("/v1/workflows/registrations")
    assert answer.status_code == 200
    [only] = answer.json()["registrations"]
    return dict(only["triggers"][0])


async def wait_registration(f: Fleet, check: Any, seconds: float = 10) -> dict[str, Any]:
    trigger: dict[str, Any] = {}
    with anyio.move_on_after(seconds):
        while True:
            trigger = await registration(f)
            if check(trigger):
                return trigger
            await anyio.sleep(0.05)
    raise AssertionError(f"the trigger never reached the expected state: {trigger}")


def checked_yaml(group_extra: str, transfer_extra: str) -> str:
    """One transfer of ``in/users.csv`` (6000 bytes) with extra settings for its group
    (``defaults``) and itself, attempted once."""
    return f"""\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: checked
spec:
  defaults:
    retry: {{maxAttempts: 1}}
  groups:
    - name: stage
      transferGroup:
        spec:
{group_extra}
          transfers:
            - name: users
              source: {{path: "${{ROOT}}/in/users.csv"}}
              destination: {{path: "${{ROOT}}/out/users.csv"}}
{transfer_extra}
"""


async def submit_yaml(f: Fleet, execution_id: str, text: str) -> dict[str, Any]:
    answer = await f.client.post("/v1/workflows/executions", json={
        "files": {"checked.yaml": text}, "sets": {"ROOT": str(f.root)}, "id": execution_id})
    assert answer.status_code == 201, answer.text
    return await f.wait_done(execution_id)


async def test_validation_defaults_become_the_jobs_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = f"""\
          defaults:
            validation:
              expectedSize: {{max: 10B}}
              checksum: {{algorithm: SHA-256, value: "{"0" * 64}"}}"""
    async with fleet(tmp_path, monkeypatch) as f:
        view = await submit_yaml(f, "run-v", checked_yaml(defaults, ""))
        assert view["status"] == "failed", view
        users = f.step(view, "users")
        assert users["status"] == "failed" and "checksum mismatch" in users["error"]
        job = f.server.state.jobs[users["job_id"]]
        assert (job.options.checksum, job.options.size_min, job.options.size_max) == (
            "sha256:" + "0" * 64, None, 10)


async def test_a_source_without_its_expected_size_fails_as_it_does_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, monkeypatch) as f:
        view = await submit_yaml(f, "run-s", checked_yaml("", "              expectedSize: 5KB"))
        assert view["status"] == "failed", view
        users = f.step(view, "users")
        assert users["status"] == "failed"
        assert "size mismatch: expected 5000 bytes" in users["error"]
        job = f.server.state.jobs[users["job_id"]]
        assert (job.options.expected_size, job.options.size_min, job.options.size_max) == (
            5000, None, None)
        right = await submit_yaml(f, "run-t", checked_yaml("", "              expectedSize: 6000"))
        assert right["status"] == "completed", right
