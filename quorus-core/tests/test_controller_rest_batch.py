"""``POST /v1/jobs/batch`` on a real controller over HTTP, under asyncio and trio: every job
of a batch is admitted as a single submission would be (checks, authorization per tenant, a
state module's quota, the idempotent id) and answered in its place; the jobs go to consensus
together; a body that does not fit is refused whole with nothing applied."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from quorus.core.auth import Principal
from quorus.core.controller import Applied, Command, ControllerState, Rejected, SubmitJob
from quorus.core.controller.results import RejectCode
from quorus.core.controller.server import ControllerServer
from quorus.core.controller.service import ControllerService
from quorus.core.testing.controller import TOKEN, running_controller

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALICE = {"Authorization": "Bearer alice-token"}


class BlueQuota:
    """At most ``limit`` jobs in tenant ``blue`` (a state module admitting inside the state
    machine, as quorus-tenant's quotas do)."""

    name = "blue-quota"
    command_types: Sequence[type[Command]] = ()

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def apply(self, command: Command, index: int, state: ControllerState) -> Any:
        return None

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None:
        if isinstance(command, SubmitJob) and command.tenant == "blue" and \
                state.job(command.job_id) is None:
            used = sum(1 for job in state.jobs.values() if job.tenant == "blue")
            if used >= self.limit:
                return Rejected(command.NAME, index, RejectCode.QUOTA_EXCEEDED,
                                f"tenant blue has {used} of {self.limit} jobs",
                                {"quota": "maxJobs", "limit": self.limit, "usage": used})
        return None

    def observe(self, command: Command, result: Applied, index: int,
                state: ControllerState) -> None:
        return None

    def snapshot(self) -> Any:
        return None

    def restore(self, data: Any) -> None:
        return None


class AliceInBlue:
    """An extension with a principal of its own: ``alice`` may act in tenant ``blue`` only.
    Every verdict is recorded, as an audit trail would."""

    name = "alice-in-blue"

    def __init__(self) -> None:
        self.verdicts: list[tuple[str, str, str | None, str | None]] = []

    def routes(self, service: ControllerService) -> Any:
        return None

    async def lead(self, leadership: Any) -> None:
        return None

    def authenticator(self, service: ControllerService) -> Any:
        class ByToken:
            def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
                if credentials.get("token") == "alice-token":
                    return Principal("alice", "api-token")
                return None

        return ByToken()

    def authorize(self, principal: Principal, action: str, tenant: str | None,
                  namespace: str | None) -> str | None:
        if principal.name == "alice" and tenant != "blue":
            return f"alice acts in tenant blue only, not {tenant}"
        return None

    def authorized(self, principal: Principal, action: str, tenant: str | None,
                   namespace: str | None, reason: str | None) -> None:
        self.verdicts.append((principal.name, action, tenant, reason))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ControllerServer, httpx.AsyncClient]]:
    async with running_controller(tmp_path / "c", extensions=[],
                                  max_request_bytes=256 * 1024) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as client:
            yield server, client


def job(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"b-{n}", "source": f"/in/{n}", "destination": f"/out/{n}", **extra}


async def test_a_batch_queues_every_job_in_order_in_few_consensus_writes(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = api
    proposals = server.group_commit.proposals
    answer = await client.post("/v1/jobs/batch",
                               json={"jobs": [job(n, priority=n) for n in range(100)]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["submitted"] == 100 and body["refused"] == 0
    assert [r["index"] for r in body["results"]] == list(range(100))
    assert {r["status"] for r in body["results"]} == {201}
    assert [r["job"]["id"] for r in body["results"]] == [f"b-{n}" for n in range(100)]
    assert body["results"][7]["job"]["priority"] == 7
    assert body["results"][7]["job"]["state"] == "queued"
    # Submission order is the batch's order.
    sequences = [server.state.jobs[f"b-{n}"].sequence for n in range(100)]
    assert sequences == sorted(sequences)
    # One batch of commands (maybe two), not a hundred consensus writes.
    assert server.group_commit.proposals - proposals <= 3
    document = (await client.get("/openapi.json")).json()
    assert "/v1/jobs/batch" in document["paths"]
    schemas = document["components"]["schemas"]
    assert {"JobBatch", "BatchAnswer", "BatchItem"} <= set(schemas)
    assert schemas["JobBatch"]["properties"]["jobs"]["maxItems"] == 1000


async def test_a_refused_job_gets_what_it_would_alone_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from quorus.core.hooks import hookimpl, new_plugin_manager

    class Plugin:
        @hookimpl
        def quorus_controller_state_modules(self) -> Sequence[Any]:
            return [BlueQuota(limit=2)]

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Plugin())
    monkeypatch.setattr("quorus.core.hooks.plugin_manager", lambda: pm)
    alice = AliceInBlue()
    items = [
        job(0, tenant="blue"),
        job(1, tenant="blue", source="relative/path"),  # not a URI: 400
        job(2, tenant="blue", affinity=["=x"]),         # a bad label selector: 400
        job(3, tenant="green"),                         # alice may not: 403
        job(4, tenant="blue"),
        job(5, tenant="blue"),                          # over the quota: 429
        job(0, tenant="blue", destination="/elsewhere"),  # id taken by another job: 409
        job(0, tenant="blue"),                          # the same job again: 201, no new one
        job(6, tenant="blue", source="http://[::1/x"),  # a broken URI: 400
    ]
    async with running_controller(tmp_path / "c", extensions=[alice]) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=ALICE, timeout=10) as client:
            answer = await client.post("/v1/jobs/batch", json={"jobs": items})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            results = body["results"]
            assert [r["status"] for r in results] == [201, 400, 400, 403, 201, 429, 409, 201,
                                                      400]
            assert body["submitted"] == 3 and body["refused"] == 6
            assert sorted(server.state.jobs) == ["b-0", "b-4"]
            assert results[7]["job"]["id"] == "b-0"
            assert results[0]["job"]["submitted_by"] == "alice"
            assert results[5]["details"] == {"quota": "maxJobs", "limit": 2, "usage": 2}
            assert all("job" not in r or r["job"] is None for r in results if r["status"] != 201)
            # Every job was authorized on its own tenant, once, as alone.
            asked = [(t, r is None) for name, action, t, r in alice.verdicts
                     if action == "jobs.submit"]
            assert asked == [("blue", True)] * 3 + [("green", False)] + [("blue", True)] * 5
            # The refusals are exactly what the same submissions get one by one.
            applied = server.state.applied_index
            for place in (1, 2, 3, 5, 6, 8):
                alone = await client.post("/v1/jobs", json=items[place])
                assert alone.status_code == results[place]["status"], place
                expected = {k: v for k, v in results[place].items()
                            if k not in ("index", "status") and v is not None}
                assert alone.json() == expected, place
            assert sorted(server.state.jobs) == ["b-0", "b-4"]
            assert server.state.applied_index >= applied


@pytest.mark.parametrize(
    ("kwargs", "status", "error", "field"),
    [
        pytest.param({"json": {"jobs": []}}, 422, "invalid-request", "body.jobs", id="empty"),
        pytest.param({"json": {"jobs": [job(n) for n in range(1001)]}}, 422,
                     "invalid-request", "body.jobs", id="over-1000-jobs"),
        pytest.param({"json": {"jobs": [job(0), {"source": "/a"}]}}, 422, "invalid-request",
                     "body.jobs.1.destination", id="a-job-without-destination"),
        pytest.param({"json": {"jobs": [job(0), {**job(1), "priority": "high"}]}}, 422,
                     "invalid-request", "body.jobs.1.priority", id="a-job-of-the-wrong-type"),
        pytest.param({"json": [job(0)]}, 422, "invalid-request", "body", id="not-an-object"),
        pytest.param({"json": {"jobs": [job(0)], "more": 1}}, 422, "invalid-request",
                     "body.more", id="unknown-field"),
        pytest.param({"content": b'{"jobs": [', "headers": {"Content-Type": "application/json"}},
                     400, "invalid-json", None, id="not-json"),
        pytest.param({"json": {"jobs": [job(n, destination="/o" * 600) for n in range(300)]}},
                     413, "too-large", None, id="over-the-body-limit"),
        pytest.param({"json": {"jobs": [job(0)]}, "headers": {"Authorization": ""}}, 401,
                     "unauthorized", None, id="no-token"),
        pytest.param({"json": {"jobs": [job(0)]}, "headers": {"Authorization": "Bearer no"}},
                     401, "unauthorized", None, id="wrong-token"),
    ],
)
async def test_a_batch_that_does_not_fit_is_refused_whole(
    api: tuple[ControllerServer, httpx.AsyncClient],
    kwargs: dict[str, Any], status: int, error: str, field: str | None,
) -> None:
    server, client = api
    before = server.state.applied_index
    answer = await client.post("/v1/jobs/batch", **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error and body["message"]
    if field is not None:
        assert field in [d["field"] for d in body["details"]], body
    assert server.state.applied_index == before
    assert dict(server.state.jobs) == {}


async def test_a_batch_retried_returns_the_same_jobs_and_queues_none_twice(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = api
    items = [job(n) for n in range(20)]
    first = await client.post("/v1/jobs/batch", json={"jobs": items})
    assert first.status_code == 200 and first.json()["submitted"] == 20
    sequences = {j: r.sequence for j, r in server.state.jobs.items()}
    # The whole batch again (its answer lost, say), then again with one job changed.
    again = await client.post("/v1/jobs/batch", json={"jobs": items})
    assert again.status_code == 200
    assert [r["job"]["id"] for r in again.json()["results"]] == [i["id"] for i in items]
    assert again.json()["submitted"] == 20
    changed = [*items[:5], {**items[5], "destination": "/somewhere/else"}, *items[6:]]
    third = (await client.post("/v1/jobs/batch", json={"jobs": changed})).json()
    assert [r["status"] for r in third["results"]] == [201] * 5 + [409] + [201] * 14
    assert third["results"][5]["error"] == "duplicate-job"
    assert {j: r.sequence for j, r in server.state.jobs.items()} == sequences
    # Jobs without an id get fresh ones, as single submissions do.
    fresh = (await client.post("/v1/jobs/batch", json={"jobs": [
        {"source": "/a", "destination": "/b"}, {"source": "/a", "destination": "/b"}]})).json()
    ids = [r["job"]["id"] for r in fresh["results"]]
    assert len(set(ids)) == 2 and all(i.startswith("job-") for i in ids)
