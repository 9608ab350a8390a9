"""The workflow REST routes and the CLI's client helpers against a real controller (no
agents: jobs stay queued): definitions with problems answered 400 with every issue and never
proposed, unknown ids 404, listing newest first with a status filter, refused changes 409."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.cli.client import ControllerClient, ControllerError
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.secrets import Secret
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule, client

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORKFLOW = """\
apiVersion: quorus.dev/v1
kind: Transfer
metadata:
  name: copy-one
spec:
  source: {path: /data/in/a.bin}
  destination: {path: /data/out/a.bin}
"""
CRON = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: hourly
spec:
  groups:
    - name: only
      transferGroup:
        spec:
          transfers:
            - name: a
              source: {path: /data/in/a.bin}
              destination: {path: /data/out/a.bin}
  triggers:
    - name: every-hour
      type: cron
      schedule: "0 * * * *"
"""


class StatePlugin:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [WorkflowStateModule()]


@asynccontextmanager
async def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[tuple[httpx.AsyncClient, WorkflowStateModule, str]]:
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(StatePlugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    async with running_controller(tmp_path / "c", extensions=[WorkflowExtension(actions={})]
                                  ) as server:
        module = server.state.modules["workflow"]
        assert isinstance(module, WorkflowStateModule)
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as http:
            yield http, module, base


async def test_definitions_with_problems_are_answered_400_and_never_proposed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with controller(tmp_path, monkeypatch) as (http, module, _):
        broken = WORKFLOW.replace("destination:", "destinaton:")
        answer = await http.post("/v1/workflows/executions",
                                 json={"files": {"copy.yaml": broken}, "id": "bad"})
        assert answer.status_code == 400
        body = answer.json()
        assert body["error"] == "invalid-workflow"
        assert any(i.startswith("copy.yaml:7:3: spec") for i in body["issues"]), body
        assert "destinaton" in body["message"]
        answer = await http.post("/v1/workflows/executions",
                                 json={"files": {"copy.yaml": WORKFLOW}, "workflow": "other"})
        assert answer.status_code == 400 and answer.json()["issues"] == []
        assert "no workflow, group or transfer named 'other'" in answer.json()["message"]
        answer = await http.post("/v1/workflows/registrations",
                                 json={"files": {"copy.yaml": WORKFLOW}})
        assert answer.status_code == 400 and "has no triggers" in answer.json()["message"]
        assert list(module.views()) == [] and module.registrations() == []
        assert (await http.get("/v1/workflows/executions/bad")).status_code == 404
        assert (await http.post("/v1/workflows/executions/bad/pause")).status_code == 404
        assert (await http.delete("/v1/workflows/registrations/nope")).status_code == 404
        assert (await http.post("/v1/workflows/executions", json={"files": {}})
                ).status_code == 422


async def test_listing_is_newest_first_and_filters_by_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with controller(tmp_path, monkeypatch) as (http, module, _):
        for execution_id in ("older", "newer"):
            answer = await http.post("/v1/workflows/executions",
                                     json={"files": {"copy.yaml": WORKFLOW}, "id": execution_id})
            assert answer.status_code == 201, answer.text
            await anyio.sleep(0.01)  # distinct start times order the listing
        answer = await http.post("/v1/workflows/executions/older/cancel", json={})
        assert answer.status_code == 200
        await ended(module, "older")
        listing = (await http.get("/v1/workflows/executions")).json()["executions"]
        assert [e["execution_id"] for e in listing] == ["newer", "older"]
        running = (await http.get("/v1/workflows/executions",
                                  params={"status": "running"})).json()["executions"]
        assert [e["execution_id"] for e in running] == ["newer"]
        first = (await http.get("/v1/workflows/executions", params={"limit": 1})).json()
        assert [e["execution_id"] for e in first["executions"]] == ["newer"]


async def test_the_cli_helpers_drive_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with controller(tmp_path, monkeypatch) as (_, module, base):
        api = ControllerClient([base], Secret(TOKEN))

        def calls() -> dict[str, Any]:
            with api:
                submitted = client.submit(api, {"copy.yaml": WORKFLOW}, execution_id="one")
                again = client.submit(api, {"copy.yaml": WORKFLOW}, execution_id="one")
                paused = client.pause(api, "one")
                resumed = client.resume(api, "one")
                listed = client.list_executions(api)
                cancelled = client.cancel(api, "one", "enough")
                registered = client.register(api, {"hourly.yaml": CRON}, name="hourly-copy")
                registrations = client.list_registrations(api)
                try:
                    client.submit(api, {"copy.yaml": "kind: ["})
                except ControllerError as exc:
                    refused: Any = exc
                unregistered = client.unregister(api, "hourly-copy")
                return locals()

        found = await anyio.to_thread.run_sync(calls)
        assert found["submitted"]["execution_id"] == found["again"]["execution_id"] == "one"
        assert found["paused"]["status"] == "paused" and found["resumed"]["status"] == "running"
        assert [e["execution_id"] for e in found["listed"]] == ["one"]
        assert found["registered"]["name"] == "hourly-copy"
        assert found["registered"]["triggers"][0]["next_fire"] is not None
        assert [r["name"] for r in found["registrations"]] == ["hourly-copy"]
        assert found["refused"].code == "invalid-workflow" and found["refused"].status == 400
        assert "copy.yaml:2:1" in str(found["refused"])
        assert found["unregistered"] == {"unregistered": "hourly-copy"}
        assert module.registrations() == []
        await ended(module, "one")


async def ended(module: WorkflowStateModule, execution_id: str) -> None:
    """Until the execution is cancelled (its queued job cancelled), at most 10 s."""
    with anyio.fail_after(10):
        while True:
            if (module.view(execution_id) or {}).get("status") == "cancelled":
                return
            await anyio.sleep(0.05)
