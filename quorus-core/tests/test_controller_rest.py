"""The REST API of a real controller on loopback (standalone consensus), over HTTP with
httpx, under asyncio and trio: the OpenAPI document, bearer tokens, submit/show/list/cancel,
agents and drain, cluster status, metrics, and clear errors for bad input with nothing
applied to the state."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from quorus.core.controller.server import ControllerServer
from quorus.core.testing.controller import (
    TOKEN,
    ScriptedAgent,
    controller_address,
    running_controller,
)
from quorus.core.testing.fixtures import payload_bytes

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[ControllerServer, httpx.AsyncClient]]:
    # Core's API alone: an installed extension's own writes (an audit trail's decision
    # batches) would change the state these tests expect untouched.
    async with running_controller(tmp_path / "c", extensions=[],
                                  max_request_bytes=4096) as server:
        base = f"http://{server.settings.listen_http}"
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as client:
            yield server, client


async def eventually_json(client: httpx.AsyncClient, path: str, check: Any) -> Any:
    for _ in range(250):
        body = (await client.get(path)).json()
        if check(body):
            return body
        await anyio.sleep(0.02)
    raise AssertionError(f"{path} never satisfied the check: {body}")


async def test_openapi_document_lists_every_path(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    _, client = api
    document = (await client.get("/openapi.json", headers={})).json()
    assert document["openapi"].startswith("3.")
    for path in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/agents",
                 "/v1/agents/{agent_id}/drain", "/v1/cluster", "/v1/cluster/members",
                 "/v1/cluster/members/{node_id}", "/v1/cluster/leader", "/healthz", "/readyz",
                 "/metrics"):
        assert path in document["paths"], path
    assert "JobSubmission" in document["components"]["schemas"]
    member = document["components"]["schemas"]["MemberBody"]
    assert member["required"] == ["node_id", "address"]
    for field in ("agents", "http"):
        assert "host:port" in member["properties"][field]["description"]
        assert member["properties"][field]["pattern"] == member["properties"]["address"][
            "pattern"]


async def test_a_job_submitted_over_rest_runs_on_an_agent(
    api: tuple[ControllerServer, httpx.AsyncClient], tmp_path: Path
) -> None:
    server, client = api
    source = tmp_path / "in.bin"
    source.write_bytes(payload_bytes(64 * 1024))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    async with anyio.create_task_group() as tg:
        agent = ScriptedAgent("agent-1", [controller_address(server)])
        tg.start_soon(agent.run)
        response = await client.post("/v1/jobs", json={
            "source": str(source), "destination": str(tmp_path / "out.bin"),
            "checksum": f"sha256:{digest}", "id": "rest-job-1",
        })
        assert response.status_code == 201, response.text
        assert response.json()["id"] == "rest-job-1"
        job = await eventually_json(client, "/v1/jobs/rest-job-1",
                                    lambda j: j["state"] == "completed")
        assert job["sha256"] == digest
        assert "source" not in job  # the real URI (credentials) is never shown
        agents = (await client.get("/v1/agents")).json()["agents"]
        assert [a["id"] for a in agents] == ["agent-1"]
        assert agents[0]["connected"] is True
        assert agents[0]["capabilities"]["protocols"] == ["file"]
        drained = await client.post("/v1/agents/agent-1/drain", json={"timeout": 5})
        assert drained.status_code == 200
        with anyio.fail_after(10):
            await agent.stopped.wait()
        gone = await eventually_json(
            client, "/v1/agents/agent-1",
            lambda a: a["state"] == "deregistered" and not a["connected"])
        assert gone["running_jobs"] == []


async def test_listing_filters_pages_and_cancel(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    _, client = api
    ids = []
    for i in range(5):
        response = await client.post("/v1/jobs", json={
            "source": f"sftp://files.example/{i}", "destination": f"/out/{i}",
            "namespace": "team-a" if i < 3 else "team-b",
        })
        ids.append(response.json()["id"])
    first = (await client.get("/v1/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in first["jobs"]] == ids[:2]
    second = (await client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}))
    assert [j["id"] for j in second.json()["jobs"]] == ids[2:4]
    team_b = (await client.get("/v1/jobs", params={"namespace": "team-b"})).json()
    assert [j["id"] for j in team_b["jobs"]] == ids[3:]
    cancelled = await client.post(f"/v1/jobs/{ids[0]}/cancel", json={"reason": "not needed"})
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    again = await client.post(f"/v1/jobs/{ids[0]}/cancel")
    assert again.status_code == 200  # cancelling twice is harmless
    listed = (await client.get("/v1/jobs", params={"state": "cancelled"})).json()
    assert [j["id"] for j in listed["jobs"]] == [ids[0]]
    waiting = await eventually_json(client, f"/v1/jobs/{ids[1]}",
                                    lambda j: j["waiting_reason"] is not None)
    assert waiting["waiting_reason"] == "no agent supports sftp"


async def test_cluster_status_health_and_metrics(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = api
    await client.post("/v1/jobs", json={"source": "/a", "destination": "/b"})
    cluster = (await client.get("/v1/cluster")).json()
    assert cluster["leader"] == server.settings.node_id
    assert cluster["backend"] == "standalone"
    assert cluster["commit_index"] >= 1
    assert cluster["jobs"]["queued"] == 1
    assert (await client.get("/healthz", headers={})).status_code == 200
    ready = await client.get("/readyz", headers={})
    assert ready.status_code == 200 and ready.json()["leading"] is True
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'quorus_jobs{state="queued"} 1.0' in metrics.text
    assert "quorus_controller_leader 1.0" in metrics.text
    assert 'quorus_event_loop_lag_seconds_bucket{le="+Inf"}' in metrics.text
    assert "quorus_event_loop_lag_seconds_sum" in metrics.text
    proposals = next(line for line in metrics.text.splitlines()
                     if line.startswith("quorus_consensus_proposals_total "))
    assert float(proposals.split()[1]) >= 1  # the submission above
    assert "quorus_consensus_proposed_commands_total" in metrics.text
    assert 'quorus_gc_pause_seconds_bucket{generation="2",le="+Inf"}' in metrics.text
    committed = next(line for line in metrics.text.splitlines()
                     if line.startswith("quorus_consensus_commit_seconds_count "))
    assert float(committed.split()[1]) >= 1
    assert "quorus_consensus_queue_seconds_bucket" in metrics.text


async def test_membership_changes_on_standalone_are_not_supported(
    api: tuple[ControllerServer, httpx.AsyncClient],
) -> None:
    server, client = api
    applied = server.state.applied_index
    added = await client.post("/v1/cluster/members",
                              json={"node_id": "c2", "address": "127.0.0.1:7402"})
    assert added.status_code == 501
    assert added.json()["error"] == "not-supported"
    assert (await client.delete("/v1/cluster/members/c2")).status_code == 501
    # With its agent and HTTP addresses: refused the same, and nothing recorded.
    recorded = await client.post("/v1/cluster/members", json={
        "node_id": "c2", "address": "127.0.0.1:7402", "agents": "127.0.0.1:7071",
        "http": "127.0.0.1:7081"})
    assert recorded.status_code == 501, recorded.text
    for bad in ({"agents": "127.0.0.1"}, {"http": "127.0.0.1:0"}, {"http": "a b:1"}):
        refused = await client.post("/v1/cluster/members", json={
            "node_id": "c2", "address": "127.0.0.1:7402", **bad})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid-request"
        assert next(iter(bad)) in refused.json()["message"]
    assert not server.state.controllers and server.state.applied_index == applied
    assert (await client.post("/v1/cluster/leader", json={"node_id": "c2"})).status_code == 501


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error"),
    [
        pytest.param("GET", "/v1/jobs", {"headers": {"Authorization": ""}}, 401,
                     "unauthorized", id="no-token"),
        pytest.param("POST", "/v1/jobs", {"headers": {"Authorization": "Bearer nope"},
                                          "json": {"source": "/a", "destination": "/b"}},
                     401, "unauthorized", id="bad-token"),
        pytest.param("GET", "/metrics", {"headers": {"Authorization": "Basic eDp5"}}, 401,
                     "unauthorized", id="not-bearer"),
        pytest.param("POST", "/v1/jobs", {"content": b"{not json",
                                          "headers": {"Content-Type": "application/json"}},
                     400, "invalid-json", id="invalid-json"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "relative/path",
                                                   "destination": "/b"}},
                     400, "invalid-request", id="relative-uri"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "http://[::1/x",
                                                   "destination": "/b"}},
                     400, "invalid-request", id="broken-uri"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "/a"}}, 422, "invalid-request",
                     id="missing-field"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "/a", "destination": "/b",
                                                   "priority": "high"}},
                     422, "invalid-request", id="wrong-type"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "/a", "destination": "/b",
                                                   "surprise": 1}},
                     422, "invalid-request", id="unknown-field"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "/a", "destination": "/b",
                                                   "affinity": ["=x"]}},
                     400, "invalid-request", id="bad-label"),
        pytest.param("POST", "/v1/jobs", {"json": {"source": "/a" * 3000, "destination": "/b"}},
                     413, "too-large", id="oversized"),
        pytest.param("GET", "/v1/jobs/nope", {}, 404, "not-found", id="unknown-job"),
        pytest.param("POST", "/v1/jobs/nope/cancel", {}, 404, "not-found", id="cancel-unknown"),
        pytest.param("POST", "/v1/agents/nope/drain", {}, 404, "not-found", id="drain-unknown"),
        pytest.param("GET", "/v1/jobs", {"params": {"cursor": "garbage!"}}, 400,
                     "invalid-request", id="bad-cursor"),
        pytest.param("GET", "/v1/jobs", {"params": {"state": "sleeping"}}, 422,
                     "invalid-request", id="bad-state"),
        pytest.param("GET", "/v1/nowhere", {}, 404, "not-found", id="unknown-path"),
    ],
)
async def test_bad_requests_get_clear_errors_and_change_nothing(
    api: tuple[ControllerServer, httpx.AsyncClient],
    method: str, path: str, kwargs: dict[str, Any], status: int, error: str,
) -> None:
    server, client = api
    before = server.state.applied_index
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["message"]
    assert server.state.applied_index == before
    assert dict(server.state.jobs) == {}
