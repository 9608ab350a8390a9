"""The tenant package's contributions to Quorus's hooks: the ``quorus tenant`` commands and,
on controllers, the ``tenant`` state module and the ``/v1/tenants`` routes.

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
