"""Workflow registrations are fenced by tenant on a real in-process controller with the tenant,
access and workflow extensions: a principal sees, unregisters and replaces only registrations
it may read (``workflows.read`` in their tenant and namespace); another tenant's registration
does not exist for it, its file names and trigger paths included.

Tenants ``default`` and ``acme-finance`` (namespace ``etl``); erin is transfer-user on
acme-finance namespace etl only, frank viewer on acme-finance."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from quorus.core.controller.extension import ControllerExtension
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant import plugin
from quorus.tenant.access import AccessExtension
from quorus.tenant.routes import TenantExtension
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TENANTS = """\
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata:
  name: acme-finance
spec: {}
---
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata:
  name: acme-finance-etl
  tenant: acme-finance
  namespace: etl
spec: {}
"""
#: principal: (tenant, namespace, role)
ROLES = {"erin": ("acme-finance", "etl", "transfer-user"),
         "frank": ("acme-finance", None, "viewer")}


def registered(name: str, tenant: str | None, namespace: str | None, flag: str) -> str:
    place = "".join(f"  {key}: {value}\n" for key, value in
                    (("tenant", tenant), ("namespace", namespace)) if value)
    return f"""\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: {name}
{place}spec:
  groups:
    - name: only
      transferGroup:
        spec:
          transfers:
            - name: a
              source: {{path: /data/in/{name}.bin}}
              destination: {{path: /data/out/{name}.bin}}
  triggers:
    - name: nightly
      type: cron
      schedule: "0 2 * * *"
    - name: flag
      type: fileSystem
      path: {flag}
"""


class WorkflowState:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [WorkflowStateModule()]


@dataclass
class Fleet:
    server: ControllerServer
    admin: httpx.AsyncClient
    as_: dict[str, httpx.AsyncClient]

    @property
    def workflows(self) -> WorkflowStateModule:
        found = self.server.state.modules["workflow"]
        assert isinstance(found, WorkflowStateModule)
        return found


@pytest.fixture
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    manager.register(WorkflowState())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    extensions: list[ControllerExtension] = [
        TenantExtension(), AccessExtension(), WorkflowExtension(actions={})]
    async with running_controller(tmp_path / "c", extensions=extensions) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as admin:
            applied = await admin.put("/v1/tenants", json={"yaml": TENANTS})
            assert applied.status_code == 200, applied.text
            clients: dict[str, httpx.AsyncClient] = {}
            for name, (tenant, namespace, role) in ROLES.items():
                created = await admin.post("/v1/principals",
                                           json={"name": name, "tenant": tenant})
                assert created.status_code == 201, created.text
                bound = await admin.post(f"/v1/principals/{name}/roles", json={
                    "role": role, "tenant": tenant, "namespace": namespace})
                assert bound.status_code == 200, bound.text
                issued = await admin.post(f"/v1/principals/{name}/tokens", json={})
                assert issued.status_code == 201, issued.text
                clients[name] = httpx.AsyncClient(
                    base_url=base, timeout=30,
                    headers={"Authorization": f"Bearer {issued.json()['token']}"})
            try:
                yield Fleet(server, admin, clients)
            finally:
                for client in clients.values():
                    await client.aclose()


async def register(client: httpx.AsyncClient, text: str, file: str,
                   name: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"files": {file: text}}
    if name is not None:
        body["name"] = name
    return await client.post("/v1/workflows/registrations", json=body)


def names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(r["name"] for r in answer.json()["registrations"])


async def test_registrations_of_other_tenants_do_not_exist_for_a_principal(
    fleet: Fleet,
) -> None:
    erin, frank = fleet.as_["erin"], fleet.as_["frank"]
    secret = await register(fleet.admin, registered("payroll-export", None, None,
                                                     "/srv/flags/payroll-ready"),
                            "payroll-secret.yaml")
    assert secret.status_code == 201, secret.text
    assert secret.json()["tenant"] == "default"
    own = await register(erin, registered("etl-nightly", "acme-finance", "etl",
                                          "/srv/flags/etl-ready"), "etl.yaml")
    assert own.status_code == 201, own.text
    assert own.json()["namespace"] == "etl"

    assert names(await fleet.admin.get("/v1/workflows/registrations")) == [
        "etl-nightly", "payroll-export"]
    listed = await erin.get("/v1/workflows/registrations")
    assert names(listed) == ["etl-nightly"]
    for leak in ("payroll", "/srv/flags/payroll-ready", "default"):
        assert leak not in listed.text, leak
    assert names(await frank.get("/v1/workflows/registrations",
                                 params={"consistent": "false"})) == ["etl-nightly"]

    # Another tenant's registration cannot be unregistered, nor told from a missing one.
    for who in (erin, frank):
        gone = await who.delete("/v1/workflows/registrations/payroll-export")
        missing = await who.delete("/v1/workflows/registrations/no-such-thing")
        assert gone.status_code == missing.status_code == 404
        assert gone.json()["message"] == "no registered workflow 'payroll-export'"
    # Nor replaced by registering one of one's own under its name.
    taken = await register(erin, registered("etl-nightly", "acme-finance", "etl",
                                            "/srv/flags/other"), "etl.yaml",
                           name="payroll-export")
    assert taken.status_code == 409, taken.text
    assert taken.json()["message"] == ("the registration name 'payroll-export' is taken: "
                                       "give another name in the request")
    kept = fleet.workflows.registration("payroll-export")
    assert kept is not None and kept.command.tenant == "default"
    assert sorted(kept.command.files) == ["payroll-secret.yaml"]

    # Within its tenant a viewer reads but may not unregister; erin may.
    refused = await frank.delete("/v1/workflows/registrations/etl-nightly")
    assert refused.status_code == 403 and "workflows.register" in refused.json()["message"]
    assert (await erin.delete("/v1/workflows/registrations/etl-nightly")).json() == {
        "unregistered": "etl-nightly"}
    assert names(await fleet.admin.get("/v1/workflows/registrations")) == ["payroll-export"]
