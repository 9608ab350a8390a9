"""The tenancy records: :class:`Tenant` with its :class:`Quotas`, configuration blocks and
namespaces, as frozen dataclasses that convert to plain (msgpack and JSON) data and back in one
place, :func:`tenant_to_plain` / :func:`tenant_from_plain`; and the
:class:`DataSharingAgreement` between two tenants.

A quota of ``None`` is no limit of the tenant's own; the tenant's ancestors still bound it,
since every quota applies up the hierarchy.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from quorus.core.controller.codec import RecordFormatError, from_plain, to_plain

#: The tenant every job belongs to unless it says otherwise; it needs no configuration and is
#: unlimited unless a TenantConfiguration named ``default`` says otherwise.
DEFAULT_TENANT = "default"
DEFAULT_NAMESPACE = "default"

#: The configuration blocks of a tenant (and of a namespace) that ``effective`` merges.
CONFIGURATION_BLOCKS = ("defaults", "security", "governance", "monitoring", "variables")


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    #: New submissions are refused; jobs already admitted run to their end.
    SUSPENDED = "suspended"


class Allocation(enum.StrEnum):
    """Which agents a tenant's jobs run on (``resources.allocation.strategy``)."""

    #: Any agent not dedicated to another tenant.
    SHARED = "shared"
    #: Only agents registered with the tenant (physical isolation).
    DEDICATED = "dedicated"
    #: Agents registered with the tenant, and shared ones.
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Quotas:
    """A tenant's limits, by their TenantConfiguration names (sizes in bytes)."""

    max_concurrent_transfers: int | None = None
    max_daily_transfers: int | None = None
    max_monthly_data_transfer: int | None = None
    max_file_size: int | None = None
    max_bandwidth_mbps: float | None = None
    max_storage_usage: int | None = None

    def items(self) -> Iterator[tuple[str, int | float | None]]:
        """``(quota name as written in YAML, limit)`` for every quota, set or not."""
        for f in fields(self):
            yield QUOTA_NAMES[f.name], getattr(self, f.name)


#: Field name → the name a TenantConfiguration (and every message) uses.
QUOTA_NAMES = {
    "max_concurrent_transfers": "maxConcurrentTransfers",
    "max_daily_transfers": "maxDailyTransfers",
    "max_monthly_data_transfer": "maxMonthlyDataTransfer",
    "max_file_size": "maxFileSize",
    "max_bandwidth_mbps": "maxBandwidthMbps",
    "max_storage_usage": "maxStorageUsage",
}


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant as the controller's replicated state holds it.

    ``parent`` is ``None`` for a root. ``namespaces`` are those its jobs may use besides
    ``default``: its own (``metadata.namespace``) and those configured for it.
    ``allowed_destinations`` are its storage roots (``security.networking
    .allowedDestinations``). ``settings`` holds the tenant's configuration blocks
    (:data:`CONFIGURATION_BLOCKS`) as written, and ``namespace_settings`` those of each of its
    namespaces; both are read-only plain data. ``updated_at`` is the time of the last command
    that changed it.
    """

    id: str
    parent: str | None = None
    namespaces: tuple[str, ...] = ()
    status: TenantStatus = TenantStatus.ACTIVE
    quotas: Quotas = field(default_factory=Quotas)
    allowed_destinations: tuple[str, ...] = ()
    allocation: Allocation = Allocation.SHARED
    priority: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    updated_at: float = 0.0
    settings: Mapping[str, Any] = field(default_factory=dict)
    namespace_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def dedicated_agents(self) -> bool:
        """Its jobs run on agents registered with it (dedicated or hybrid allocation)."""
        return self.allocation is not Allocation.SHARED

    def summary(self) -> dict[str, Any]:
        """What ``GET /v1/tenants`` lists for it."""
        return {"id": self.id, "parent": self.parent, "status": str(self.status),
                "namespaces": list(self.namespaces), "allocation": str(self.allocation),
                "updated_at": self.updated_at}


# The typed part goes through core's codec (strict field checks); the configuration blocks are
# free-form JSON data the codec has no type for, so they travel beside it.
@dataclass(frozen=True, slots=True)
class _TypedTenant:
    id: str
    parent: str | None
    namespaces: tuple[str, ...]
    status: TenantStatus
    quotas: Quotas
    allowed_destinations: tuple[str, ...]
    allocation: Allocation
    priority: str | None
    labels: Mapping[str, str]
    description: str
    updated_at: float


_TYPED = tuple(f.name for f in fields(_TypedTenant))


def tenant_to_plain(tenant: Tenant) -> dict[str, Any]:
    """``tenant`` as msgpack- and JSON-ready data (:func:`tenant_from_plain` reverses it)."""
    typed = _TypedTenant(**{name: getattr(tenant, name) for name in _TYPED})
    plain: dict[str, Any] = to_plain(typed)
    plain["settings"] = _plain_tree(tenant.settings, "settings")
    plain["namespace_settings"] = _plain_tree(tenant.namespace_settings, "namespace_settings")
    return plain


def tenant_from_plain(data: Any) -> Tenant:
    """The :class:`Tenant` in ``data``; :class:`RecordFormatError` naming the bad field."""
    if not isinstance(data, Mapping):
        raise RecordFormatError(f"tenant: expected a map, got {type(data).__name__}")
    rest = dict(data)
    settings = rest.pop("settings", {})
    namespace_settings = rest.pop("namespace_settings", {})
    typed = from_plain(_TypedTenant, rest, path=f"tenant {rest.get('id')!r}")
    if not isinstance(settings, Mapping) or not isinstance(namespace_settings, Mapping):
        raise RecordFormatError(f"tenant {typed.id!r}: settings must be maps")
    return Tenant(**{name: getattr(typed, name) for name in _TYPED},
                  settings=_plain_tree(settings, "settings"),
                  namespace_settings=_plain_tree(namespace_settings, "namespace_settings"))


class AgreementStatus(enum.StrEnum):
    """Where an agreement stands at a given time."""

    #: Its validity has not started yet.
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class DataSharingAgreement:
    """A recorded data-sharing agreement: ``provider`` may share its data with ``recipient``
    from ``valid_from`` until ``expires_at`` (``None``: until revoked).

    An agreement is directional: it lets the provider's data reach the recipient, not the
    other way round, unless it is ``mutual`` (then each tenant may share with the other).
    ``purpose`` and ``classification`` are recorded with it, as are who recorded it and
    when, and, once revoked, who revoked it, when and why. A revoked agreement is kept (it is
    part of the record) and covers nothing any more.
    """

    id: str
    provider: str
    recipient: str
    valid_from: float
    recorded_at: float
    expires_at: float | None = None
    mutual: bool = False
    purpose: str = ""
    classification: str | None = None
    recorded_by: str = ""
    revoked_at: float | None = None
    revoked_by: str = ""
    revoke_reason: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def tenants(self) -> tuple[str, str]:
        return (self.provider, self.recipient)

    def names(self, tenant: str) -> bool:
        return tenant in (self.provider, self.recipient)

    def lets(self, source: str, destination: str) -> bool:
        """Whether it lets ``source``'s data reach ``destination`` (its direction only,
        whatever its status)."""
        if (source, destination) == (self.provider, self.recipient):
            return True
        return self.mutual and (destination, source) == (self.provider, self.recipient)

    def status(self, at: float) -> AgreementStatus:
        if self.revoked:
            return AgreementStatus.REVOKED
        if at < self.valid_from:
            return AgreementStatus.PENDING
        if self.expires_at is not None and at >= self.expires_at:
            return AgreementStatus.EXPIRED
        return AgreementStatus.ACTIVE

    def revoke(self, at: float, by: str, reason: str) -> DataSharingAgreement:
        return replace(self, revoked_at=at, revoked_by=by, revoke_reason=reason)

    def view(self, at: float) -> dict[str, Any]:
        """What the API shows: every field, the times also as ISO 8601, and the status at
        ``at``."""
        data = agreement_to_plain(self)
        for name in ("valid_from", "expires_at", "recorded_at", "revoked_at"):
            moment = data[name]
            data[f"{name}_iso"] = None if moment is None else iso_time(moment)
        data["status"] = str(self.status(at))
        return data


def iso_time(moment: float) -> str:
    """``moment`` (seconds since the epoch) as ISO 8601 UTC, e.g. ``2026-01-31T12:00:00Z``."""
    shown = datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()
    return shown.replace("+00:00", "Z")


def agreement_to_plain(agreement: DataSharingAgreement) -> dict[str, Any]:
    """``agreement`` as msgpack- and JSON-ready data (:func:`agreement_from_plain` reverses
    it)."""
    plain: dict[str, Any] = to_plain(agreement)
    return plain


def agreement_from_plain(data: Any) -> DataSharingAgreement:
    """The :class:`DataSharingAgreement` in ``data``; :class:`RecordFormatError` naming the
    bad field."""
    return from_plain(DataSharingAgreement, data, path="agreement")


def _plain_tree(value: Any, path: str) -> Any:
    """A copy of JSON-like ``value`` (maps with text keys, lists, scalars), checked."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecordFormatError(f"{path}: key {key!r} is not text")
            out[key] = _plain_tree(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain_tree(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise RecordFormatError(f"{path}: {type(value).__name__} is not JSON data")


__all__ = [
    "CONFIGURATION_BLOCKS",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TENANT",
    "QUOTA_NAMES",
    "AgreementStatus",
    "Allocation",
    "DataSharingAgreement",
    "Quotas",
    "Tenant",
    "TenantStatus",
    "agreement_from_plain",
    "agreement_to_plain",
    "iso_time",
    "tenant_from_plain",
    "tenant_to_plain",
]
