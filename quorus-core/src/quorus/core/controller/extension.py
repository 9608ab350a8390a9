"""What another package adds to a controller process besides state: REST routes of its own and
a task that runs only while the controller leads.

The workflow package, for instance, drives workflow executions from the leader and serves
``/v1/workflows``. Extensions come from the ``quorus_controller_extensions`` hook, so core
imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from quorus.core.auth import Principal

if TYPE_CHECKING:
    import anyio
    from quorus.core.controller.commands import Command
    from quorus.core.controller.results import Applied
    from quorus.core.controller.service import ControllerService


class Leadership(Protocol):
    """What a leading controller offers an extension's :meth:`ControllerExtension.lead`."""

    @property
    def node_id(self) -> str: ...

    @property
    def service(self) -> ControllerService: ...

    async def propose(self, command: Command) -> Applied:
        """Replicate ``command`` (raises the service's errors: ``LeaderElsewhere``,
        ``Unavailable``, ``CommandRefused``)."""
        ...

    def next_change(self) -> anyio.Event:
        """An event set when this controller next applies a command it proposed (a job or an
        agent moved, a module's record changed). Wait on it with a timeout of your own: state
        also changes through commands other controllers proposed before a failover."""
        ...


class ControllerExtension(Protocol):
    """A contribution to a controller process. ``name`` appears in logs.

    Three methods are optional (a tenancy package offers them):

    - ``authenticator(service) -> Authenticator | None``: principals of its own (API tokens of
      users and service accounts), tried after the controller's token;
    - ``authorize(principal, action, tenant, namespace) -> str | None``: why ``principal`` may
      not do ``action`` (``jobs.submit``, ``jobs.read``, ``jobs.cancel``, ``agents.read``,
      ``agents.drain``, ``cluster.read``, ``cluster.admin``, ``metrics.read``, and whatever
      its own routes ask through ``service.authorize``) in ``tenant``/``namespace``, or
      ``None``. The REST API asks on every endpoint (403 with the reason) and filters lists to
      what the principal may read;
    - ``authorized(principal, action, tenant, namespace, reason) -> None``: told every final
      verdict (``reason`` ``None`` when allowed), e.g. to keep an audit trail of decisions.
    """

    name: str

    def routes(self, service: ControllerService) -> Any:
        """A FastAPI ``APIRouter`` to include in the controller's API (every route behind the
        controller's bearer-token check; the caller's principal is ``request.state.principal``),
        or ``None``. Raise the service's errors (``InvalidRequest``, ``ResourceNotFound``,
        ``LeaderElsewhere`` ...) to get the API's usual JSON errors and forwarding to the
        leader."""
        ...

    async def lead(self, leadership: Leadership) -> None:
        """Run the extension's leader duties. Started once this controller leads and its state
        has caught up; cancelled when it stops leading. Restarted after a delay if it raises."""
        ...


def request_principal(request: Any) -> Principal:
    """Who sent ``request`` to an extension's route (the controller's token check, which
    guards every extension route, put it there)."""
    found = getattr(request.state, "principal", None)
    if not isinstance(found, Principal):
        raise TypeError("the request did not pass the controller's token check")
    return found


__all__ = ["ControllerExtension", "Leadership", "request_principal"]
