"""The replicated commands of the ``access`` state module: create and delete principals, record
an issued token (its SHA-256 only: the leader generated it and shows the text once), revoke it,
and bind or unbind a role. Each carries the leader's time ``at``, so every controller applying
the log reaches the same principals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from quorus.core.controller.commands import Command


@dataclass(frozen=True, slots=True)
class CreatePrincipal(Command):
    """A user or a service account of ``tenant``, with no token and no role yet."""

    NAME: ClassVar[str] = "access-create-principal"
    name: str
    kind: str
    tenant: str
    at: float
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class DeletePrincipal(Command):
    """Remove a principal with its tokens (they stop working at once) and role bindings."""

    NAME: ClassVar[str] = "access-delete-principal"
    name: str
    at: float
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class IssueToken(Command):
    """Record a token the leader generated: only the SHA-256 of its secret travels."""

    NAME: ClassVar[str] = "access-issue-token"
    principal: str
    token_id: str
    secret_sha256: str
    at: float
    expires_at: float | None = None
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class RevokeToken(Command):
    NAME: ClassVar[str] = "access-revoke-token"
    principal: str
    token_id: str
    at: float
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class BindRole(Command):
    """``principal`` holds ``role`` in ``tenant`` (``*``: everywhere), or in one namespace."""

    NAME: ClassVar[str] = "access-bind-role"
    principal: str
    role: str
    tenant: str
    at: float
    namespace: str | None = None
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class UnbindRole(Command):
    NAME: ClassVar[str] = "access-unbind-role"
    principal: str
    role: str
    tenant: str
    at: float
    namespace: str | None = None
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class AccessResult:
    """What applying an access command gives back to its proposer (``Applied.value``): ``ok``
    or the reason it was refused (``missing``: what it names does not exist), and whether it
    changed nothing because it had been applied already."""

    ok: bool
    message: str = ""
    missing: bool = False
    duplicate: bool = False


COMMAND_TYPES: tuple[type[Command], ...] = (CreatePrincipal, DeletePrincipal, IssueToken,
                                            RevokeToken, BindRole, UnbindRole)

__all__ = ["COMMAND_TYPES", "AccessResult", "BindRole", "CreatePrincipal", "DeletePrincipal",
           "IssueToken", "RevokeToken", "UnbindRole"]
