"""The tenant package's contributions to Quorus's hooks: the ``quorus tenant``, ``quorus
principal`` and ``quorus audit`` commands and, on controllers, the ``tenant``, ``access`` and
``audit`` state modules with their extensions (``/v1/tenants``, ``/v1/principals`` and
``/v1/audit`` routes, API-token authentication, authorization of every endpoint, and the
record of every decision).

Every Quorus process loads this module once the package is installed, so it imports nothing
of the package until a hook is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quorus.core.hooks import hookimpl


@hookimpl
def quorus_controller_state_modules() -> Sequence[Any]:
    from quorus.tenant.access.state import AccessStateModule
    from quorus.tenant.auditlog.state import AuditStateModule
    from quorus.tenant.state import TenantStateModule

    return [TenantStateModule(), AccessStateModule(), AuditStateModule()]


@hookimpl
def quorus_controller_extensions() -> Sequence[Any]:
    from quorus.tenant.access.extension import AccessExtension
    from quorus.tenant.auditlog.extension import AuditExtension
    from quorus.tenant.routes import TenantExtension

    return [TenantExtension(), AccessExtension(), AuditExtension()]


@hookimpl
def quorus_cli_commands() -> Sequence[Any]:
    from quorus.tenant.access.cli import principal
    from quorus.tenant.auditlog.cli import audit
    from quorus.tenant.cli import tenant

    return [tenant, principal, audit]
