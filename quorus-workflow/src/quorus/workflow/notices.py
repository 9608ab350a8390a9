"""What a definition asks for that Quorus accepts in the YAML but cannot do here.

The system design's examples carry blocks for features this release does not provide
(encryption at rest, data-quality schema checks, approvals, physical isolation) and hints it
does not need (network routing preferences, monitoring integrations). A requirement that
cannot be met is an ``error``: a run refuses to start rather than, say, write a file
unencrypted that the definition says must be encrypted. A hint is ``info``: reported by a
dry run, otherwise ignored.

``execution.crossTenantAllowed`` and ``security.dataSharing.agreements`` are no notices: the
controllers enforce them when quorus-tenant is installed (a workflow whose groups cross tenants
needs both, see :mod:`quorus.tenant.sharing.rule`); a local run has no tenants to cross.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Notice:
    """``level`` is ``error`` (the run cannot honour it) or ``info`` (ignored here)."""

    level: str
    message: str


def step_notices(spec: Mapping[str, Any]) -> tuple[Notice, ...]:
    """Notices for one transfer's spec."""
    found: list[Notice] = []
    for side in ("source", "destination"):
        block = spec.get(side) or {}
        encryption = block.get("encryption") or {}
        if encryption.get("enabled"):
            algorithm = encryption.get("algorithm", "encryption")
            found.append(Notice("error", f"{side}.encryption asks for {algorithm} at rest, "
                                         "which Quorus does not do: the file would be stored "
                                         "unencrypted (data in transit is protected by the "
                                         "protocol: https, sftp, ftps, SMB 3 encryption)"))
        if block.get("networkOptimization"):
            found.append(Notice("info", f"{side}.networkOptimization is a routing hint; "
                                        "ignored (agents are chosen by location labels)"))
    quality = (spec.get("validation") or {}).get("dataQuality") or {}
    if quality.get("validateSchema") or quality.get("rejectOnValidationFailure"):
        found.append(Notice("error", "validation.dataQuality asks for a schema check of the "
                                     "file's contents, which Quorus does not do (it verifies "
                                     "size and SHA-256)"))
    integrations = (spec.get("monitoring") or {}).get("integrations") or {}
    enabled = sorted(name for name, on in integrations.items() if on)
    if enabled:
        found.append(Notice("info", f"monitoring.integrations ({', '.join(enabled)}) are not "
                                    "built in; use Prometheus metrics or a notify action"))
    return tuple(found)


def workflow_notices(spec: Mapping[str, Any]) -> tuple[Notice, ...]:
    """Notices for a TransferWorkflow's spec (its own blocks, not its transfers')."""
    found: list[Notice] = []
    execution = spec.get("execution") or {}
    if execution.get("approvalRequired"):
        found.append(Notice("error", "execution.approvalRequired: approvals before a run are "
                                     "not available in this release; remove it or approve "
                                     "by reviewing the YAML before it is submitted"))
    if execution.get("isolation") in ("physical", "hybrid"):
        found.append(Notice("error", f"execution.isolation {execution['isolation']}: dedicated "
                                     "agents per tenant are not available in this release"))
    # security.dataSharing.agreements and execution.crossTenantAllowed are enforced on the
    # controller quorum (quorus-tenant's sharing module refuses a workflow that crosses
    # tenants without them); the rest of the block is not.
    sharing = (spec.get("security") or {}).get("dataSharing") or {}
    recorded = [name for name in ("dataClassification", "retentionPolicy") if name in sharing]
    if recorded:
        found.append(Notice("info", f"security.dataSharing.{' and '.join(recorded)} "
                                    f"{'is' if len(recorded) == 1 else 'are'} recorded, not "
                                    "enforced (the agreements are checked by the controllers "
                                    "when the workflow is submitted)"))
    return tuple(found)


__all__ = ["Notice", "step_notices", "workflow_notices"]
