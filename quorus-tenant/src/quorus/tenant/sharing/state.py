"""``SharingStateModule``: the ``sharing`` section of the controller's replicated state — the
data-sharing agreements between tenants — and the admission of commands that reach several
tenants.

- ``apply`` records and revokes agreements. Recording checks what the state can decide: an id
  of letters, digits, ``.``, ``_`` and ``-``; two different tenants, both configured (or
  ``default``); an expiry after the start. The same agreement recorded again changes nothing;
  the same id with other terms is refused (agreements are not edited: revoke one and record
  another). Revoking an unknown agreement is refused; revoking a revoked one changes nothing.
- ``admit`` is asked about every other module's command and every built-in one: a command
  that declares a :class:`~quorus.core.controller.commands.TenantReach` (a workflow submitted,
  registered or fired by a trigger) is refused with ``admission-denied`` unless the
  cross-tenant rule of :mod:`quorus.tenant.sharing.rule` holds at the command's time ``at``.

With no tenant configured nothing is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from quorus.core.controller.codec import RecordFormatError
from quorus.core.controller.commands import Command
from quorus.core.controller.results import RejectCode, Rejected
from quorus.core.controller.state import ControllerState, SnapshotFormatError
from quorus.tenant.model import (
    DEFAULT_TENANT,
    DataSharingAgreement,
    agreement_from_plain,
    agreement_to_plain,
)
from quorus.tenant.sharing.commands import (
    COMMAND_TYPES,
    RecordAgreement,
    RevokeAgreement,
    SharingResult,
)
from quorus.tenant.sharing.rule import refusal

SNAPSHOT_FORMAT = 1
#: Agreement ids: what a log line, a URL path segment and a workflow's YAML carry as is.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ID = re.compile(ID_PATTERN)
MAX_PURPOSE = 1024
MAX_CLASSIFICATION = 128


def tenant_lookup(state: ControllerState) -> tuple[Callable[[str], bool],
                                                  Callable[[str], Sequence[str]]] | None:
    """Whether a tenant is configured, and its chain (itself and its ancestors), from the
    ``tenant`` state module; ``None`` when there is none or it has no tenant configured."""
    tenants = state.modules.get("tenant")
    configured = getattr(tenants, "tenants", None)
    chain = getattr(tenants, "chain", None)
    if not configured or not callable(chain):
        return None
    return (lambda tenant: tenant == DEFAULT_TENANT or tenant in configured), chain


def agreement_problem(command: RecordAgreement, known: Callable[[str], bool] | None
                      ) -> str | None:
    """Why ``command`` cannot record an agreement (``known``: whether a tenant is
    configured; ``None``: no tenant is), or ``None``."""
    if _ID.fullmatch(command.agreement_id) is None:
        return (f"invalid agreement id {command.agreement_id[:140]!r}: use 1 to 128 letters, "
                "digits, '.', '_' or '-', starting with a letter or digit (DSA-2024-001)")
    for role, tenant in (("provider", command.provider), ("recipient", command.recipient)):
        if not tenant:
            return f"agreement {command.agreement_id} needs a {role} tenant"
        if known is None or not known(tenant):
            return (f"agreement {command.agreement_id}: no tenant {tenant!r} ({role}): apply "
                    "its TenantConfiguration (quorus tenant apply FILE) first")
    if command.provider == command.recipient:
        return (f"agreement {command.agreement_id} names tenant {command.provider} twice: an "
                "agreement is between two different tenants (within a tenant none is needed)")
    for name in ("at", "valid_from", "expires_at"):
        moment = getattr(command, name)
        if moment is not None and not math.isfinite(moment):
            return f"agreement {command.agreement_id}: {name} is not a finite time"
    start = command.valid_from if command.valid_from is not None else command.at
    if command.expires_at is not None and command.expires_at <= start:
        return (f"agreement {command.agreement_id} expires ({command.expires_at}) before it "
                f"starts ({start}): give an expiry after its start")
    if len(command.purpose) > MAX_PURPOSE:
        return f"agreement {command.agreement_id}: purpose longer than {MAX_PURPOSE} characters"
    if command.classification is not None and \
            not 0 < len(command.classification) <= MAX_CLASSIFICATION:
        return (f"agreement {command.agreement_id}: classification must be 1 to "
                f"{MAX_CLASSIFICATION} characters")
    return None


def _same_terms(existing: DataSharingAgreement, command: RecordAgreement) -> bool:
    if command.valid_from is not None and command.valid_from != existing.valid_from:
        return False
    return (existing.provider, existing.recipient, existing.mutual, existing.expires_at,
            existing.purpose, existing.classification) == (
        command.provider, command.recipient, command.mutual, command.expires_at,
        command.purpose, command.classification)


class SharingStateModule:
    """The ``sharing`` section of the controller's state (see the module docstring)."""

    name = "sharing"
    command_types: Sequence[type[Command]] = COMMAND_TYPES

    def __init__(self) -> None:
        #: Every agreement ever recorded, revoked ones included, in the order recorded.
        self.agreements: dict[str, DataSharingAgreement] = {}

    # -- reading --------------------------------------------------------------------------------

    def agreement(self, agreement_id: str) -> DataSharingAgreement | None:
        return self.agreements.get(agreement_id)

    def of_tenant(self, tenant: str) -> list[DataSharingAgreement]:
        """The agreements naming ``tenant``, in the order recorded."""
        return [a for a in self.agreements.values() if a.names(tenant)]

    # -- applying -------------------------------------------------------------------------------

    def apply(self, command: Command, index: int, state: ControllerState) -> SharingResult:
        if isinstance(command, RecordAgreement):
            return self._record(command, state)
        if isinstance(command, RevokeAgreement):
            return self._revoke(command)
        return SharingResult(False, f"the sharing module does not apply {command.NAME}")

    def _record(self, command: RecordAgreement, state: ControllerState) -> SharingResult:
        tenants = (command.provider, command.recipient)
        existing = self.agreements.get(command.agreement_id)
        if existing is not None:
            if _same_terms(existing, command):
                return SharingResult(True, f"agreement {command.agreement_id} is recorded "
                                     "already", duplicate=True, tenants=existing.tenants)
            return SharingResult(False, f"agreement {command.agreement_id} is recorded "
                                 f"already with other terms ({existing.provider} shares "
                                 f"with {existing.recipient}): agreements are not edited; revoke "
                                 "it and record one under a new id")
        lookup = tenant_lookup(state)
        problem = agreement_problem(command, lookup[0] if lookup is not None else None)
        if problem is not None:
            return SharingResult(False, problem)
        self.agreements[command.agreement_id] = DataSharingAgreement(
            id=command.agreement_id, provider=command.provider, recipient=command.recipient,
            valid_from=command.valid_from if command.valid_from is not None else command.at,
            recorded_at=command.at, expires_at=command.expires_at, mutual=command.mutual,
            purpose=command.purpose, classification=command.classification,
            recorded_by=command.recorded_by)
        return SharingResult(True, tenants=tenants)

    def _revoke(self, command: RevokeAgreement) -> SharingResult:
        found = self.agreements.get(command.agreement_id)
        if found is None:
            return SharingResult(False, f"no agreement {command.agreement_id!r}: list them "
                                 "with quorus agreement list", missing=True)
        if found.revoked:
            return SharingResult(True, f"agreement {command.agreement_id} was revoked "
                                 "already", duplicate=True, tenants=found.tenants)
        self.agreements[command.agreement_id] = found.revoke(command.at, command.revoked_by,
                                                             command.reason)
        return SharingResult(True, tenants=found.tenants)

    # -- checking other commands ----------------------------------------------------------------

    def admit(self, command: Command, index: int, state: ControllerState) -> Rejected | None:
        reach = command.tenant_reach()
        if reach is None or not reach.others():
            return None
        lookup = tenant_lookup(state)
        if lookup is None:
            return None  # no tenant configured: every command may reach every tenant
        at = getattr(command, "at", None)
        moment = float(at) if isinstance(at, int | float) and not isinstance(at, bool) \
            else None
        reason = refusal(reach, moment, self.agreements, lookup[1])
        if reason is None:
            return None
        return Rejected(command.NAME, index, RejectCode.ADMISSION_DENIED, reason)

    # -- snapshot -------------------------------------------------------------------------------

    def snapshot(self) -> Any:
        return {"format": SNAPSHOT_FORMAT,
                "agreements": [agreement_to_plain(a) for a in self.agreements.values()]}

    def restore(self, data: Any) -> None:
        agreements: dict[str, DataSharingAgreement] = {}
        if data is not None:
            if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotFormatError("the snapshot's sharing section is not format "
                                          f"{SNAPSHOT_FORMAT}: restore it with the "
                                          "quorus-tenant version that wrote it")
            try:
                for plain in data.get("agreements", []):
                    agreement = agreement_from_plain(plain)
                    agreements[agreement.id] = agreement
            except (RecordFormatError, TypeError) as exc:
                raise SnapshotFormatError(f"the snapshot's sharing section is malformed: "
                                          f"{exc}") from None
        self.agreements = agreements


__all__ = ["ID_PATTERN", "SNAPSHOT_FORMAT", "SharingStateModule", "agreement_problem",
           "tenant_lookup"]
