"""The workflow REST API for the ``quorus workflow submit|status|list|pause|resume|cancel|
register`` commands, over the fleet CLI's :class:`~quorus.core.cli.client.ControllerClient`
(several controllers tried in turn, the token, the API's errors as exceptions).

Every function returns the decoded JSON answer. A submission always carries an execution id
(chosen here when the caller gives none), so it is safely repeated on another controller when
a connection breaks. A definition with problems raises
:class:`~quorus.core.cli.client.ControllerError` with ``code`` ``invalid-workflow`` and a
message listing every issue.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from quorus.workflow.controller.commands import Scalar

EXECUTIONS = "/v1/workflows/executions"
REGISTRATIONS = "/v1/workflows/registrations"


class ApiClient(Protocol):
    """What these functions need of :class:`~quorus.core.cli.client.ControllerClient`."""

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                json: Any = None, repeatable: bool | None = None) -> Any: ...


def new_execution_id() -> str:
    return f"x{uuid.uuid4().hex[:16]}"


def _workflow_body(files: Mapping[str, str], workflow: str | None, environment: str | None,
                   sets: Mapping[str, str] | None, bindings: Mapping[str, Scalar] | None
                   ) -> dict[str, Any]:
    body: dict[str, Any] = {"files": dict(files), "sets": dict(sets or {}),
                            "bindings": dict(bindings or {})}
    if workflow is not None:
        body["workflow"] = workflow
    if environment is not None:
        body["environment"] = environment
    return body


def submit(client: ApiClient, files: Mapping[str, str], *, workflow: str | None = None,
           environment: str | None = None, sets: Mapping[str, str] | None = None,
           bindings: Mapping[str, Scalar] | None = None, execution_id: str | None = None
           ) -> dict[str, Any]:
    """Run a workflow once on the quorum: ``files`` maps file names to their YAML text;
    ``bindings`` holds the references bound here (``Binder.static_bindings``)."""
    body = _workflow_body(files, workflow, environment, sets, bindings)
    body["id"] = execution_id or new_execution_id()
    return _object(client.request("POST", EXECUTIONS, json=body, repeatable=True))


def status(client: ApiClient, execution_id: str) -> dict[str, Any]:
    """One execution: status, steps, actions and plan levels."""
    return _object(client.request("GET", f"{EXECUTIONS}/{_segment(execution_id)}"))


def list_executions(client: ApiClient, *, status: str | None = None, limit: int = 100
                    ) -> list[dict[str, Any]]:
    """Executions, newest first (only those with ``status`` when given)."""
    params = {"limit": str(limit), **({"status": status} if status else {})}
    answer = _object(client.request("GET", EXECUTIONS, params=params))
    return [e for e in answer.get("executions", []) if isinstance(e, dict)]


def pause(client: ApiClient, execution_id: str) -> dict[str, Any]:
    return _object(client.request("POST", f"{EXECUTIONS}/{_segment(execution_id)}/pause",
                                  repeatable=True))


def resume(client: ApiClient, execution_id: str) -> dict[str, Any]:
    return _object(client.request("POST", f"{EXECUTIONS}/{_segment(execution_id)}/resume",
                                  repeatable=True))


def cancel(client: ApiClient, execution_id: str, reason: str | None = None) -> dict[str, Any]:
    body = {"reason": reason} if reason else {}
    return _object(client.request("POST", f"{EXECUTIONS}/{_segment(execution_id)}/cancel",
                                  json=body, repeatable=True))


def register(client: ApiClient, files: Mapping[str, str], *, name: str | None = None,
             workflow: str | None = None, environment: str | None = None,
             sets: Mapping[str, str] | None = None, bindings: Mapping[str, Scalar] | None = None
             ) -> dict[str, Any]:
    """Register a workflow with triggers (the same registration again changes nothing)."""
    body = _workflow_body(files, workflow, environment, sets, bindings)
    if name is not None:
        body["name"] = name
    return _object(client.request("POST", REGISTRATIONS, json=body, repeatable=True))


def list_registrations(client: ApiClient) -> list[dict[str, Any]]:
    answer = _object(client.request("GET", REGISTRATIONS))
    return [r for r in answer.get("registrations", []) if isinstance(r, dict)]


def unregister(client: ApiClient, name: str) -> dict[str, Any]:
    return _object(client.request("DELETE", f"{REGISTRATIONS}/{_segment(name)}",
                                  repeatable=True))


def _segment(text: str) -> str:
    return quote(text, safe="")


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        from quorus.core.cli.client import ControllerError

        raise ControllerError(f"the controller answered {type(answer).__name__}, not a JSON "
                              "object")
    return answer


__all__ = [
    "ApiClient",
    "cancel",
    "list_executions",
    "list_registrations",
    "new_execution_id",
    "pause",
    "register",
    "resume",
    "status",
    "submit",
    "unregister",
]
