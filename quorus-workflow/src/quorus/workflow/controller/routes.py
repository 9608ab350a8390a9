"""The workflow REST routes of a controller, under ``/v1/workflows``: submit, list, show, pause,
resume and cancel executions; register, list and unregister workflows with triggers.

Submissions are validated and planned here before anything is proposed: a definition with
problems is answered ``400`` ``{"error": "invalid-workflow", "message", "issues"}`` and never
reaches the log. Writes go through consensus (a follower forwards them to the leader, as for
jobs); reads are linearizable unless ``consistent=false``. A command the state refuses (pausing
an execution that ended) is ``409``; one a tenant module's admission refuses (a cross-tenant
workflow without a data-sharing agreement in force) is ``403`` with the reason.

Executions and registrations a caller may not read (``workflows.read`` in their tenant and
namespace) do not exist for it: lists leave them out and a request naming one answers ``404``,
as for jobs. Registering under a name another tenant's registration holds is ``409``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from quorus.core.controller.commands import Command
from quorus.core.controller.extension import request_principal as caller
from quorus.core.controller.service import (
    ControllerService,
    ResourceNotFound,
)
from quorus.workflow.controller.client import new_execution_id
from quorus.workflow.controller.commands import (
    ID_PATTERN,
    MAX_ID,
    CancelExecution,
    PauseExecution,
    RegisterWorkflow,
    ResumeExecution,
    Scalar,
    SubmitExecution,
    UnregisterWorkflow,
    workflow_reach,
)
from quorus.workflow.controller.prepared import SubmissionError, prepare
from quorus.workflow.controller.records import Registration, WorkflowResult
from quorus.workflow.controller.state import WorkflowStateModule

Consistent = Annotated[bool, Query(description="wait for a linearizable read")]


class ExecutionBody(BaseModel):
    """A workflow to run once: its YAML files by name, which workflow of them, the
    environment, ``--set`` values and the references the client bound."""

    model_config = ConfigDict(extra="forbid")
    files: dict[str, str] = Field(min_length=1)
    workflow: str | None = Field(default=None, max_length=256)
    environment: str | None = Field(default=None, max_length=256)
    sets: dict[str, str] = Field(default_factory=dict)
    bindings: dict[str, Scalar] = Field(default_factory=dict)
    mode: Literal["normal"] = "normal"
    id: str | None = Field(default=None, max_length=MAX_ID, pattern=ID_PATTERN)


class RegistrationBody(BaseModel):
    """A workflow with triggers for the quorum to start by itself; ``name`` defaults to the
    workflow's own."""

    model_config = ConfigDict(extra="forbid")
    files: dict[str, str] = Field(min_length=1)
    name: str | None = Field(default=None, max_length=MAX_ID, pattern=ID_PATTERN)
    workflow: str | None = Field(default=None, max_length=256)
    environment: str | None = Field(default=None, max_length=256)
    sets: dict[str, str] = Field(default_factory=dict)
    bindings: dict[str, Scalar] = Field(default_factory=dict)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="cancelled on request", max_length=1024)


def invalid_workflow(exc: SubmissionError) -> JSONResponse:
    return JSONResponse({"error": "invalid-workflow", "message": exc.message,
                         "issues": [str(i) for i in exc.issues]}, 400)


def workflow_router(service: ControllerService, *, clock: Callable[[], float]) -> APIRouter:
    """The routes, reading and writing through ``service``."""
    router = APIRouter(tags=["workflows"])

    def module() -> WorkflowStateModule:
        return service.state_module(WorkflowStateModule, "quorus-workflow")

    async def read(consistent: bool = True) -> WorkflowStateModule:
        # The service offers linearizable reads only through its own getters; the same
        # barrier serves this module's records.
        await service.consistent_read(consistent)
        return module()

    async def propose(command: Command) -> WorkflowResult:
        return await service.propose_to_module(command, WorkflowResult)

    def principal(request: Request) -> str:
        return caller(request).name

    def visible(request: Request, item: dict[str, Any]) -> bool:
        return service.may(caller(request), "workflows.read", item.get("tenant"),
                           item.get("namespace"))

    def readable(request: Request, registration: Registration) -> bool:
        # The same rule as executions: the registration's tenant and namespace.
        return service.may(caller(request), "workflows.read", registration.command.tenant,
                           registration.command.namespace)

    def view(execution_id: str, request: Request | None = None) -> dict[str, Any]:
        found = module().view(execution_id)
        if found is None or (request is not None and not visible(request, found)):
            raise ResourceNotFound(f"no workflow execution {execution_id!r}")
        return found

    @router.post("/v1/workflows/executions", status_code=201)
    async def submit_execution(body: ExecutionBody, request: Request) -> Any:
        """Run a workflow once on the agent fleet; the same ``id`` again returns the
        execution already submitted."""
        execution_id = body.id or new_execution_id()
        at = clock()
        try:
            prepared = prepare(body.files, workflow=body.workflow, environment=body.environment,
                               sets=body.sets, bindings=body.bindings,
                               execution_id=execution_id, started_at=at)
        except SubmissionError as exc:
            return invalid_workflow(exc)
        for group in prepared.workflow.groups:
            service.authorize(caller(request), "workflows.submit", group.tenant,
                              group.namespace)
        await propose(SubmitExecution(
            execution_id, at, body.files, body.workflow, body.environment, body.sets,
            body.bindings, body.mode, principal(request), prepared.workflow.tenant,
            prepared.workflow.namespace, reach=workflow_reach(prepared.workflow)))
        return view(execution_id)

    @router.get("/v1/workflows/executions")
    async def list_executions(
        request: Request,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        consistent: Consistent = True,
    ) -> dict[str, Any]:
        """Executions, newest first, optionally only those with ``status``."""
        found = []
        for item in (await read(consistent)).views():
            if (status is None or item["status"] == status) and visible(request, item):
                found.append(item)
                if len(found) >= limit:
                    break
        return {"executions": found}

    @router.get("/v1/workflows/executions/{execution_id}")
    async def get_execution(execution_id: str, request: Request,
                            consistent: Consistent = True) -> dict[str, Any]:
        """One execution: its steps, actions and plan levels."""
        await read(consistent)
        return view(execution_id, request)

    async def change(execution_id: str, command: Command, request: Request) -> dict[str, Any]:
        await read(True)
        found = view(execution_id, request)
        service.authorize(caller(request), "workflows.control", found.get("tenant"),
                          found.get("namespace"))
        await propose(command)
        return view(execution_id)

    @router.post("/v1/workflows/executions/{execution_id}/pause")
    async def pause_execution(execution_id: str, request: Request) -> dict[str, Any]:
        """Start no further steps; running ones go on."""
        return await change(execution_id, PauseExecution(execution_id, clock()), request)

    @router.post("/v1/workflows/executions/{execution_id}/resume")
    async def resume_execution(execution_id: str, request: Request) -> dict[str, Any]:
        return await change(execution_id, ResumeExecution(execution_id, clock()), request)

    @router.post("/v1/workflows/executions/{execution_id}/cancel")
    async def cancel_execution(execution_id: str, request: Request,
                               body: CancelBody | None = None) -> dict[str, Any]:
        """Cancel running steps' jobs and skip the rest."""
        reason = body.reason if body is not None else "cancelled on request"
        return await change(execution_id, CancelExecution(execution_id, clock(), reason),
                            request)

    @router.post("/v1/workflows/registrations", status_code=201)
    async def register_workflow(body: RegistrationBody, request: Request) -> Any:
        """Register a workflow whose triggers start executions (replaces one of that name)."""
        at = clock()
        try:
            prepared = prepare(body.files, workflow=body.workflow, environment=body.environment,
                               sets=body.sets, bindings=body.bindings, execution_id="",
                               started_at=at, needs_triggers=True)
        except SubmissionError as exc:
            return invalid_workflow(exc)
        for group in prepared.workflow.groups:
            service.authorize(caller(request), "workflows.register", group.tenant,
                              group.namespace)
        name = body.name or prepared.workflow.name
        existing = module().registration(name)
        if existing is not None:
            # Replacing a registration is changing it: the caller must be allowed to see and
            # register in the one it replaces. One it may not read is never shown or named.
            if not readable(request, existing):
                return JSONResponse({"error": "name-taken", "message": (
                    f"the registration name {name!r} is taken: give another name in the "
                    "request")}, 409)
            for group in existing.workflow.groups:
                service.authorize(caller(request), "workflows.register", group.tenant,
                                  group.namespace)
        try:
            command = RegisterWorkflow(name, at, body.files, body.workflow, body.environment,
                                       body.sets, body.bindings, principal(request),
                                       prepared.workflow.tenant, prepared.workflow.namespace,
                                       reach=workflow_reach(prepared.workflow))
        except ValueError as exc:
            return invalid_workflow(SubmissionError(f"{exc}: give a name in the request"))
        await propose(command)
        registration = module().registration(name)
        assert registration is not None
        return registration.view()

    @router.get("/v1/workflows/registrations")
    async def list_registrations(request: Request, consistent: Consistent = True
                                 ) -> dict[str, Any]:
        """Registered workflows the caller may read, with their triggers' last and next
        fires."""
        return {"registrations": [r.view() for r in (await read(consistent)).registrations()
                                  if readable(request, r)]}

    @router.delete("/v1/workflows/registrations/{name}")
    async def unregister_workflow(name: str, request: Request) -> dict[str, Any]:
        """Stop a registration's triggers; executions it started are kept."""
        found = (await read(True)).registration(name)
        if found is None or not readable(request, found):
            raise ResourceNotFound(f"no registered workflow {name!r}")
        for group in found.workflow.groups:
            service.authorize(caller(request), "workflows.register", group.tenant,
                              group.namespace)
        await propose(UnregisterWorkflow(name, clock()))
        return {"unregistered": name}

    return router


__all__ = ["ExecutionBody", "RegistrationBody", "workflow_router"]
