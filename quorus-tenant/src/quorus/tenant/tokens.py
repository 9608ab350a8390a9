"""API tokens for principals and role-based authorization decisions.

A token is shown once as ``qrs_<id>_<secret>`` and stored only as the SHA-256 of its secret
(:class:`TokenRecord`); :func:`verify` says whose it is or why it proves nothing. Roles
``viewer`` < ``transfer-user`` < ``transfer-admin`` are bound to a tenant or one of its
namespaces (:class:`RoleBinding`); :func:`decide` says whether a principal may do an action in
a tenant's namespace, a binding on a tenant covering its namespaces and its descendants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from quorus.core.errors import ConfigurationError

#: Every token starts with this, so a leaked one is recognisable by secret scanners.
TOKEN_PREFIX = "qrs_"
_SECRET_BYTES = 32
_ID_BYTES = 8
# 32 bytes in unpadded urlsafe base64.
_SECRET_TEXT_LENGTH = 43
_TOKEN_PATTERN = re.compile(
    rf"{TOKEN_PREFIX}([0-9a-f]{{{2 * _ID_BYTES}}})_([A-Za-z0-9_-]{{{_SECRET_TEXT_LENGTH}}})"
)
_MALFORMED = (
    "malformed token: expected qrs_<id>_<secret> (16 hex digits, then 43 base64url characters)"
)

#: A binding on this tenant covers every tenant, and is the only way to cluster actions.
GLOBAL_TENANT = "*"

VIEWER = "viewer"
TRANSFER_USER = "transfer-user"
TRANSFER_ADMIN = "transfer-admin"

_VIEWER_ACTIONS = frozenset(
    {"jobs.read", "workflows.read", "tenants.read", "usage.read", "agents.read", "metrics.read"}
)
_USER_ACTIONS = _VIEWER_ACTIONS | {
    "jobs.submit",
    "jobs.cancel",
    "workflows.submit",
    "workflows.control",
    "workflows.register",
}
_ADMIN_ACTIONS = _USER_ACTIONS | {
    "tenants.admin",
    "agents.drain",
    "agents.register",
    "principals.admin",
    "audit.read",
}

#: Roles from least to most: each allows everything the ones before it allow.
ROLES: Mapping[str, frozenset[str]] = {
    VIEWER: _VIEWER_ACTIONS,
    TRANSFER_USER: _USER_ACTIONS,
    TRANSFER_ADMIN: _ADMIN_ACTIONS,
}
_RANK = {name: rank for rank, name in enumerate(ROLES)}
#: Actions only a ``transfer-admin`` binding on :data:`GLOBAL_TENANT` allows.
CLUSTER_ACTIONS = frozenset({"cluster.read", "cluster.admin"})
ACTIONS = _ADMIN_ACTIONS | CLUSTER_ACTIONS


class UnknownRoleError(ConfigurationError):
    """A role binding names a role that does not exist."""


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What is kept of an issued token: never the secret, only its SHA-256 (hex)."""

    token_id: str
    principal: str
    secret_sha256: str
    created_at: float
    expires_at: float | None = None
    revoked: bool = False

    def revoke(self) -> TokenRecord:
        return replace(self, revoked=True)

    def to_data(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "principal": self.principal,
            "secret_sha256": self.secret_sha256,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked": self.revoked,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TokenRecord:
        expires = data.get("expires_at")
        return cls(
            token_id=str(data["token_id"]),
            principal=str(data["principal"]),
            secret_sha256=str(data["secret_sha256"]),
            created_at=float(data["created_at"]),
            expires_at=None if expires is None else float(expires),
            revoked=bool(data.get("revoked", False)),
        )


@dataclass(frozen=True, slots=True)
class Verified:
    """A token proved ``principal``."""

    principal: str
    token_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A token proved nothing, and why (safe to show the person who presented it)."""

    reason: str


def _digest(secret: str) -> str:
    # A fast hash is right here: the secret is 256 random bits, so there is nothing for a slow
    # password hash (bcrypt, scrypt, argon2) to protect against guessing, and every API call
    # pays for the verification.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue_token(principal: str, *, now: float, ttl: float | None = None) -> tuple[str, TokenRecord]:
    """A new token for ``principal``: the text to show once, and the record to keep.

    ``ttl`` (seconds) makes it expire at ``now + ttl``; without it, it lasts until revoked.
    """
    if not principal:
        raise ConfigurationError("a token needs a principal name: got an empty one")
    if ttl is not None and ttl <= 0:
        raise ConfigurationError(f"a token's lifetime must be positive seconds: got {ttl}")
    token_id = secrets.token_hex(_ID_BYTES)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
    record = TokenRecord(
        token_id=token_id,
        principal=principal,
        secret_sha256=_digest(secret),
        created_at=now,
        expires_at=None if ttl is None else now + ttl,
    )
    return f"{TOKEN_PREFIX}{token_id}_{secret}", record


def parse_token(token_text: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, or ``None``. The id is hex (no ``_``), so the
    first ``_`` after it ends it even though the secret's alphabet includes ``_``."""
    if not isinstance(token_text, str):
        return None
    match = _TOKEN_PATTERN.fullmatch(token_text)
    if match is None:
        return None
    return match.group(1), match.group(2)


def verify(token_text: str, records: Mapping[str, TokenRecord], now: float) -> Verified | Refused:
    """Whose ``token_text`` is, among ``records`` (by token id), at time ``now``.

    Never raises for what a client presented: a malformed, unknown, wrong, revoked or expired
    token is a :class:`Refused` with the reason.
    """
    parsed = parse_token(token_text)
    if parsed is None:
        return Refused(_MALFORMED)
    token_id, secret = parsed
    record = records.get(token_id)
    if record is None:
        return Refused(f"unknown token {TOKEN_PREFIX}{token_id}_…: it was never issued here, "
                       "or its principal was deleted")
    if not hmac.compare_digest(_digest(secret), record.secret_sha256):
        return Refused(
            f"token {TOKEN_PREFIX}{token_id}_… does not match: check it was copied whole"
        )
    if record.revoked:
        return Refused(
            f"token {TOKEN_PREFIX}{token_id}_… of {record.principal!r} was revoked: "
            "ask an administrator for a new one"
        )
    if record.expires_at is not None and now >= record.expires_at:
        return Refused(
            f"token {TOKEN_PREFIX}{token_id}_… of {record.principal!r} expired: "
            "ask an administrator for a new one"
        )
    return Verified(record.principal, token_id)


# -- roles --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """``principal`` holds ``role`` in ``tenant`` (and its descendants), or only in one of its
    namespaces. ``tenant`` :data:`GLOBAL_TENANT` binds everywhere."""

    principal: str
    role: str
    tenant: str
    namespace: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "role": self.role,
            "tenant": self.tenant,
            "namespace": self.namespace,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> RoleBinding:
        namespace = data.get("namespace")
        return cls(
            principal=str(data["principal"]),
            role=str(data["role"]),
            tenant=str(data["tenant"]),
            namespace=None if namespace is None else str(namespace),
        )


def validate_binding(binding: RoleBinding) -> RoleBinding:
    """``binding`` if it can be recorded, else a :class:`ConfigurationError` saying why."""
    if binding.role not in ROLES:
        raise UnknownRoleError(
            f"unknown role {binding.role!r} for principal {binding.principal!r}: "
            f"use one of {', '.join(ROLES)}"
        )
    if not binding.principal:
        raise ConfigurationError("a role binding needs a principal name: got an empty one")
    if not binding.tenant:
        raise ConfigurationError(
            f"the binding of {binding.principal!r} needs a tenant (or {GLOBAL_TENANT!r})"
        )
    if binding.tenant == GLOBAL_TENANT and binding.namespace is not None:
        raise ConfigurationError(
            f"the global binding of {binding.principal!r} cannot name a namespace "
            f"({binding.namespace!r}): bind it on a tenant instead"
        )
    return binding


def role_allows(role: str, action: str) -> bool:
    return action in ROLES.get(role, frozenset())


def _covers(
    binding: RoleBinding, tenant: str | None, namespace: str | None, chain: Sequence[str]
) -> bool:
    if binding.tenant == GLOBAL_TENANT:
        return True
    if tenant is None or binding.tenant not in chain:
        return False
    # A namespace binding covers that namespace of its own tenant only: a descendant's
    # namespaces are other namespaces, whatever they are called.
    return binding.namespace is None or (
        binding.tenant == tenant and binding.namespace == namespace
    )


def decide(
    principal: str,
    action: str,
    tenant: str | None,
    namespace: str | None,
    bindings: Iterable[RoleBinding],
    ancestors: Callable[[str], Sequence[str]],
) -> str | None:
    """Why ``principal`` may not do ``action`` in ``tenant``/``namespace``, or ``None``.

    ``ancestors(t)`` gives ``t``'s parent, its parent, ... up to the root (``t`` itself may
    lead the sequence). ``tenant`` is ``None`` for actions on the cluster as a whole. The
    best binding that covers the place decides; bindings with unknown roles grant nothing.
    """
    if action not in ACTIONS:
        return f"unknown action {action!r}: nothing grants it"
    place = "the cluster" if tenant is None else f"tenant {tenant!r}"
    if tenant is not None and namespace is not None:
        place += f" namespace {namespace!r}"
    chain: Sequence[str] = () if tenant is None else (tenant, *ancestors(tenant))
    best: RoleBinding | None = None
    global_admin = False
    for binding in bindings:
        if binding.principal != principal or binding.role not in ROLES:
            continue
        if not _covers(binding, tenant, namespace, chain):
            continue
        # Ties between equal roles do not matter, except for cluster actions, which only a
        # global transfer-admin binding grants: remember one whichever binding ranks first.
        global_admin |= binding.tenant == GLOBAL_TENANT and binding.role == TRANSFER_ADMIN
        if best is None or _RANK[binding.role] > _RANK[best.role]:
            best = binding
    if action in CLUSTER_ACTIONS:
        if global_admin:
            return None
        return (
            f"principal {principal!r} may not {action} in {place}: "
            f"it needs a global {TRANSFER_ADMIN} binding (tenant {GLOBAL_TENANT!r})"
        )
    if best is None:
        return f"principal {principal!r} has no role in {place}: {action} is refused"
    if role_allows(best.role, action):
        return None
    needed = next(role for role, actions in ROLES.items() if action in actions)
    return (
        f"principal {principal!r} is {best.role} in {place}, which does not allow {action}: "
        f"it needs {needed}"
    )


__all__ = [
    "ACTIONS",
    "CLUSTER_ACTIONS",
    "GLOBAL_TENANT",
    "ROLES",
    "TOKEN_PREFIX",
    "TRANSFER_ADMIN",
    "TRANSFER_USER",
    "VIEWER",
    "Refused",
    "RoleBinding",
    "TokenRecord",
    "UnknownRoleError",
    "Verified",
    "decide",
    "issue_token",
    "parse_token",
    "role_allows",
    "validate_binding",
    "verify",
]
