"""The audit trail on a real in-process controller: records for submissions, cancels and tenant
changes; decisions (allowed, and denied by a tiny test extension) written by the leader in
batches; ``/v1/audit/export`` and ``/v1/audit/verify`` and ``quorus audit export|verify``;
an edited record detected through both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result
from quorus.core.auth import Principal
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.service import ControllerService
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.audit import AuditRecord, find_break, read_lines
from quorus.tenant.auditlog import AuditExtension, AuditStateModule
from quorus.tenant.auditlog.cli import audit
from quorus.tenant.routes import TenantExtension

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
TENANTS = "---\n".join(
    f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: {name}\n"
    "spec:\n  hierarchy:\n    parent: null\n" for name in ("acme", "beta", "gamma"))


class Gate:
    """Denies reading tenant ``beta`` and reading ``gamma``'s audit trail; allows the rest."""

    name = "gate"

    def routes(self, service: ControllerService) -> Any:
        return None

    async def lead(self, leadership: Any) -> None:
        return None

    def authorize(self, principal: Principal, action: str, tenant: str | None,
                  namespace: str | None) -> str | None:
        if action == "tenants.read" and tenant == "beta":
            return "beta is closed for reading"
        if action == "audit.read" and tenant == "gamma":
            return "gamma's trail is sealed"
        return None


@pytest.fixture
async def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[tuple[ControllerServer, httpx.AsyncClient]]:
    from quorus.core.hooks import new_plugin_manager
    from quorus.tenant import plugin

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    # The gate is asked first: the controller tells the audit extension every final verdict,
    # so a denial by an extension asked before it is recorded too.
    extensions: list[Any] = [Gate(), AuditExtension(flush_interval=0.02), TenantExtension()]
    async with running_controller(tmp_path / "c", extensions=extensions) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
            yield server, client


def module(server: ControllerServer) -> AuditStateModule:
    found = server.state.modules["audit"]
    assert isinstance(found, AuditStateModule)
    return found


def actions(server: ControllerServer, tenant: str) -> list[tuple[str, str, str]]:
    chain = module(server).chain(tenant)
    return [] if chain is None else [(r.action, r.target, r.outcome) for r in chain]


async def recorded(server: ControllerServer, tenant: str, entry: tuple[str, str, str]) -> None:
    """Wait until the leader has written ``entry`` (decisions are written in batches)."""
    with anyio.fail_after(10):
        while True:
            if entry in actions(server, tenant):
                return
            await anyio.sleep(0.01)


async def populate(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/tenants", json={"yaml": TENANTS})).status_code == 200
    submitted = await client.post("/v1/jobs", json={
        "id": "j1", "source": "/data/tenants/acme/a", "destination": "/data/tenants/acme/b",
        "tenant": "acme"})
    assert submitted.status_code == 201, submitted.text
    assert (await client.post("/v1/jobs/j1/cancel")).status_code == 200
    assert (await client.post("/v1/tenants/beta/suspend",
                              json={"reason": "review"})).status_code == 200


async def test_changes_and_decisions_are_recorded_and_exported(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    await populate(client)
    denied = await client.get("/v1/tenants/beta")
    assert denied.status_code == 403
    await recorded(server, "beta", ("tenants.read", "beta", "denied"))
    await recorded(server, "acme", ("jobs.submit", "default", "allowed"))
    assert [a for a in actions(server, "acme") if a[2] == "applied"] == [
        ("tenant.applied", "acme", "applied"), ("job.submitted", "j1", "applied"),
        ("job.cancelled", "j1", "applied")]
    assert ("tenant.suspended", "beta", "applied") in actions(server, "beta")
    # Every change names who asked for it, not just the controller that applied it.
    issuers = {(r.action, r.actor) for t in ("acme", "beta") for r in module(server).chain(t) or ()
               if r.outcome == "applied"}
    assert {("job.cancelled", "token-holder"), ("tenant.suspended", "token-holder")} <= issuers
    denial = next(r for r in module(server).chain("beta") or () if r.outcome == "denied")
    assert denial.actor == "token-holder"  # the controller token's principal
    assert denial.detail["reason"] == "beta is closed for reading"

    exported = await client.get("/v1/audit/export", params={"tenant": "acme"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    records = list(read_lines(exported.text.splitlines()))
    assert find_break(records) is None
    assert [r.sequence for r in records] == list(range(1, len(records) + 1))
    assert {"job.submitted", "job.cancelled", "jobs.submit"} <= {r.action for r in records}

    cutoff = next(r.at for r in records if r.action == "job.cancelled")
    later = await client.get("/v1/audit/export", params={"tenant": "acme",
                                                         "from": str(cutoff)})
    kept = list(read_lines(later.text.splitlines()))
    assert kept and all(r.at >= cutoff for r in kept)
    assert len(kept) < len(records)
    assert (await client.get("/v1/audit/export", params={"tenant": "acme", "from": "2026-13-01"}
                             )).status_code == 400

    verified = (await client.get("/v1/audit/verify", params={"tenant": "acme"})).json()
    chain = module(server).chain("acme")
    assert chain is not None
    assert verified["ok"] is True and verified["broken_at"] is None
    assert verified["records"] >= len(records) and verified["first"] == 1
    nobody = (await client.get("/v1/audit/verify", params={"tenant": "nobody"})).json()
    assert nobody["ok"] is True and nobody["records"] == 0
    # Reading a trail is itself on the record, written a moment later: the only records a
    # tenant nobody acted on may hold are those reads.
    unknown = list(read_lines(
        (await client.get("/v1/audit/export", params={"tenant": "nobody"})).text.splitlines()))
    assert {(r.action, r.actor, r.outcome) for r in unknown} <= {
        ("audit.read", "token-holder", "allowed")}


async def test_reading_a_trail_asks_audit_read_in_its_tenant(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    await populate(client)
    for path in ("/v1/audit/export", "/v1/audit/verify"):
        sealed = await client.get(path, params={"tenant": "gamma"})
        assert sealed.status_code == 403
        assert "gamma's trail is sealed" in sealed.json()["message"]
    await recorded(server, "gamma", ("audit.read", "gamma", "denied"))
    assert (await client.get("/v1/audit/verify", params={"tenant": "*"})).status_code == 200


async def test_an_edited_record_is_reported_by_rest_and_cli(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    await populate(client)
    chain = module(server).chain("acme")
    assert chain is not None
    where = ["--controller", f"http://{server.settings.listen_http}", "--token", TOKEN]
    intact = await cli("verify", "--tenant", "acme", *where)
    assert intact.exit_code == 0, intact.output
    assert "records intact (1.." in intact.output
    original: AuditRecord = chain._records[1]
    chain._records[1] = AuditRecord.from_data({**original.to_data(), "actor": "mallory"})
    answer = (await client.get("/v1/audit/verify", params={"tenant": "acme"})).json()
    assert answer["ok"] is False and answer["broken_at"] == 2
    assert "record 2 was altered" in answer["reason"]
    broken = await cli("verify", "--tenant", "acme", *where)
    assert broken.exit_code == 1
    assert broken.output.startswith("acme: broken at record 2:")
    as_json = await cli("verify", "--tenant", "acme", "--json", *where)
    assert as_json.exit_code == 1 and json.loads(as_json.output)["broken_at"] == 2


async def test_cli_export_writes_json_lines_to_a_file_or_stdout(
    controller: tuple[ControllerServer, httpx.AsyncClient], tmp_path: Path,
) -> None:
    server, client = controller
    await populate(client)
    where = ["--controller", f"http://{server.settings.listen_http}", "--token", TOKEN]
    target = tmp_path / "acme.jsonl"
    written = await cli("export", "--tenant", "acme", "--output", str(target), *where)
    assert written.exit_code == 0, written.output
    records = list(read_lines(target.read_text().splitlines()))
    assert find_break(records) is None
    assert f"{len(records)} records written to {target}" in written.output
    assert not (tmp_path / "acme.jsonl.partial").exists()
    cutoff = records[-1].at
    shown = await cli("export", "--tenant", "acme", "--from", str(cutoff), *where)
    assert shown.exit_code == 0
    tail = list(read_lines(shown.output.splitlines()))
    assert tail and all(r.at >= cutoff for r in tail)
    before = await cli("export", "--tenant", "acme", "--to", str(cutoff), *where)
    assert before.exit_code == 0
    head = list(read_lines(before.output.splitlines()))
    assert head and all(r.at < cutoff for r in head)
    assert len(head) + len(tail) >= len(records)
    refused = await cli("export", "--tenant", "gamma", "--output", str(tmp_path / "g"),
                        *where)
    assert refused.exit_code == 1 and "sealed" in refused.output
    assert not (tmp_path / "g").exists() and not (tmp_path / "g.partial").exists()
    nowhere = await cli("export", "--tenant", "acme", "--controller", "http://127.0.0.1:9",
                        "--token", TOKEN)
    assert nowhere.exit_code == 1 and "no controller answered" in nowhere.output


async def cli(*args: str) -> Result:
    def invoke(arguments: Sequence[str]) -> Result:
        return CliRunner().invoke(audit, list(arguments))

    return await anyio.to_thread.run_sync(invoke, list(args))
