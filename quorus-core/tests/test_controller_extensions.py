"""Controller extensions: routes behind the controller's token, a leader task started once the
controller leads and able to propose and watch changes, restarted when it fails; and the hook
that contributes them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import APIRouter, Request
from quorus.core.controller import Leadership, SubmitJob
from quorus.core.controller.server import installed_extensions
from quorus.core.controller.service import ControllerService
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Echo:
    """Serves ``/v1/echo``; while leading, submits one job per start and counts the changes
    it sees. Its first start fails, to show the controller restarts it."""

    name = "echo"

    def __init__(self) -> None:
        self.starts = 0
        self.changes = 0
        self.submitted: list[str] = []
        self.leading = anyio.Event()

    def routes(self, service: ControllerService) -> Any:
        router = APIRouter()

        @router.get("/v1/echo")
        async def echo(request: Request) -> dict[str, Any]:
            return {"principal": request.state.principal.name,
                    "jobs": len(service.state.jobs), "starts": self.starts}

        return router

    async def lead(self, leadership: Leadership) -> None:
        self.starts += 1
        if self.starts == 1:
            raise RuntimeError("first start fails on purpose")
        change = leadership.next_change()
        job_id = f"echo-{self.starts}"
        await leadership.propose(SubmitJob.new("/src", "/dst", job_id=job_id, at=1.0))
        with anyio.fail_after(5):
            await change.wait()
        self.changes += 1
        self.submitted.append(job_id)
        self.leading.set()
        await anyio.sleep_forever()


async def test_extension_routes_need_the_token_and_its_leader_task_proposes(
    tmp_path: Path,
) -> None:
    extension = Echo()
    async with running_controller(tmp_path / "c", extensions=[extension]) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/v1/echo")).status_code == 401
            assert (await client.get("/v1/echo", headers={"Authorization": "Bearer no"})
                    ).status_code == 401
            with anyio.fail_after(10):
                await extension.leading.wait()
            assert extension.submitted == ["echo-2"]
            body = (await client.get("/v1/echo", headers=AUTH)).json()
            assert body["jobs"] == 1 and body["starts"] == 2
            assert body["principal"]
            assert extension.changes == 1
            assert "echo-2" in server.state.jobs
            document = (await client.get("/openapi.json")).json()
            assert "/v1/echo" in document["paths"]


class Plugin:
    @hookimpl
    def quorus_controller_extensions(self) -> Sequence[Any]:
        return [Echo()]


def test_hook_contributes_extensions(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    found = installed_extensions()
    assert [e.name for e in found] == ["echo"]


async def test_state_module_is_found_by_type_or_named_as_missing(tmp_path: Path) -> None:
    from quorus.core.controller.service import NotSupported

    class Missing:
        name = "missing"

    async with running_controller(tmp_path / "c", extensions=[]) as server:
        with pytest.raises(NotSupported, match="no missing module: install quorus-missing"):
            server.service.state_module(Missing, "quorus-missing")
