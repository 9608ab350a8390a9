"""Tenant isolation on every endpoint of a real in-process controller with the tenant, access
and workflow extensions: principals with API tokens act within their role bindings only,
another tenant's records do not exist for them, cluster actions need a global administrator,
and a refused request applies nothing. Expired, revoked and deleted principals' tokens are
refused with 401.

Tenants ``acme`` (children ``acme-finance``, ``acme-hr``) and ``globex``; alice is
transfer-user on acme-finance, bob viewer on acme, carol transfer-admin on globex, root
transfer-admin everywhere (``*``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from quorus.core.controller.commands import RegisterAgent
from quorus.core.controller.extension import ControllerExtension
from quorus.core.controller.model import AgentState, JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.hooks import hookimpl, new_plugin_manager
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant import plugin
from quorus.tenant.access import AccessExtension, AccessStateModule
from quorus.tenant.model import TenantStatus
from quorus.tenant.routes import TenantExtension
from quorus.tenant.state import TenantStateModule
from quorus.workflow.controller import WorkflowExtension, WorkflowStateModule

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROLES = {"alice": ("acme-finance", "transfer-user"), "bob": ("acme", "viewer"),
         "carol": ("globex", "transfer-admin"), "root": ("*", "transfer-admin")}
HOME = {"alice": "acme-finance", "bob": "acme", "carol": "globex", "root": "default"}


def tenant_doc(name: str, parent: str | None = None) -> str:
    return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: {name}\n"
            f"spec:\n  hierarchy:\n    parent: {parent or 'null'}\n")


def transfer_doc(name: str, tenant: str) -> str:
    return (f"apiVersion: quorus.dev/v1\nkind: Transfer\nmetadata:\n  name: {name}\n"
            f"  tenant: {tenant}\nspec:\n  source: {{path: /data/in/{name}}}\n"
            f"  destination: {{path: /data/out/{name}}}\n")


class MovableClock:
    """The access extension's time, moved by the test (token expiry)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class WorkflowState:
    @hookimpl
    def quorus_controller_state_modules(self) -> Sequence[Any]:
        return [WorkflowStateModule()]


@dataclass
class Fleet:
    server: ControllerServer
    clock: MovableClock
    admin: httpx.AsyncClient
    #: Each principal's client, with a token issued through the API.
    as_: dict[str, httpx.AsyncClient]
    token_ids: dict[str, str]

    @property
    def access(self) -> AccessStateModule:
        found = self.server.state.modules["access"]
        assert isinstance(found, AccessStateModule)
        return found


@pytest.fixture
async def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fleet]:
    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    manager.register(WorkflowState())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    clock = MovableClock()
    extensions: list[ControllerExtension] = [
        TenantExtension(), AccessExtension(clock=clock), WorkflowExtension(actions={})]
    async with running_controller(tmp_path / "c", extensions=extensions) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as admin:
            applied = await admin.put("/v1/tenants", json={"yaml": "---\n".join([
                tenant_doc("acme"), tenant_doc("acme-finance", "acme"),
                tenant_doc("acme-hr", "acme"), tenant_doc("globex")])})
            assert applied.status_code == 200, applied.text
            clients: dict[str, httpx.AsyncClient] = {}
            token_ids: dict[str, str] = {}
            for name, (tenant, role) in ROLES.items():
                created = await admin.post("/v1/principals",
                                           json={"name": name, "tenant": HOME[name]})
                assert created.status_code == 201, created.text
                bound = await admin.post(f"/v1/principals/{name}/roles",
                                         json={"role": role, "tenant": tenant})
                assert bound.status_code == 200, bound.text
                issued = await admin.post(f"/v1/principals/{name}/tokens", json={})
                assert issued.status_code == 201, issued.text
                token_ids[name] = issued.json()["token_id"]
                clients[name] = httpx.AsyncClient(
                    base_url=base, timeout=30,
                    headers={"Authorization": f"Bearer {issued.json()['token']}"})
            try:
                yield Fleet(server, clock, admin, clients, token_ids)
            finally:
                for client in clients.values():
                    await client.aclose()


async def submit(client: httpx.AsyncClient, job_id: str, tenant: str) -> httpx.Response:
    return await client.post("/v1/jobs", json={
        "id": job_id, "source": f"/data/tenants/{tenant}/a",
        "destination": f"/data/tenants/{tenant}/b/{job_id}", "tenant": tenant})


async def test_jobs_agents_cluster_and_metrics_are_fenced_by_tenant(fleet: Fleet) -> None:
    alice, bob, carol, root = (fleet.as_[n] for n in ("alice", "bob", "carol", "root"))
    state = fleet.server.state
    assert (await submit(fleet.admin, "hr-1", "acme-hr")).status_code == 201
    assert (await submit(fleet.admin, "gx-1", "globex")).status_code == 201

    mine = await submit(alice, "fin-1", "acme-finance")
    assert mine.status_code == 201, mine.text
    assert mine.json()["submitted_by"] == "alice"
    for job_id, tenant in (("fin-2", "acme-hr"), ("fin-3", "globex")):
        refused = await submit(alice, job_id, tenant)
        assert refused.status_code == 403
        assert refused.json()["message"] == (
            f"alice may not jobs.submit: principal 'alice' has no role in tenant {tenant!r} "
            "namespace 'default': jobs.submit is refused")
        assert state.job(job_id) is None

    listed = (await bob.get("/v1/jobs")).json()["jobs"]
    assert sorted(j["id"] for j in listed) == ["fin-1", "hr-1"]
    assert (await bob.get("/v1/jobs/fin-1")).status_code == 200
    denied = await submit(bob, "bob-1", "acme")
    assert denied.status_code == 403
    assert ("principal 'bob' is viewer in tenant 'acme' namespace 'default', which does not "
            "allow jobs.submit: it needs transfer-user") in denied.json()["message"]
    assert state.job("bob-1") is None
    cancel = await bob.post("/v1/jobs/fin-1/cancel")
    assert cancel.status_code == 403 and "jobs.cancel" in cancel.json()["message"]

    assert [j["id"] for j in (await carol.get("/v1/jobs")).json()["jobs"]] == ["gx-1"]
    assert (await carol.get("/v1/jobs", params={"tenant": "acme-finance"})).json()["jobs"] == []
    for answer in (await carol.get("/v1/jobs/fin-1"), await carol.post("/v1/jobs/fin-1/cancel"),
                   await alice.get("/v1/jobs/hr-1"), await alice.post("/v1/jobs/gx-1/cancel")):
        assert answer.status_code == 404
        assert answer.json()["message"].startswith("no job")
    assert {j.id: j.state for j in state.jobs.values()} == {
        "hr-1": JobState.QUEUED, "gx-1": JobState.QUEUED, "fin-1": JobState.QUEUED}
    assert (await alice.post("/v1/jobs/fin-1/cancel")).status_code == 200

    await fleet.server.service.propose(RegisterAgent("acme-agent", fleet.clock(),
                                                     tenant="acme"))
    await fleet.server.service.propose(RegisterAgent("globex-agent", fleet.clock(),
                                                     tenant="globex"))

    def agents(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return sorted(a["id"] for a in answer.json()["agents"])

    assert agents(await fleet.admin.get("/v1/agents")) == ["acme-agent", "globex-agent"]
    assert agents(await bob.get("/v1/agents")) == ["acme-agent"]
    assert agents(await carol.get("/v1/agents")) == ["globex-agent"]
    assert agents(await alice.get("/v1/agents")) == []  # no role in acme itself
    assert (await carol.get("/v1/agents/acme-agent")).status_code == 404
    drain = await bob.post("/v1/agents/acme-agent/drain")
    assert drain.status_code == 403 and "agents.drain" in drain.json()["message"]
    assert (await carol.post("/v1/agents/acme-agent/drain")).status_code == 404
    drained = state.agent("acme-agent")
    assert drained is not None and drained.state is not AgentState.DRAINING

    cluster_calls = [("GET", "/v1/cluster", None),
                     ("POST", "/v1/cluster/members",
                      {"node_id": "c9", "address": "127.0.0.1:1"}),
                     ("POST", "/v1/cluster/leader", {"node_id": "c9"})]
    for who in (alice, bob, carol):
        for method, path, body in cluster_calls:
            answer = await who.request(method, path, json=body)
            assert answer.status_code == 403, (path, answer.text)
            assert "needs a global transfer-admin binding (tenant '*')" in \
                answer.json()["message"]
    # Metrics: a tenant's principals scrape their tenants' series, and nothing else.
    scraped = {name: (await who.get("/metrics")) for name, who in
               (("alice", alice), ("bob", bob), ("carol", carol), ("root", root))}
    assert all(answer.status_code == 200 for answer in scraped.values())

    def tenants_in(name: str) -> set[str]:
        return {line.split('tenant="', 1)[1].split('"', 1)[0]
                for line in scraped[name].text.splitlines()
                if line.startswith("quorus_tenant_jobs{")}

    assert tenants_in("alice") == {"acme-finance"}
    assert tenants_in("bob") == {"acme-finance", "acme-hr"}
    assert tenants_in("carol") == {"globex"}
    assert tenants_in("root") == {"acme-finance", "acme-hr", "globex"}
    assert "quorus_controller_applied_index" not in scraped["carol"].text
    assert "quorus_controller_applied_index" in scraped["root"].text
    created = await fleet.admin.post("/v1/principals", json={"name": "dave", "tenant": "acme"})
    assert created.status_code == 201
    issued = await fleet.admin.post("/v1/principals/dave/tokens", json={})
    nobody = await fleet.admin.get("/metrics", headers={
        "Authorization": f"Bearer {issued.json()['token']}"})
    assert nobody.status_code == 403 and "metrics.read" in nobody.json()["message"]
    assert (await root.get("/v1/cluster")).status_code == 200
    assert [j["id"] for j in (await root.get("/v1/jobs")).json()["jobs"]] == [
        "hr-1", "gx-1", "fin-1"]


async def test_workflows_tenants_usage_and_principals_are_fenced_by_tenant(
    fleet: Fleet,
) -> None:
    alice, bob, carol = (fleet.as_[n] for n in ("alice", "bob", "carol"))

    async def run(client: httpx.AsyncClient, execution_id: str, tenant: str
                  ) -> httpx.Response:
        return await client.post("/v1/workflows/executions", json={
            "id": execution_id, "files": {"t.yaml": transfer_doc(execution_id, tenant)}})

    assert (await run(alice, "fin-run", "acme-finance")).status_code == 201
    assert (await run(carol, "gx-run", "globex")).status_code == 201
    refused = await run(alice, "stray-run", "globex")
    assert refused.status_code == 403 and "workflows.submit" in refused.json()["message"]
    workflows = fleet.server.state.modules["workflow"]
    assert isinstance(workflows, WorkflowStateModule)
    assert workflows.view("stray-run") is None

    def executions(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return sorted(e["execution_id"] for e in answer.json()["executions"])

    assert executions(await carol.get("/v1/workflows/executions")) == ["gx-run"]
    assert executions(await bob.get("/v1/workflows/executions")) == ["fin-run"]
    assert (await carol.get("/v1/workflows/executions/fin-run")).status_code == 404
    assert (await carol.post("/v1/workflows/executions/fin-run/cancel")).status_code == 404
    paused = await bob.post("/v1/workflows/executions/fin-run/pause")
    assert paused.status_code == 403 and "workflows.control" in paused.json()["message"]

    def tenants(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [t["id"] for t in answer.json()["tenants"]]

    assert tenants(await bob.get("/v1/tenants")) == ["acme", "acme-finance", "acme-hr"]
    assert tenants(await alice.get("/v1/tenants")) == ["acme-finance"]
    assert tenants(await carol.get("/v1/tenants")) == ["globex"]
    tree = (await alice.get("/v1/tenants/tree")).json()["tree"]
    assert [n["id"] for n in tree] == ["acme-finance"]
    for path in ("/v1/tenants/globex", "/v1/tenants/globex/usage",
                 "/v1/tenants/globex/report?from=2026-01-01&to=2026-01-02",
                 "/v1/tenants/globex/effective-config"):
        answer = await bob.get(path)
        assert answer.status_code == 403, (path, answer.text)
        assert "principal 'bob' has no role in tenant 'globex'" in answer.json()["message"]
    assert (await alice.get("/v1/tenants/acme-hr/usage")).status_code == 403
    assert (await alice.get("/v1/tenants/acme-finance/usage")).status_code == 200
    suspend = await carol.post("/v1/tenants/acme/suspend", json={"reason": "hostile"})
    assert suspend.status_code == 403
    tenant_module = fleet.server.state.modules["tenant"]
    assert isinstance(tenant_module, TenantStateModule)
    assert tenant_module.tenants["acme"].status is TenantStatus.ACTIVE

    access = fleet.access
    before = access.snapshot()
    assert (await carol.get("/v1/principals/alice")).status_code == 404
    assert [p["name"] for p in (await carol.get("/v1/principals")).json()["principals"]] == [
        "carol"]
    own = await alice.get("/v1/principals/alice")
    assert own.status_code == 403 and "principals.admin" in own.json()["message"]
    for method, path, body in [
        ("POST", "/v1/principals", {"name": "mallory", "tenant": "acme"}),
        ("POST", "/v1/principals/carol/roles", {"role": "transfer-admin", "tenant": "acme"}),
        ("POST", "/v1/principals/carol/roles", {"role": "transfer-admin", "tenant": "*"}),
        ("POST", "/v1/principals/alice/tokens", {}),
        ("DELETE", "/v1/principals/alice", None),
    ]:
        answer = await carol.request(method, path, json=body)
        assert answer.status_code in (403, 404), (path, answer.text)
    escalate = await bob.post("/v1/principals/bob/roles",
                              json={"role": "transfer-admin", "tenant": "acme"})
    assert escalate.status_code == 403
    unknown = await fleet.admin.post("/v1/principals/alice/roles",
                                     json={"role": "owner", "tenant": "acme"})
    assert unknown.status_code == 400
    assert ("unknown role 'owner' for principal 'alice': use one of viewer, transfer-user, "
            "transfer-admin") in unknown.json()["message"]
    ghost = await fleet.admin.post("/v1/principals/alice/roles",
                                   json={"role": "viewer", "tenant": "ghost"})
    assert ghost.status_code == 400 and "no tenant 'ghost'" in ghost.json()["message"]
    assert access.snapshot() == before  # nothing a refused request asked for was applied

    # carol administers globex: she manages its principals, no others.
    made = await carol.post("/v1/principals", json={"name": "gx-bot", "tenant": "globex",
                                                    "kind": "service-account"})
    assert made.status_code == 201 and made.json()["kind"] == "service-account"
    bound = await carol.post("/v1/principals/gx-bot/roles",
                             json={"role": "transfer-user", "tenant": "globex"})
    assert bound.json()["roles"] == [{"role": "transfer-user", "tenant": "globex",
                                      "namespace": None}]


async def test_expired_revoked_and_deleted_principals_tokens_are_refused(fleet: Fleet) -> None:
    admin, access = fleet.admin, fleet.access
    short = await admin.post("/v1/principals/alice/tokens", json={"ttl_seconds": 60})
    assert short.status_code == 201
    text = short.json()["token"]
    assert text.startswith("qrs_") and short.json()["expires_at"] == fleet.clock.now + 60
    record = access.tokens[short.json()["token_id"]]
    assert text not in repr(access.snapshot()) and record.secret_sha256 not in \
        (await admin.get("/v1/principals/alice")).text
    with_short = {"Authorization": f"Bearer {text}"}
    assert (await fleet.as_["alice"].get("/v1/jobs", headers=with_short)).status_code == 200
    fleet.clock.now += 61
    expired = await fleet.as_["alice"].get("/v1/jobs", headers=with_short)
    assert expired.status_code == 401
    assert "of 'alice' expired: ask an administrator for a new one" in \
        expired.json()["message"]
    shown = (await admin.get("/v1/principals/alice")).json()["tokens"]
    assert {t["token_id"]: t["expired"] for t in shown} == {
        fleet.token_ids["alice"]: False, record.token_id: True}

    assert (await fleet.as_["bob"].get("/v1/jobs")).status_code == 200
    revoked = await admin.delete(f"/v1/principals/bob/tokens/{fleet.token_ids['bob']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = await fleet.as_["bob"].get("/v1/jobs")
    assert refused.status_code == 401 and "of 'bob' was revoked" in refused.json()["message"]
    assert (await admin.delete("/v1/principals/bob/tokens/0000000000000000")).status_code == 404
    # alice may not revoke carol's token: carol's principal does not exist for her.
    stray = await fleet.as_["alice"].delete(
        f"/v1/principals/carol/tokens/{fleet.token_ids['carol']}")
    assert stray.status_code == 404
    assert not access.tokens[fleet.token_ids["carol"]].revoked

    assert (await fleet.as_["carol"].get("/v1/jobs")).status_code == 200
    assert (await admin.delete("/v1/principals/carol")).json() == {"deleted": "carol"}
    gone = await fleet.as_["carol"].get("/v1/jobs")
    assert gone.status_code == 401
    assert gone.json()["message"].endswith("or its principal was deleted")
    assert "carol" not in access.principals
    assert all(b.principal != "carol" for b in access.bindings)
    unbound = await admin.request("DELETE", "/v1/principals/alice/roles",
                                  json={"role": "transfer-user", "tenant": "acme-finance"})
    assert unbound.status_code == 200 and unbound.json()["roles"] == []
    nothing = await fleet.as_["alice"].get("/v1/jobs")
    assert nothing.status_code == 200 and nothing.json()["jobs"] == []


async def test_a_batch_is_authorized_job_by_job(fleet: Fleet) -> None:
    jobs = [{"id": f"b-{tenant}", "source": f"/data/tenants/{tenant}/a",
             "destination": f"/data/tenants/{tenant}/b", "tenant": tenant}
            for tenant in ("acme-finance", "globex", "acme-hr", "acme-finance")]
    jobs[3]["id"] = "b-acme-finance-2"
    answer = await fleet.as_["alice"].post("/v1/jobs/batch", json={"jobs": jobs})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 403, 403, 201]
    assert "principal 'alice' has no role in tenant 'globex'" in results[1]["message"]
    assert sorted(fleet.server.state.jobs) == ["b-acme-finance", "b-acme-finance-2"]
    viewer = await fleet.as_["bob"].post("/v1/jobs/batch", json={"jobs": jobs[:1]})
    assert [r["status"] for r in viewer.json()["results"]] == [403]
