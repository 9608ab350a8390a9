"""The replicated commands of the ``tenant`` state module: apply TenantConfiguration YAML,
suspend, activate and delete a tenant. Each carries the leader's time ``at`` (and the YAML text
itself), so every controller applying the log reaches the same tenants; they travel as msgpack
through quorus-core's codec like the core's own commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from quorus.core.controller.commands import Command


@dataclass(frozen=True, slots=True)
class ApplyTenants(Command):
    """Add or replace the tenants (and namespace settings) of the YAML ``text``; parsed and
    checked again when applied, so a hierarchy that became invalid meanwhile is refused."""

    NAME: ClassVar[str] = "tenant-apply"
    at: float
    text: str
    file: str = "<tenants>"
    applied_by: str = ""


@dataclass(frozen=True, slots=True)
class SuspendTenant(Command):
    """Refuse new submissions of the tenant and its descendants; admitted jobs run on."""

    NAME: ClassVar[str] = "tenant-suspend"
    tenant_id: str
    at: float
    reason: str = ""
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class ActivateTenant(Command):
    NAME: ClassVar[str] = "tenant-activate"
    tenant_id: str
    at: float
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class DeleteTenant(Command):
    """Remove a tenant that has no children and no unfinished jobs (its usage stays on
    record for reports)."""

    NAME: ClassVar[str] = "tenant-delete"
    tenant_id: str
    at: float
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class TenantResult:
    """What applying a tenant command gives back to its proposer (``Applied.value``):
    ``ok`` or the reason it was refused, and the tenants it changed."""

    ok: bool
    message: str = ""
    tenants: tuple[str, ...] = ()
    duplicate: bool = False


COMMAND_TYPES: tuple[type[Command], ...] = (ApplyTenants, SuspendTenant, ActivateTenant,
                                            DeleteTenant)

__all__ = ["COMMAND_TYPES", "ActivateTenant", "ApplyTenants", "DeleteTenant", "SuspendTenant",
           "TenantResult"]
