"""Principals, their API tokens and role bindings, replicated in the ``access`` state module,
and the controller extension that authenticates and authorizes with them."""

from quorus.tenant.access.commands import (
    AccessResult,
    BindRole,
    CreatePrincipal,
    DeletePrincipal,
    IssueToken,
    RevokeToken,
    UnbindRole,
)
from quorus.tenant.access.extension import API_TOKEN_METHOD, AccessExtension
from quorus.tenant.access.state import AccessStateModule, PrincipalKind, PrincipalRecord

__all__ = [
    "API_TOKEN_METHOD",
    "AccessExtension",
    "AccessResult",
    "AccessStateModule",
    "BindRole",
    "CreatePrincipal",
    "DeletePrincipal",
    "IssueToken",
    "PrincipalKind",
    "PrincipalRecord",
    "RevokeToken",
    "UnbindRole",
]
