"""The controller's HTTP/JSON API, with its OpenAPI 3 document at ``/openapi.json``.

Built on FastAPI: it derives the OpenAPI document and the request validation from the same
typed models, and runs on Starlette, which is written against anyio, so the API is served by
hypercorn under asyncio and trio alike, like the rest of the controller.

Every path but ``/healthz``, ``/readyz`` and the OpenAPI document (which holds no data)
needs ``Authorization: Bearer TOKEN``. Errors are JSON ``{"error": CODE, "message": TEXT}``:
400 invalid JSON, URI, filter or cursor; 401 missing or wrong token; 404 unknown job, agent
or path; 409 a command the state refuses (``error`` is the rejection code); 413 a body over
the limit; 422 a body that is JSON but not the expected shape; 501 what the consensus backend
cannot do; 503 no leader, no quorum, or a leader that does not answer. Writes (and
linearizable reads) sent to a controller that does not lead are forwarded to the leader over
HTTP with the caller's token, once (a forwarded request is never forwarded again), and the
leader's answer is returned as it is. Nothing is applied to the state when a request is
refused.
"""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from pydantic import BaseModel, ConfigDict, Field
from quorus.core.auth import Principal
from quorus.core.controller.model import AgentState, JobState
from quorus.core.controller.probes import GC_PAUSES
from quorus.core.controller.results import RejectCode
from quorus.core.controller.service import (
    CommandRefused,
    Forbidden,
    InvalidRequest,
    LeaderElsewhere,
    NotSupported,
    ResourceNotFound,
    ServiceError,
    Unavailable,
    page_json,
)
from quorus.core.controller.submissions import (
    ID_PATTERN,
    BatchAnswer,
    JobBatch,
    JobSubmission,
    submit_batch,
)
from quorus.core.errors import InvalidURIError
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from quorus.core.controller.server import ControllerServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ID = ID_PATTERN


# -- request bodies ------------------------------------------------------------------------------


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="cancelled on request", max_length=1024)


class DrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float | None = Field(default=None, ge=0, le=86_400)


_ADDRESS = r"^[^\s:]+:[0-9]{1,5}$"


class MemberBody(BaseModel):
    """A controller to add: its Raft ``address``; its ``agents`` and ``http`` addresses,
    when given, are replicated so every controller can redirect agents and forward writes to
    it without its own settings naming it."""

    model_config = ConfigDict(extra="forbid")
    node_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    address: str = Field(min_length=3, max_length=300, pattern=_ADDRESS,
                         description="The new controller's Raft address, host:port.")
    # Checked by the service (400 naming the field), shown here for the OpenAPI document.
    agents: str | None = Field(
        default=None, description="Where it listens for agents, host:port.",
        json_schema_extra={"pattern": _ADDRESS, "maxLength": 300, "examples": ["10.0.0.4:7070"]})
    http: str | None = Field(
        default=None, description="Where it serves the REST API, host:port.",
        json_schema_extra={"pattern": _ADDRESS, "maxLength": 300, "examples": ["10.0.0.4:7080"]})


class LeaderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str = Field(min_length=1, max_length=64, pattern=_ID)


# -- errors ------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse({"error": code, "message": message, **extra}, status, headers=headers)


class Unauthorized(ServiceError):
    """No bearer token, or not a valid one."""


#: Marks a request one controller forwarded to the leader, so it is never forwarded twice.
FORWARDED = "X-Quorus-Forwarded-By"
FORWARD_TIMEOUT = 30.0


async def _forward(request: Request, exc: LeaderElsewhere, node_id: str) -> Response:
    """Repeat ``request`` on the leader and answer with what it answered."""
    assert exc.leader_url is not None
    target = exc.leader_url + request.url.path
    if request.url.query:
        target += "?" + request.url.query
    headers = {name: request.headers[name] for name in ("authorization", "content-type")
               if name in request.headers}
    headers[FORWARDED] = node_id
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT) as client:
            answer = await client.request(request.method, target, headers=headers,
                                          content=await request.body())
    except httpx.HTTPError as error:
        return _error(503, "leader-unreachable",
                      f"the leader {exc.leader_id} did not answer: {error}",
                      leader=exc.leader_id, headers={"Retry-After": "1"})
    kept = {k: v for k, v in answer.headers.items()
            if k.lower() in ("content-type", "retry-after", "www-authenticate")}
    return Response(answer.content, answer.status_code, headers=kept)


def _service_error_handler(node_id: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if (isinstance(exc, LeaderElsewhere) and exc.leader_url
                and FORWARDED not in request.headers):
            return await _forward(request, exc, node_id)
        return _service_error(request, exc)  # a leader elsewhere not reached: 503 no-leader

    return handle


#: Refusals that are not conflicts with the state: a quota (429, with the quota, its limit and
#: the usage in the body) and an admission rule (403).
_REFUSAL_STATUS = {RejectCode.QUOTA_EXCEEDED: 429, RejectCode.ADMISSION_DENIED: 403}


def _service_error(request: Request, exc: Exception) -> Response:
    status, body, headers = _error_parts(exc)
    return JSONResponse(body, status, headers=headers)


def _error_parts(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """The status, the JSON body and the headers the API answers ``exc`` with."""
    def error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
              **extra: Any) -> tuple[int, dict[str, Any], dict[str, str] | None]:
        return status, {"error": code, "message": message, **extra}, headers

    if isinstance(exc, Unauthorized):
        return error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, CommandRefused):
        status = _REFUSAL_STATUS.get(exc.rejected.code, 409)
        details = dict(exc.rejected.details)
        return error(status, str(exc.rejected.code), str(exc),
                     **({"details": details} if details else {}))
    if isinstance(exc, ResourceNotFound):
        return error(404, "not-found", str(exc))
    if isinstance(exc, Forbidden):
        return error(403, "forbidden", str(exc))
    if isinstance(exc, InvalidRequest | InvalidURIError):
        return error(400, "invalid-request", str(exc))
    if isinstance(exc, NotSupported):
        return error(501, "not-supported", str(exc))
    if isinstance(exc, LeaderElsewhere):
        return error(503, "no-leader", str(exc), {"Retry-After": "1"}, leader=exc.leader_id)
    if isinstance(exc, Unavailable):
        return error(503, "unavailable", str(exc), {"Retry-After": "1"})
    return error(500, "internal", f"{type(exc).__name__}: {exc}")


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "invalid-json", "the request body is not valid JSON")
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    where = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
    return _error(422, "invalid-request", f"the request does not fit: {where}", details=details)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    return _error(exc.status_code, code, str(exc.detail))


class BodyLimit:
    """Refuses (413) a request body over ``limit`` bytes before the application sees any of
    it, whether announced by ``Content-Length`` or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self._refuse(send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        response = _error(413, "too-large", f"the request body exceeds {self.limit} bytes")
        await send({"type": "http.response.start", "status": 413,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


# -- metrics -------------------------------------------------------------------------------------


def _tenant_jobs(server: "ControllerServer",
                 readable: Callable[[str, str], bool] | None) -> GaugeMetricFamily:
    """``quorus_tenant_jobs{tenant, namespace, state}``, only for the tenants and namespaces
    ``readable`` allows (all without it)."""
    counts: dict[tuple[str, str, str], int] = {}
    for job in server.state.jobs.values():
        key = (job.tenant, job.namespace, str(job.state))
        counts[key] = counts.get(key, 0) + 1
    family = GaugeMetricFamily("quorus_tenant_jobs", "Jobs by tenant, namespace and state",
                               labels=["tenant", "namespace", "state"])
    allowed: dict[tuple[str, str], bool] = {}
    for (tenant, namespace, job_state), count in sorted(counts.items()):
        place = (tenant, namespace)
        if place not in allowed:
            allowed[place] = readable is None or readable(tenant, namespace)
        if allowed[place]:
            family.add_metric([tenant, namespace, job_state], count)
    return family


class _TenantCollector:
    """What a principal without cluster-wide ``metrics.read`` may scrape: the tenant-labelled
    series of the tenants (and namespaces) it may read, nothing else."""

    def __init__(self, server: "ControllerServer", readable: Callable[[str, str], bool]):
        self.server = server
        self.readable = readable

    def collect(self) -> Any:
        yield _tenant_jobs(self.server, self.readable)


class _StateCollector:
    """Prometheus gauges read from the controller at scrape time."""

    def __init__(self, server: "ControllerServer") -> None:
        self.server = server

    def collect(self) -> Any:
        server = self.server
        state = server.state
        yield _tenant_jobs(server, None)
        jobs = GaugeMetricFamily("quorus_jobs", "Jobs by state", labels=["state"])
        for job_state in JobState:
            jobs.add_metric([str(job_state)], state.count(job_state))
        yield jobs
        agents = GaugeMetricFamily("quorus_agents", "Agents by state", labels=["state"])
        counts = {s: 0 for s in AgentState}
        for agent in state.agents.values():
            counts[agent.state] += 1
        for agent_state, count in counts.items():
            agents.add_metric([str(agent_state)], count)
        yield agents
        yield GaugeMetricFamily("quorus_agents_connected",
                                "Agents connected to this controller", value=len(server.links))
        yield GaugeMetricFamily("quorus_controller_leader",
                                "1 when this controller leads", value=int(server.leading))
        yield GaugeMetricFamily("quorus_controller_applied_index",
                                "Last log index applied to the state", value=state.applied_index)
        yield GaugeMetricFamily("quorus_jobs_waiting",
                                "Queued jobs no agent can take now",
                                value=len(server.soft.waiting))
        lag = server.loop_lag
        yield HistogramMetricFamily(
            "quorus_event_loop_lag_seconds",
            "How late this controller's event loop woke a timer due every "
            f"{lag.period:g} s (all its work shares the loop)",
            buckets=lag.cumulative(), sum_value=lag.total)
        pauses = HistogramMetricFamily(
            "quorus_gc_pause_seconds",
            "Pauses of this controller's garbage collector by generation (2: full)",
            labels=["generation"])
        for generation, histogram in enumerate(GC_PAUSES.generations):
            pauses.add_metric([str(generation)], histogram.cumulative(),
                              sum_value=histogram.total)
        yield pauses
        commit = server.group_commit
        yield HistogramMetricFamily(
            "quorus_consensus_queue_seconds",
            "How long commands waited to be proposed (the group commit had its batches in "
            "flight)", buckets=commit.waited.cumulative(), sum_value=commit.waited.total)
        yield HistogramMetricFamily(
            "quorus_consensus_commit_seconds",
            "How long a proposal took to be committed by the quorum and applied here",
            buckets=commit.committed.cumulative(), sum_value=commit.committed.total)
        yield CounterMetricFamily("quorus_consensus_proposals",
                                  "Consensus proposals this controller made (each one log entry)",
                                  value=commit.proposals)
        yield CounterMetricFamily("quorus_consensus_proposed_commands",
                                  "Commands those proposals carried", value=commit.commands)


# -- the application ----------------------------------------------------------------------------


def create_app(server: "ControllerServer") -> ASGIApp:
    """The ASGI application serving ``server``'s API."""
    service = server.service
    app = FastAPI(
        title="Quorus controller API",
        version="1",
        description=(__doc__ or "").split("\n\n", 1)[1],
        docs_url=None, redoc_url=None,
    )
    registry = CollectorRegistry()
    registry.register(_StateCollector(server))
    bearer = HTTPBearer(auto_error=False, description="the controller's token")

    # A coroutine, so FastAPI runs it on the event loop: a plain function would cost every
    # request a worker-thread round trip, for checks that take microseconds (a comparison and,
    # for API tokens, one SHA-256 of the token).
    async def principal(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("send Authorization: Bearer TOKEN (the controller's token)")
        found = server.authenticate_token(credentials.credentials)
        if found is None:
            reason = server.token_refusal(credentials.credentials)
            raise Unauthorized("the bearer token is not valid" + (f": {reason}" if reason else ""))
        request.state.principal = found
        return found

    Caller = Annotated[Principal, Depends(principal)]
    Consistent = Annotated[bool, Query(description="wait for a linearizable read")]

    app.add_exception_handler(ServiceError, _service_error_handler(server.settings.node_id))
    app.add_exception_handler(InvalidURIError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        """The process serves (no token needed)."""
        return {"status": "ok", "node_id": server.settings.node_id}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """A leader is known and, on the leader, its duties have started (no token needed)."""
        leader = server.backend.leader_id
        ready = leader is not None and (leader != server.settings.node_id or server.leading)
        body = {"ready": ready, "node_id": server.settings.node_id, "leader": leader,
                "leading": server.leading}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics(caller: Caller) -> Response:
        """Prometheus metrics of this controller. A principal with ``metrics.read`` only in
        some tenants gets those tenants' series (``quorus_tenant_jobs``) and nothing else."""
        if service.may(caller, "metrics.read"):
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        def readable(tenant: str, namespace: str) -> bool:
            return service.may(caller, "metrics.read", tenant, namespace)

        places = {(job.tenant, job.namespace) for job in server.state.jobs.values()}
        if not any(readable(*place) for place in sorted(places)):
            service.authorize(caller, "metrics.read")  # raises, with the reason
        own = CollectorRegistry()
        own.register(_TenantCollector(server, readable))
        return Response(generate_latest(own), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/jobs", status_code=201, tags=["jobs"])
    async def submit_job(body: JobSubmission, caller: Caller) -> dict[str, Any]:
        """Queue a transfer job."""
        service.authorize(caller, "jobs.submit", body.tenant, body.namespace)
        request = body.request(caller.name)
        job = await service.submit_job(
            request.source, request.destination, job_id=request.job_id,
            options=request.options, priority=request.priority, placement=request.placement,
            retry=request.retry, submitted_by=request.submitted_by, tenant=request.tenant,
            namespace=request.namespace,
        )
        return service.job_view(job)

    @app.post("/v1/jobs/batch", tags=["jobs"], response_model=None,
              responses={200: {"model": BatchAnswer}})
    async def submit_jobs(body: JobBatch, caller: Caller) -> Response:
        """Queue up to 1,000 transfer jobs at once, each admitted exactly as
        ``POST /v1/jobs`` admits one, proposed together. Answers 200 whenever the batch was
        read, with one result per job in order: ``status`` 201 and the job, or the status and
        error a single submission would have got (400, 403, 409, 429, 503). One refused job
        does not stop the others; a body that does not fit is refused whole (413, 422)."""
        results: list[dict[str, Any]] = []
        submitted = 0
        for index, outcome in enumerate(await submit_batch(service, caller, body)):
            if isinstance(outcome, ServiceError):
                status, error, _ = _error_parts(outcome)
                results.append({"index": index, "status": status, **error})
            else:
                submitted += 1
                results.append({"index": index, "status": 201,
                                "job": service.job_view(outcome)})
        return JSONResponse({"results": results, "submitted": submitted,
                             "refused": len(results) - submitted})

    @app.get("/v1/jobs", tags=["jobs"])
    async def list_jobs(
        caller: Caller,
        state: JobState | None = None,
        agent: str | None = None,
        tenant: str | None = None,
        namespace: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        consistent: Consistent = True,
    ) -> dict[str, Any]:
        """Jobs in submission order, filtered; follow ``next_cursor`` for the next page."""
        page = await service.list_jobs(
            state=state, agent_id=agent, tenant=tenant, namespace=namespace, limit=limit,
            cursor=cursor, linearizable=consistent,
            visible=lambda job: service.may(caller, "jobs.read", job.tenant, job.namespace),
        )
        return page_json(page, service.job_view)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    async def get_job(job_id: str, caller: Caller, consistent: Consistent = True
                      ) -> dict[str, Any]:
        """One job, with its attempts, progress and, while queued, why it waits."""
        job = await service.get_job(job_id, linearizable=consistent)
        _readable(caller, "jobs.read", job.tenant, job.namespace, f"no job {job_id!r}")
        return service.job_view(job)

    @app.post("/v1/jobs/{job_id}/cancel", tags=["jobs"])
    async def cancel_job(
        job_id: str, caller: Caller, body: CancelBody | None = None
    ) -> dict[str, Any]:
        """Cancel a job that has not finished; an agent running it is told to abort."""
        job = await service.get_job(job_id, linearizable=False)
        _readable(caller, "jobs.read", job.tenant, job.namespace, f"no job {job_id!r}")
        service.authorize(caller, "jobs.cancel", job.tenant, job.namespace)
        reason = body.reason if body is not None else "cancelled on request"
        return service.job_view(await service.cancel_job(job_id, reason,
                                                         requested_by=caller.name))

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(caller: Caller, consistent: Consistent = True) -> dict[str, Any]:
        """Every agent: the replicated record and the leader's view (heartbeat, slots, jobs)."""
        agents = await service.list_agents(linearizable=consistent)
        return {"agents": [service.agent_view(a) for a in agents
                           if service.may(caller, "agents.read", a.tenant, a.namespace)]}

    @app.get("/v1/agents/{agent_id}", tags=["agents"])
    async def get_agent(
        agent_id: str, caller: Caller, consistent: Consistent = True
    ) -> dict[str, Any]:
        agent = await service.get_agent(agent_id, linearizable=consistent)
        _readable(caller, "agents.read", agent.tenant, agent.namespace, f"no agent {agent_id!r}")
        return service.agent_view(agent)

    @app.post("/v1/agents/{agent_id}/drain", tags=["agents"])
    async def drain_agent(
        agent_id: str, caller: Caller, body: DrainBody | None = None
    ) -> dict[str, Any]:
        """Stop giving the agent work; it finishes its transfers (within ``timeout`` seconds)
        and deregisters."""
        agent = await service.get_agent(agent_id, linearizable=False)
        _readable(caller, "agents.read", agent.tenant, agent.namespace, f"no agent {agent_id!r}")
        service.authorize(caller, "agents.drain", agent.tenant, agent.namespace)
        timeout = body.timeout if body is not None and body.timeout is not None else (
            server.settings.drain_timeout)
        return service.agent_view(await service.drain_agent(agent_id, timeout,
                                                            requested_by=caller.name))

    @app.get("/v1/cluster", tags=["cluster"])
    async def cluster(caller: Caller) -> dict[str, Any]:
        """This node's view of the quorum: leader, term, members, commit and applied index."""
        service.authorize(caller, "cluster.read")
        status = await service.cluster_status()
        status["leading"] = server.leading
        status["uptime_seconds"] = round(time.time() - server.started_at, 3)
        return status

    @app.post("/v1/cluster/members", status_code=202, tags=["cluster"])
    async def add_member(body: MemberBody, caller: Caller) -> dict[str, Any]:
        """Add a controller to the quorum (it catches up as a learner, then votes). Its
        ``agents`` and ``http`` addresses, when given, are replicated first: every controller
        then redirects agents and forwards writes to it when it leads."""
        service.authorize(caller, "cluster.admin")
        await service.add_member(body.node_id, body.address, body.agents, body.http)
        answer: dict[str, Any] = {"added": body.node_id, "address": body.address}
        if body.agents:
            answer["agents"] = body.agents
        if body.http:
            answer["http"] = body.http
        return answer

    @app.delete("/v1/cluster/members/{node_id}", status_code=202, tags=["cluster"])
    async def remove_member(node_id: str, caller: Caller) -> dict[str, Any]:
        """Remove a controller from the quorum (the leader included)."""
        service.authorize(caller, "cluster.admin")
        await service.remove_member(node_id)
        return {"removed": node_id}

    @app.post("/v1/cluster/leader", status_code=202, tags=["cluster"])
    async def transfer_leadership(body: LeaderBody, caller: Caller) -> dict[str, Any]:
        """Hand leadership to another controller."""
        service.authorize(caller, "cluster.admin")
        await service.transfer_leadership(body.node_id)
        return {"leader": body.node_id}

    def _readable(caller: Principal, action: str, tenant: str, namespace: str,
                  missing: str) -> None:
        # What a principal may not read does not exist for it: 404, never a hint of another
        # tenant's records.
        if not service.may(caller, action, tenant, namespace):
            raise ResourceNotFound(missing)

    for extension in server.extensions:
        router = extension.routes(service)
        if router is not None:
            app.include_router(router, dependencies=[Depends(principal)])

    return BodyLimit(app, server.settings.max_request_bytes)


__all__ = ["BodyLimit", "JobSubmission", "create_app"]
