"""``AccessStateModule``: the ``access`` section of the controller's replicated state — the
principals (users and service accounts, each of one tenant), the records of their API tokens
(SHA-256 of the secret, never the secret) and their role bindings.

Applying is deterministic and checks what the state itself can decide: a principal exists once,
a token belongs to the principal named, a role exists (:func:`quorus.tenant.tokens
.validate_binding`). Deleting a principal removes its tokens and bindings with it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quorus.core.controller.commands import Command
from quorus.core.controller.state import ControllerState, SnapshotFormatError
from quorus.core.errors import ConfigurationError
from quorus.tenant.access.commands import (
    COMMAND_TYPES,
    AccessResult,
    BindRole,
    CreatePrincipal,
    DeletePrincipal,
    IssueToken,
    RevokeToken,
    UnbindRole,
)
from quorus.tenant.tokens import RoleBinding, TokenRecord, validate_binding

SNAPSHOT_FORMAT = 1
#: Principal names: what a log line, a URL path segment and a role binding can carry as is.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class PrincipalKind(enum.StrEnum):
    USER = "user"
    SERVICE_ACCOUNT = "service-account"


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """A principal as the replicated state holds it: who may administer it is decided by
    ``tenant``; what it may do, by its role bindings."""

    name: str
    kind: PrincipalKind
    tenant: str
    created_at: float
    created_by: str = ""

    def to_data(self) -> dict[str, Any]:
        return {"name": self.name, "kind": str(self.kind), "tenant": self.tenant,
                "created_at": self.created_at, "created_by": self.created_by}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PrincipalRecord:
        return cls(name=str(data["name"]), kind=PrincipalKind(data["kind"]),
                   tenant=str(data["tenant"]), created_at=float(data["created_at"]),
                   created_by=str(data.get("created_by", "")))


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a principal, or ``None``."""
    if _NAME.fullmatch(name) is None:
        return (f"invalid principal name {name[:140]!r}: use 1 to 128 letters, digits, '.', "
                "'_', '@' or '-', starting with a letter or digit")
    return None


class AccessStateModule:
    """The ``access`` section of the controller's state (see the module docstring)."""

    name = "access"
    command_types: Sequence[type[Command]] = COMMAND_TYPES
    #: After these the leader judges every connected agent's access again: a token revoked,
    #: a principal deleted (its tokens with it) or a role binding taken back ends the
    #: session of an agent that no longer proves who it is or may no longer register.
    access_commands: Sequence[type[Command]] = (RevokeToken, DeletePrincipal, UnbindRole)

    def __init__(self) -> None:
        self.principals: dict[str, PrincipalRecord] = {}
        #: Every token record by token id (what :func:`quorus.tenant.tokens.verify` reads).
        self.tokens: dict[str, TokenRecord] = {}
        self.bindings: list[RoleBinding] = []

    # -- reading --------------------------------------------------------------------------------

    def principal(self, name: str) -> PrincipalRecord | None:
        return self.principals.get(name)

    def tokens_of(self, name: str) -> list[TokenRecord]:
        return sorted((t for t in self.tokens.values() if t.principal == name),
                      key=lambda t: (t.created_at, t.token_id))

    def bindings_of(self, name: str) -> list[RoleBinding]:
        return [b for b in self.bindings if b.principal == name]

    # -- applying -------------------------------------------------------------------------------

    def apply(self, command: Command, index: int, state: ControllerState) -> AccessResult:
        if isinstance(command, CreatePrincipal):
            return self._create(command)
        name = command.name if isinstance(command, DeletePrincipal) else getattr(
            command, "principal", "")
        if name not in self.principals:
            return AccessResult(False, f"no principal {name!r}: create it first "
                                "(quorus principal create)", missing=True)
        if isinstance(command, DeletePrincipal):
            del self.principals[name]
            self.tokens = {k: t for k, t in self.tokens.items() if t.principal != name}
            self.bindings = [b for b in self.bindings if b.principal != name]
            return AccessResult(True)
        if isinstance(command, IssueToken):
            return self._issue(command)
        if isinstance(command, RevokeToken):
            return self._revoke(command)
        if isinstance(command, BindRole | UnbindRole):
            return self._bind(command)
        return AccessResult(False, f"the access module does not apply {command.NAME}")

    def _create(self, command: CreatePrincipal) -> AccessResult:
        problem = check_name(command.name)
        if problem is None and command.kind not in tuple(PrincipalKind):
            problem = (f"unknown principal kind {command.kind!r}: use "
                       f"{' or '.join(PrincipalKind)}")
        if problem is None and not command.tenant:
            problem = f"principal {command.name!r} needs a tenant"
        if problem is not None:
            return AccessResult(False, problem)
        record = PrincipalRecord(command.name, PrincipalKind(command.kind), command.tenant,
                                 command.at, command.created_by)
        existing = self.principals.get(command.name)
        if existing is not None:
            if (existing.kind, existing.tenant) == (record.kind, record.tenant):
                return AccessResult(True, f"principal {command.name!r} exists already",
                                    duplicate=True)
            return AccessResult(False, f"principal {command.name!r} exists already, a "
                                f"{existing.kind} of tenant {existing.tenant!r}: choose "
                                "another name or delete it first")
        self.principals[command.name] = record
        return AccessResult(True)

    def _issue(self, command: IssueToken) -> AccessResult:
        existing = self.tokens.get(command.token_id)
        if existing is not None:
            if existing.secret_sha256 == command.secret_sha256 and \
                    existing.principal == command.principal:
                return AccessResult(True, duplicate=True)
            return AccessResult(False, f"token id {command.token_id} is taken: issue again")
        self.tokens[command.token_id] = TokenRecord(
            token_id=command.token_id, principal=command.principal,
            secret_sha256=command.secret_sha256, created_at=command.at,
            expires_at=command.expires_at)
        return AccessResult(True)

    def _revoke(self, command: RevokeToken) -> AccessResult:
        record = self.tokens.get(command.token_id)
        if record is None or record.principal != command.principal:
            return AccessResult(False, f"principal {command.principal!r} has no token "
                                f"{command.token_id!r}: list its tokens with quorus "
                                "principal show", missing=True)
        if record.revoked:
            return AccessResult(True, f"token {command.token_id} was revoked already",
                                duplicate=True)
        self.tokens[command.token_id] = record.revoke()
        return AccessResult(True)

    def _bind(self, command: BindRole | UnbindRole) -> AccessResult:
        binding = RoleBinding(command.principal, command.role, command.tenant,
                              command.namespace)
        try:
            validate_binding(binding)
        except ConfigurationError as exc:
            return AccessResult(False, str(exc))
        held = binding in self.bindings
        if isinstance(command, BindRole):
            if held:
                return AccessResult(True, "the binding exists already", duplicate=True)
            self.bindings.append(binding)
            return AccessResult(True)
        if not held:
            return AccessResult(False, f"principal {command.principal!r} has no binding "
                                f"{_shown(binding)}: see its bindings with quorus principal "
                                "show", missing=True)
        self.bindings.remove(binding)
        return AccessResult(True)

    # -- snapshot -------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return {"format": SNAPSHOT_FORMAT,
                "principals": [p.to_data() for p in self.principals.values()],
                "tokens": [t.to_data() for t in self.tokens.values()],
                "bindings": [b.to_data() for b in self.bindings]}

    def restore(self, data: Any) -> None:
        principals: dict[str, PrincipalRecord] = {}
        tokens: dict[str, TokenRecord] = {}
        bindings: list[RoleBinding] = []
        if data is not None:
            if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotFormatError("the snapshot's access section is not format "
                                          f"{SNAPSHOT_FORMAT}: restore it with the "
                                          "quorus-tenant version that wrote it")
            try:
                for plain in data.get("principals", []):
                    record = PrincipalRecord.from_data(plain)
                    principals[record.name] = record
                for plain in data.get("tokens", []):
                    token = TokenRecord.from_data(plain)
                    tokens[token.token_id] = token
                bindings = [RoleBinding.from_data(b) for b in data.get("bindings", [])]
            except (KeyError, TypeError, ValueError) as exc:
                raise SnapshotFormatError(f"the snapshot's access section is malformed: "
                                          f"{exc!r}") from None
        self.principals = principals
        self.tokens = tokens
        self.bindings = bindings


def _shown(binding: RoleBinding) -> str:
    where = binding.tenant if binding.namespace is None else \
        f"{binding.tenant}/{binding.namespace}"
    return f"{binding.role} on {where}"


__all__ = ["NAME_PATTERN", "SNAPSHOT_FORMAT", "AccessStateModule", "PrincipalKind",
           "PrincipalRecord", "check_name"]
