"""Data-sharing agreements on a real in-process controller with the tenant, access, sharing and
workflow extensions: ``/v1/agreements`` (record, list, show, revoke) behind administrator
rights over both tenants and read rights over one; ``quorus agreement``; and the system
design's multi-tenant workflow refused without its agreement, accepted with it, refused again
once it is revoked or expired — submitted, or fired by a trigger of a registration, whose
refusal is recorded while the registration stays.

Tenants: enterprise with its child acme-corp; partner-corp (an outside partner) and globex
alone. ``ent`` is transfer-admin on enterprise (so on acme-corp) and on partner-corp,
``acme`` transfer-admin on acme-corp only, ``viewer`` viewer on partner-corp, ``outsider``
viewer on globex, ``alice`` transfer-user on enterprise and partner-corp."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result
from quorus.core.controller.extension import ControllerExtension
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant import plugin
from quorus.tenant.access import AccessExtension
from quorus.tenant.auditlog import AuditStateModule
from quorus.tenant.routes import TenantExtension
from quorus.tenant.sharing import SharingExtension, SharingStateModule
from quorus.tenant.sharing.cli import agreement
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROLES = {"ent": [("enterprise", "transfer-admin"), ("partner-corp", "transfer-admin")],
         "acme": [("acme-corp", "transfer-admin")], "viewer": [("partner-corp", "viewer")],
         "outsider": [("globex", "viewer")],
         "alice": [("enterprise", "transfer-user"), ("partner-corp", "transfer-user")]}
WORKFLOW = (DATA / "cross-tenant-data-sync.yaml").read_text()
DSA = {"id": "DSA-2024-001", "provider": "acme-corp", "recipient": "partner-corp",
       "purpose": "customer sync", "classification": "internal"}


class WorkflowState:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [WorkflowStateModule()]


@dataclass
class Fleet:
    server: ControllerServer
    admin: httpx.AsyncClient
    as_: dict[str, httpx.AsyncClient]
    root: Path

    @property
    def base(self) -> str:
        return f"http://{self.server.settings.listen_http}"

    @property
    def sharing(self) -> SharingStateModule:
        found = self.server.state.modules["sharing"]
        assert isinstance(found, SharingStateModule)
        return found

    def audit(self, tenant: str) -> list[tuple[str, str, str]]:
        found = self.server.state.modules["audit"]
        assert isinstance(found, AuditStateModule)
        chain = found.chain(tenant)
        return [] if chain is None else [(r.actor, r.action, r.target) for r in chain]

    async def submit(self, execution_id: str, who: str = "alice") -> httpx.Response:
        return await self.as_[who].post("/v1/workflows/executions", json={
            "files": {"sync.yaml": WORKFLOW}, "sets": {"ROOT": str(self.root)},
            "id": execution_id})


@pytest.fixture
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    manager.register(WorkflowState())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    extensions: list[ControllerExtension] = [
        TenantExtension(), AccessExtension(), SharingExtension(),
        WorkflowExtension(actions={}, file_check_interval=0.05)]
    async with running_controller(tmp_path / "c", extensions=extensions) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as admin:
            applied = await admin.put("/v1/tenants", json={
                "yaml": (DATA / "enterprise-tenants.yaml").read_text()})
            assert applied.status_code == 200, applied.text
            clients: dict[str, httpx.AsyncClient] = {}
            for name, bindings in ROLES.items():
                created = await admin.post("/v1/principals", json={"name": name,
                                                                   "tenant": bindings[0][0]})
                assert created.status_code == 201, created.text
                for tenant, role in bindings:
                    bound = await admin.post(f"/v1/principals/{name}/roles",
                                             json={"role": role, "tenant": tenant})
                    assert bound.status_code == 200, bound.text
                issued = await admin.post(f"/v1/principals/{name}/tokens", json={})
                assert issued.status_code == 201, issued.text
                clients[name] = httpx.AsyncClient(
                    base_url=base, timeout=30,
                    headers={"Authorization": f"Bearer {issued.json()['token']}"})
            try:
                yield Fleet(server, admin, clients, tmp_path)
            finally:
                for client in clients.values():
                    await client.aclose()


async def test_agreements_are_recorded_by_administrators_of_both_tenants(fleet: Fleet) -> None:
    one_side = await fleet.as_["acme"].post("/v1/agreements", json=DSA)
    assert one_side.status_code == 403
    assert "tenants.admin" in one_side.json()["message"]
    assert fleet.sharing.agreements == {}

    before = time.time()
    recorded = await fleet.as_["ent"].post("/v1/agreements", json=DSA)
    assert recorded.status_code == 201, recorded.text
    view = recorded.json()
    assert {k: view[k] for k in ("id", "provider", "recipient", "mutual", "status",
                                 "recorded_by", "purpose", "classification", "expires_at",
                                 "revoked_at")} == {
        **DSA, "mutual": False, "status": "active", "recorded_by": "ent", "expires_at": None,
        "revoked_at": None}
    assert before <= view["valid_from"] == view["recorded_at"] <= time.time()
    assert view["valid_from_iso"].endswith("Z")
    again = await fleet.as_["ent"].post("/v1/agreements", json=DSA)
    assert again.status_code == 201 and again.json() == view
    other = await fleet.as_["ent"].post("/v1/agreements", json={**DSA, "mutual": True})
    assert other.status_code == 409
    assert "recorded already with other terms" in other.json()["message"]
    for name in ("acme-corp", "partner-corp"):
        assert ("ent", "agreement.recorded", "DSA-2024-001") in fleet.audit(name)


@pytest.mark.parametrize(("body", "message"), [
    ({"recipient": "acme-corp"}, "names tenant acme-corp twice"),
    ({"recipient": "initech"}, "no tenant 'initech' (recipient)"),
    ({"valid_from": "2026-02-01", "expires_at": "2026-01-31T12:00:00Z"},
     "expires (1769860800.0) before it starts (1769904000.0)"),
    ({"expires_at": "next week"}, "invalid expires_at 'next week'"),
])
async def test_bad_agreements_are_answered_400_with_the_reason(
        fleet: Fleet, body: dict[str, Any], message: str) -> None:
    answer = await fleet.admin.post("/v1/agreements", json={**DSA, **body})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["message"]
    assert fleet.sharing.agreements == {}


async def test_agreements_are_listed_to_readers_of_one_of_their_tenants(fleet: Fleet) -> None:
    for body in (DSA, {"id": "DSA-2024-002", "provider": "globex", "recipient": "enterprise",
                       "mutual": True, "valid_from": 1.0, "expires_at": 2.0}):
        assert (await fleet.admin.post("/v1/agreements", json=body)).status_code == 201

    async def ids(who: str, **params: str) -> list[str]:
        answer = await fleet.as_[who].get("/v1/agreements", params=params)
        assert answer.status_code == 200, answer.text
        return [a["id"] for a in answer.json()["agreements"]]

    assert await ids("viewer") == ["DSA-2024-001"]
    assert await ids("outsider") == ["DSA-2024-002"]
    assert await ids("ent") == ["DSA-2024-001", "DSA-2024-002"]
    assert await ids("ent", tenant="globex") == ["DSA-2024-002"]
    assert await ids("ent", status="expired") == ["DSA-2024-002"]
    assert await ids("ent", status="revoked") == []
    hidden = await fleet.as_["outsider"].get("/v1/agreements/DSA-2024-001")
    assert hidden.status_code == 404
    shown = await fleet.as_["viewer"].get("/v1/agreements/DSA-2024-001")
    assert shown.status_code == 200 and shown.json()["status"] == "active"
    assert (await fleet.admin.get("/v1/agreements/DSA-404")).status_code == 404


async def test_revoking_needs_both_tenants_and_is_recorded(fleet: Fleet) -> None:
    assert (await fleet.admin.post("/v1/agreements", json=DSA)).status_code == 201
    assert (await fleet.as_["viewer"].post("/v1/agreements/DSA-2024-001/revoke")
            ).status_code == 403
    assert (await fleet.as_["acme"].post("/v1/agreements/DSA-2024-001/revoke")
            ).status_code == 403
    assert (await fleet.as_["outsider"].post("/v1/agreements/DSA-2024-001/revoke")
            ).status_code == 404
    revoked = await fleet.as_["ent"].post("/v1/agreements/DSA-2024-001/revoke",
                                          json={"reason": "contract ended"})
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["status"], revoked.json()["revoked_by"],
            revoked.json()["revoke_reason"]) == ("revoked", "ent", "contract ended")
    again = await fleet.as_["ent"].post("/v1/agreements/DSA-2024-001/revoke")
    assert again.status_code == 200 and "revoked already" in again.json()["message"]
    assert again.json()["revoke_reason"] == "contract ended"
    assert (await fleet.admin.post("/v1/agreements/DSA-404/revoke")).status_code == 404
    for name in ("acme-corp", "partner-corp"):
        assert [a for a in fleet.audit(name) if a[1] == "agreement.revoked"] == [
            ("ent", "agreement.revoked", "DSA-2024-001")]


async def test_the_design_workflow_runs_only_under_its_agreement(fleet: Fleet) -> None:
    refused = await fleet.submit("sync-1")
    assert refused.status_code == 403, refused.text
    assert refused.json() == {
        "error": "admission-denied",
        "message": "cross-tenant workflow of tenant enterprise refused: data of tenant "
                   "acme-corp may reach tenant partner-corp, which needs a data-sharing "
                   "agreement: agreement DSA-2024-001 is not recorded"}
    assert (await fleet.admin.get("/v1/workflows/executions/sync-1")).status_code == 404

    assert (await fleet.admin.post("/v1/agreements", json=DSA)).status_code == 201
    accepted = await fleet.submit("sync-1")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["submitted_tenant"] == "enterprise"

    assert (await fleet.admin.post("/v1/agreements/DSA-2024-001/revoke")).status_code == 200
    revoked = await fleet.submit("sync-2")
    assert revoked.status_code == 403 and "DSA-2024-001 was revoked at" in \
        revoked.json()["message"]
    # An expired agreement under a new id does not help either: the workflow names the old.
    expired = {**DSA, "id": "DSA-2023-007", "valid_from": "2023-01-01",
               "expires_at": "2024-01-01"}
    assert (await fleet.admin.post("/v1/agreements", json=expired)).status_code == 201
    named = await fleet.as_["alice"].post("/v1/workflows/executions", json={
        "files": {"sync.yaml": WORKFLOW.replace('["DSA-2024-001"]', '["DSA-2023-007"]')},
        "sets": {"ROOT": str(fleet.root)}, "id": "sync-3"})
    assert named.status_code == 403 and ("agreement DSA-2023-007 expired at "
                                         "2024-01-01T00:00:00Z") in named.json()["message"]


async def test_a_trigger_fire_after_the_agreement_was_revoked_is_refused_and_recorded(
        fleet: Fleet) -> None:
    flag = fleet.root / "flags" / "ready"
    flag.parent.mkdir()
    text = WORKFLOW + (f"  triggers:\n    - name: ready\n      type: fileSystem\n"
                       f"      path: {flag}\n")
    body = {"files": {"sync.yaml": text}, "sets": {"ROOT": str(fleet.root)}}
    refused = await fleet.as_["alice"].post("/v1/workflows/registrations", json=body)
    assert refused.status_code == 403 and "DSA-2024-001 is not recorded" in \
        refused.json()["message"]
    assert (await fleet.admin.post("/v1/agreements", json=DSA)).status_code == 201
    registered = await fleet.as_["alice"].post("/v1/workflows/registrations", json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["reach"]["agreements"] == ["DSA-2024-001"]
    assert (await fleet.admin.post("/v1/agreements/DSA-2024-001/revoke",
                                   json={"reason": "audit"})).status_code == 200

    flag.write_text("go")
    trigger: dict[str, Any] = {}
    with anyio.fail_after(10):
        while not trigger.get("refusals"):
            await anyio.sleep(0.05)
            answer = await fleet.admin.get("/v1/workflows/registrations")
            trigger = answer.json()["registrations"][0]["triggers"][0]
    assert trigger["fires"] == 0 and trigger["last_execution"] is None
    assert "DSA-2024-001 was revoked at" in trigger["last_refusal"]
    assert "(audit)" in trigger["last_refusal"]
    assert ("trigger cross-tenant-data-sync/ready", "workflow.trigger-refused",
            "cross-tenant-data-sync") in fleet.audit("enterprise")
    # The flag stays: the refused fire is spent, not proposed again; the driver goes on.
    await anyio.sleep(0.4)
    answer = await fleet.admin.get("/v1/workflows/registrations")
    [kept] = answer.json()["registrations"]
    assert kept["triggers"][0]["refusals"] == 1
    assert list(fleet.server.state.modules["workflow"].views()) == []  # type: ignore[attr-defined]


async def test_the_agreement_commands_over_the_rest_api(fleet: Fleet) -> None:
    where = ["--controller", fleet.base, "--token", TOKEN]

    async def run(*args: str) -> Result:
        def invoke(arguments: Sequence[str]) -> Result:
            return CliRunner().invoke(agreement, [*arguments, *where])

        return await anyio.to_thread.run_sync(invoke, list(args))

    recorded = await run("record", "DSA-2024-001", "--provider", "acme-corp", "--recipient",
                         "partner-corp", "--purpose", "customer sync", "--valid-from",
                         "2024-01-01", "--expires", "2124-01-01T00:00:00Z")
    assert recorded.exit_code == 0, recorded.output
    assert recorded.output.strip() == ("recorded agreement DSA-2024-001: acme-corp -> "
                                       "partner-corp, active")
    mutual = await run("record", "DSA-2024-002", "--provider", "globex", "--recipient",
                       "enterprise", "--mutual", "--valid-from", "4102444800")
    assert mutual.output.strip() == ("recorded agreement DSA-2024-002: globex <-> enterprise, "
                                     "pending")
    bad = await run("record", "DSA-3", "--provider", "globex", "--recipient", "globex")
    assert bad.exit_code != 0 and "names tenant globex twice" in bad.output

    listed = await run("list", "--tenant", "partner-corp")
    assert listed.output.splitlines() == [
        "DSA-2024-001  acme-corp -> partner-corp  active  from 2024-01-01T00:00:00Z  to "
        "2124-01-01T00:00:00Z"]
    pending = await run("list", "--status", "pending", "--json")
    assert pending.exit_code == 0 and '"id": "DSA-2024-002"' in pending.output

    revoked = await run("revoke", "DSA-2024-001", "--reason", "contract ended")
    assert revoked.output.strip() == "revoked agreement DSA-2024-001 (acme-corp -> partner-corp)"
    shown = await run("show", "DSA-2024-001")
    lines = shown.output.splitlines()
    assert lines[0].startswith("DSA-2024-001  acme-corp -> partner-corp  revoked  from "
                               "2024-01-01T00:00:00Z")
    assert lines[1].startswith("  recorded ") and lines[1].endswith(" by token-holder")
    assert lines[2] == "  purpose: customer sync"
    assert lines[3].startswith("  revoked ") and \
        lines[3].endswith(" by token-holder: contract ended")
    missing = await run("show", "DSA-404")
    assert missing.exit_code != 0 and "no agreement 'DSA-404'" in missing.output


def test_the_plugin_contributes_the_sharing_module_extension_and_commands() -> None:
    modules = plugin.quorus_controller_state_modules()
    extensions = plugin.quorus_controller_extensions()
    assert [m.name for m in modules if isinstance(m, SharingStateModule)] == ["sharing"]
    assert [e.name for e in extensions if isinstance(e, SharingExtension)] == ["sharing"]
    assert agreement in plugin.quorus_cli_commands()
    assert sorted(agreement.commands) == ["list", "record", "revoke", "show"]
