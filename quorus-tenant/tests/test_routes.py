"""The ``/v1/tenants`` routes and quota enforcement on a real in-process controller: apply,
list, tree, show, suspend (403 for submissions), delete, effective configuration, usage and
reports; quota refusals as 429 with details; a storm of concurrent submissions that never gets
past a quota."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.controller.commands import (
    AssignJob,
    CancelJob,
    CompleteAttempt,
    FailAttempt,
    RegisterAgent,
    SubmitJob,
)
from quorus.core.controller.model import AgentCapabilities, JobState
from quorus.core.controller.server import ControllerServer
from quorus.core.testing.controller import TOKEN, running_controller
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.routes import TenantExtension
from quorus.tenant.state import TenantStateModule

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio
pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DATA = Path(__file__).parent / "data"


def doc(name: str, parent: str | None = None, **quotas: Any) -> str:
    written = "".join(f"\n      {k}: {v}" for k, v in quotas.items())
    return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: {name}\n"
            f"spec:\n  hierarchy:\n    parent: {parent or 'null'}\n  resources:\n"
            f"    quotas:{written or ' {}'}\n")


@pytest.fixture
async def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> AsyncIterator[tuple[ControllerServer, httpx.AsyncClient]]:
    from quorus.core.hooks import new_plugin_manager
    from quorus.tenant import plugin

    manager = new_plugin_manager(load_entry_points=False)
    manager.register(plugin)
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: manager)
    async with running_controller(tmp_path / "c", extensions=[TenantExtension()]) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30) as client:
            yield server, client


def module(server: ControllerServer) -> TenantStateModule:
    found = server.state.modules["tenant"]
    assert isinstance(found, TenantStateModule)
    return found


async def apply(client: httpx.AsyncClient, *docs: str) -> httpx.Response:
    return await client.put("/v1/tenants", json={"yaml": "---\n".join(docs)})


async def submit(client: httpx.AsyncClient, tenant: str, **extra: Any) -> httpx.Response:
    return await client.post("/v1/jobs", json={
        "source": f"/data/tenants/{tenant}/a", "destination": f"/data/tenants/{tenant}/b",
        "tenant": tenant, **extra})


async def test_tenants_are_applied_listed_shown_and_deleted(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    answer = await client.put("/v1/tenants", json={
        "yaml": (DATA / "acme-corp.yaml").read_text() + "---\n"
        + (DATA / "departments.yaml").read_text(), "file": "acme.yaml"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == ["acme-corp", "acme-corp-finance", "acme-corp-hr",
                                        "payroll-team"]
    listed = (await client.get("/v1/tenants")).json()["tenants"]
    assert [t["id"] for t in listed] == ["acme-corp", "acme-corp-finance", "acme-corp-hr",
                                         "payroll-team"]
    tree = (await client.get("/v1/tenants/tree")).json()["tree"]
    assert [(n["id"], [c["id"] for c in n["children"]]) for n in tree] == [
        ("acme-corp", ["acme-corp-finance", "acme-corp-hr"])]
    assert tree[0]["children"][0]["children"][0]["id"] == "payroll-team"
    shown = (await client.get("/v1/tenants/acme-corp-finance")).json()
    assert shown["quotas"]["maxConcurrentTransfers"] == 10
    assert shown["children"] == ["payroll-team"]
    assert shown["namespaces"] == ["finance", "payroll"]
    effective = (await client.get("/v1/tenants/acme-corp-finance/effective-config",
                                  params={"namespace": "payroll"})).json()
    values = {v["path"]: (v["value"], v["source"]) for v in effective["values"]}
    assert values["defaults.retry.backoff"] == ("fixed", "namespace payroll")
    assert values["defaults.retry.maxAttempts"] == (5, "tenant acme-corp-finance")
    missing = await client.get("/v1/tenants/acme-corp/effective-config",
                               params={"namespace": "nope"})
    assert missing.status_code == 404
    refused = await client.delete("/v1/tenants/acme-corp")
    assert refused.status_code == 409
    assert "has children (acme-corp-finance, acme-corp-hr)" in refused.json()["message"]
    assert (await client.delete("/v1/tenants/payroll-team")).json()["status"] == "deleted"
    assert (await client.get("/v1/tenants/payroll-team")).status_code == 404
    assert "payroll-team" not in module(server).tenants


async def test_invalid_configuration_is_a_400_with_every_problem_and_nothing_applied(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    answer = await apply(client, doc("a", "c"), doc("b", "a"), doc("c", "b"),
                         doc("d", "ghost"))
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid-tenant-configuration"
    assert body["problems"] == [
        "tenant 'd': parent 'ghost' does not exist: apply the parent's TenantConfiguration "
        "first or in the same file",
        "tenants form a cycle: a → c → b → a: a tenant cannot be its own ancestor"]
    assert module(server).tenants == {}
    assert (await apply(client, doc("company", maxConcurrentTransfers=5,
                                    maxStorageUsage="1GB"))).status_code == 200
    before = dict(module(server).tenants)
    above = await apply(client, doc("team", "company", maxConcurrentTransfers=6),
                        doc("other", "company", maxStorageUsage="2GB"))
    assert above.status_code == 400
    assert above.json()["problems"] == [
        "tenant 'other': quota maxStorageUsage 2000000000 bytes (1.9 GiB) is above its parent "
        "'company''s 1000000000 bytes (953.7 MiB): lower it to at most 1000000000",
        "tenant 'team': quota maxConcurrentTransfers 6 is above its parent 'company''s 5: "
        "lower it to at most 5"]
    assert module(server).tenants == before  # neither child applied


async def test_quota_refusals_are_429_and_a_suspended_tenant_403(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    _, client = controller
    assert (await apply(client, doc("company", maxConcurrentTransfers=1),
                        doc("team", "company"))).status_code == 200
    assert (await submit(client, "team")).status_code == 201
    over = await submit(client, "team")
    assert over.status_code == 429
    body = over.json()
    assert body["error"] == "quota-exceeded"
    assert body["details"] == {"quota": "maxConcurrentTransfers", "limit": 1, "usage": 1,
                               "tenant": "company"}
    assert "tenant company runs 1 of its 1 concurrent transfers" in body["message"]
    unknown = await submit(client, "ghost")
    assert unknown.status_code == 403
    assert "no tenant ghost: apply its TenantConfiguration" in unknown.json()["message"]
    suspended = await client.post("/v1/tenants/company/suspend", json={"reason": "unpaid"})
    assert suspended.json() == {"tenant": "company", "message": "", "status": "suspended"}
    denied = await submit(client, "team")
    assert denied.status_code == 403
    assert denied.json()["error"] == "admission-denied"
    assert "tenant team belongs to company, which is suspended" in denied.json()["message"]
    assert (await client.post("/v1/tenants/company/activate")).json()["status"] == "active"
    assert (await submit(client, "default")).status_code == 201
    usage = (await client.get("/v1/tenants/company/usage", params={"period": "month"})).json()
    assert usage["usage"]["submitted"] == 1 and usage["running"] == 1
    assert usage["period"] == time.strftime("%Y-%m", time.gmtime())
    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = await client.get("/v1/tenants/company/report",
                              params={"from": today, "to": today, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["tenant"], r["submitted"]) for r in rows] == [("company", "1"), ("team", "1")]
    backwards = await client.get("/v1/tenants/company/report",
                                 params={"from": today, "to": "2000-01-01"})
    assert backwards.status_code == 400


async def test_a_submission_storm_never_gets_past_a_quota(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    assert (await apply(client, doc("storm", maxConcurrentTransfers=5,
                                    maxDailyTransfers=50))).status_code == 200
    outcomes: dict[int, int] = {}
    reasons: dict[str, int] = {}

    async def storm(tasks: int, each: int) -> None:
        async def one_task() -> None:
            for _ in range(each):
                answer = await submit(client, "storm")
                outcomes[answer.status_code] = outcomes.get(answer.status_code, 0) + 1
                if answer.status_code == 429:
                    quota = answer.json()["details"]["quota"]
                    reasons[quota] = reasons.get(quota, 0) + 1

        async with anyio.create_task_group() as tg:
            for _ in range(tasks):
                tg.start_soon(one_task)

    await storm(20, 10)
    assert outcomes == {201: 5, 429: 195}
    assert reasons == {"maxConcurrentTransfers": 195}
    # Room for every job at once: the daily quota bounds the rest.
    assert (await apply(client, doc("storm", maxConcurrentTransfers=500,
                                    maxDailyTransfers=50))).status_code == 200
    outcomes.clear()
    reasons.clear()
    await storm(20, 10)
    assert outcomes == {201: 45, 429: 155}
    assert reasons == {"maxDailyTransfers": 155}
    jobs = [j for j in server.state.jobs.values() if j.tenant == "storm"]
    assert len(jobs) == 50 and all(j.state is JobState.QUEUED for j in jobs)
    ledger = module(server).ledger
    assert ledger.running == {"storm": 50}
    assert ledger.usage("storm", time.strftime("%Y-%m-%d", time.gmtime())).submitted == 50


async def test_storage_usage_rolls_up_is_released_and_shown(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    propose = server.service.propose
    assert (await apply(client, doc("company", maxStorageUsage=1000), doc("team", "company"),
                        doc("other", "company"))).status_code == 200
    await propose(RegisterAgent("a1", time.time(), capabilities=AgentCapabilities(
        protocols=("file",), max_concurrent=10)))

    async def job(tenant: str, size: int) -> str:
        answer = await submit(client, tenant, expected_size=size)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    written = await job("team", 600)
    await propose(AssignJob(written, "a1", 1, time.time()))
    await propose(CompleteAttempt(written, "a1", 1, time.time(), 600, "0" * 64))
    # What team wrote counts against the company's storage, for every tenant below it.
    over = await submit(client, "other", expected_size=401)
    assert over.status_code == 429
    assert over.json()["details"] == {"quota": "maxStorageUsage", "limit": 1000,
                                      "usage": 600, "tenant": "company"}
    # A reservation is released when its job fails or is cancelled.
    failing = await job("other", 400)
    assert (await submit(client, "team", expected_size=1)).status_code == 429
    await propose(AssignJob(failing, "a1", 1, time.time()))
    await propose(FailAttempt(failing, "a1", 1, time.time(), "disk full", False))
    cancelled = await job("team", 400)
    assert (await submit(client, "other", expected_size=1)).status_code == 429
    await propose(CancelJob(cancelled, time.time()))
    assert (await client.get("/v1/tenants/company/usage")).json()["reserved_bytes"] == 0

    for tenant, stored in (("company", 600), ("team", 600), ("other", 0)):
        usage = (await client.get(f"/v1/tenants/{tenant}/usage")).json()
        assert usage["stored_bytes"] == stored, tenant
        assert (await client.get(f"/v1/tenants/{tenant}")).json()["stored_bytes"] == stored
    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = (await client.get("/v1/tenants/company/report",
                               params={"from": today, "to": today})).json()
    assert {r["tenant"]: (r["submitted"], r["completed"], r["failed"], r["cancelled"],
                          r["bytes"]) for r in report["rows"]} == {
        "company": (3, 1, 1, 1, 600), "team": (2, 1, 0, 1, 600), "other": (1, 0, 1, 0, 0)}


async def test_usage_of_a_given_day_or_month(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    assert (await apply(client, doc("company"), doc("team", "company"))).status_code == 200
    march_31 = 1_743_422_400.0  # 2025-03-31 12:00 UTC
    for n, at in enumerate((march_31, march_31, march_31 + 86400)):
        await server.service.propose(SubmitJob.new(
            "/data/tenants/team/a", f"/data/tenants/team/b{n}", job_id=f"old-{n}", at=at,
            tenant="team"))

    async def submitted(period: str) -> int:
        answer = await client.get("/v1/tenants/company/usage", params={"period": period})
        assert answer.status_code == 200, answer.text
        assert answer.json()["period"] == period
        return int(answer.json()["usage"]["submitted"])

    assert [await submitted(p) for p in ("2025-03-31", "2025-04-01", "2025-03", "2025-04",
                                         "2025-02")] == [2, 1, 2, 1, 0]
    for bad, status in (("2025-13", 400), ("2025-02-30", 400), ("yesterday", 422)):
        answer = await client.get("/v1/tenants/company/usage", params={"period": bad})
        assert answer.status_code == status, (bad, answer.text)
    assert "invalid period '2025-13'" in (await client.get(
        "/v1/tenants/company/usage", params={"period": "2025-13"})).json()["message"]


async def test_a_batch_never_gets_past_a_quota(
    controller: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = controller
    assert (await apply(client, doc("company", maxConcurrentTransfers=7),
                        doc("team", "company", maxConcurrentTransfers=5),
                        doc("other", "company"))).status_code == 200

    def jobs(tenant: str, count: int) -> list[dict[str, Any]]:
        return [{"source": f"/data/tenants/{tenant}/a",
                 "destination": f"/data/tenants/{tenant}/b", "tenant": tenant}] * count

    async def batches(*parts: list[dict[str, Any]]) -> list[int]:
        """Four batches of the same jobs at once."""
        body = {"jobs": [job for part in parts for job in part]}
        statuses: list[int] = []

        async def one() -> None:
            done = await client.post("/v1/jobs/batch", json=body)
            assert done.status_code == 200, done.text
            statuses.extend(r["status"] for r in done.json()["results"])

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(one)
        return statuses

    statuses = await batches(jobs("team", 10), jobs("other", 10))
    assert statuses.count(201) == 7 and statuses.count(429) == 73
    # Whichever batch is applied first: its team jobs come first, 5 by the team's own quota,
    # then 2 of other's by the company's; nothing of the later batches fits.
    assert module(server).ledger.running == {"company": 7, "team": 5, "other": 2}
    unfinished = [j for j in server.state.jobs.values() if not j.state.terminal]
    assert len(unfinished) == 7
