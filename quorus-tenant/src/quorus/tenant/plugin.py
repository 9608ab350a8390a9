"""The tenant package's contributions to Quorus's hooks: the ``quorus tenant``, ``quorus
principal``, ``quorus audit`` and ``quorus agreement`` commands and, on controllers, the
``tenant``, ``access``, ``audit`` and ``sharing`` state modules with their extensions
(``/v1/tenants``, ``/v1/principals``, ``/v1/audit`` and ``/v1/agreements`` routes, API-token
authentication, authorization of every endpoint, the record of every decision, and the
refusal of cross-tenant workflows no data-sharing agreement covers).

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
    from quorus.tenant.sharing.state import SharingStateModule
    from quorus.tenant.state import TenantStateModule

    return [TenantStateModule(), AccessStateModule(), AuditStateModule(), SharingStateModule()]


@hookimpl
def quorus_controller_extensions() -> Sequence[Any]:
    from quorus.tenant.access.extension import AccessExtension
    from quorus.tenant.auditlog.extension import AuditExtension
    from quorus.tenant.routes import TenantExtension
    from quorus.tenant.sharing.extension import SharingExtension

    return [TenantExtension(), AccessExtension(), AuditExtension(), SharingExtension()]


@hookimpl
def quorus_cli_commands() -> Sequence[Any]:
    from quorus.tenant.access.cli import principal
    from quorus.tenant.auditlog.cli import audit
    from quorus.tenant.cli import tenant
    from quorus.tenant.sharing.cli import agreement

    return [tenant, principal, audit, agreement]
