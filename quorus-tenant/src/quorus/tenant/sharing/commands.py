"""The replicated commands of the ``sharing`` state module: record a data-sharing agreement
between two tenants, and revoke one. Each carries the leader's time ``at`` (and the times of
the agreement itself), so every controller applying the log reaches the same agreements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from quorus.core.controller.commands import Command


@dataclass(frozen=True, slots=True)
class RecordAgreement(Command):
    """Agreement ``agreement_id``: ``provider`` may share its data with ``recipient`` (and
    the other way round too if ``mutual``) from ``valid_from`` (``None``: from ``at``) until
    ``expires_at`` (``None``: until revoked). Recording the same agreement again changes
    nothing; the same id with other terms is refused."""

    NAME: ClassVar[str] = "sharing-record-agreement"
    agreement_id: str
    provider: str
    recipient: str
    at: float
    valid_from: float | None = None
    expires_at: float | None = None
    mutual: bool = False
    purpose: str = ""
    classification: str | None = None
    recorded_by: str = ""


@dataclass(frozen=True, slots=True)
class RevokeAgreement(Command):
    """End agreement ``agreement_id`` at once; it stays on record, revoked."""

    NAME: ClassVar[str] = "sharing-revoke-agreement"
    agreement_id: str
    at: float
    revoked_by: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SharingResult:
    """What applying a sharing command gives back to its proposer (``Applied.value``): ``ok``
    or the reason it was refused (``missing``: the agreement named does not exist), whether
    it changed nothing because it had been applied already, and the two tenants the agreement
    names (whose audit chains record it)."""

    ok: bool
    message: str = ""
    missing: bool = False
    duplicate: bool = False
    tenants: tuple[str, ...] = ()


COMMAND_TYPES: tuple[type[Command], ...] = (RecordAgreement, RevokeAgreement)

__all__ = ["COMMAND_TYPES", "RecordAgreement", "RevokeAgreement", "SharingResult"]
