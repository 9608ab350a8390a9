"""The cross-tenant rule: when a command that reaches several tenants (a
:class:`~quorus.core.controller.commands.TenantReach`) may be applied.

The parties of a workflow are the tenants its groups run in, and its owner
(``metadata.tenant``) too when none of its groups runs in the owner's subtree. Two parties
*cross* when neither is an ancestor of the other and they are not both in the owner's
subtree: the owner administers its own subtree, so a company fanning work out to its
departments (siblings) crosses nothing, while a group in a tenant outside it (a partner, or
another company) crosses with every party that is not its ancestor. An owner orchestrating a
flow between one of its own tenants and a partner is represented by its tenant: the agreement
names that tenant and the partner.

For every crossing pair the workflow must name (``spec.security.dataSharing.agreements``) an
agreement that is recorded, not revoked, in force at the command's time (``valid_from <= at <
expires_at``) and names both tenants; and the workflow must declare
``spec.execution.crossTenantAllowed: true``. Otherwise the command is refused with every
reason found.

Direction: an agreement lets its provider's data reach its recipient (both ways if it is
mutual). Which way data goes between two crossing tenants is read from the roles the workflow
declares in ``spec.tenants`` (carried as the reach's optional ``roles``, ``(tenant, role)``
pairs): a ``source`` tenant provides data, a ``destination`` tenant receives it, ``both`` (and
any tenant the workflow gives no role) does either. Each way data can go between the two needs
an agreement in that direction. Two tenants whose roles let no data pass between them (two
sources, or two destinations) still cross: any agreement naming both covers them.

With no tenant configured nothing is refused; so is a reach within one line of the hierarchy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from quorus.core.controller.commands import TenantReach
from quorus.tenant.model import AgreementStatus, DataSharingAgreement, iso_time

#: The roles ``spec.tenants`` may give a tenant.
ROLES = ("source", "destination", "both")
#: At most this many reasons are spelled out in one refusal (the rest are counted).
MAX_REASONS = 8


@dataclass(frozen=True, slots=True)
class Requirement:
    """Tenants ``first`` and ``second`` cross. ``directed``: data may go from ``first`` to
    ``second``, so an agreement must let it; otherwise any agreement naming both will do."""

    first: str
    second: str
    directed: bool

    def shown(self) -> str:
        if self.directed:
            return f"data of tenant {self.first} may reach tenant {self.second}"
        return f"tenants {self.first} and {self.second} cross"


def related(a: str, b: str, chain: Callable[[str], Sequence[str]]) -> bool:
    """Whether one of ``a`` and ``b`` is the other or its ancestor (``chain(t)``: ``t`` and
    its ancestors, nearest first)."""
    return a == b or b in chain(a) or a in chain(b)


def roles_of(reach: TenantReach) -> dict[str, frozenset[str]]:
    """What each tenant with a declared role may do: ``provide`` and/or ``receive``."""
    found: dict[str, set[str]] = {}
    for pair in reach.roles:
        tenant, role = pair
        may = found.setdefault(str(tenant), set())
        if role in ("source", "both"):
            may.add("provide")
        if role in ("destination", "both"):
            may.add("receive")
        if role not in ROLES:  # an unknown role restricts nothing
            may.update(("provide", "receive"))
    return {t: frozenset(may) for t, may in found.items()}


def requirements(reach: TenantReach, chain: Callable[[str], Sequence[str]]
                 ) -> list[Requirement]:
    """What the reach needs covered by agreements, pair by pair in the reach's order."""
    def governed(tenant: str) -> bool:
        return reach.owner in chain(tenant)

    parties = list(dict.fromkeys(reach.tenants))
    if not any(governed(t) for t in parties):
        parties.insert(0, reach.owner)
    roles = roles_of(reach)
    either = frozenset(("provide", "receive"))
    needed: list[Requirement] = []

    for i, a in enumerate(parties):
        for b in parties[i + 1:]:
            if related(a, b, chain) or (governed(a) and governed(b)):
                continue
            may_a, may_b = roles.get(a, either), roles.get(b, either)
            flows = [(x, y) for x, y, may_x, may_y in ((a, b, may_a, may_b),
                                                      (b, a, may_b, may_a))
                     if "provide" in may_x and "receive" in may_y]
            if flows:
                needed.extend(Requirement(x, y, True) for x, y in flows)
            else:
                needed.append(Requirement(a, b, False))
    return needed


def why_not(requirement: Requirement, named: Iterable[str],
            agreements: Mapping[str, DataSharingAgreement], at: float | None) -> str | None:
    """Why none of the ``named`` agreements covers ``requirement`` at time ``at``, or
    ``None`` when one does."""
    problems: list[str] = []
    a, b = requirement.first, requirement.second
    for agreement_id in dict.fromkeys(named):
        found = agreements.get(agreement_id)
        if found is None:
            problems.append(f"agreement {agreement_id} is not recorded")
            continue
        missing = [t for t in (a, b) if not found.names(t)]
        if missing:
            problems.append(f"agreement {agreement_id} does not name tenant "
                            f"{' or '.join(missing)}")
            continue
        if requirement.directed and not found.lets(a, b):
            problems.append(f"agreement {agreement_id} lets {found.provider} share with "
                            f"{found.recipient} only (it is not mutual), not {a} with {b}")
            continue
        if at is None:
            problems.append(f"the command carries no time to check agreement {agreement_id} "
                            "against")
            continue
        status = found.status(at)
        if status is AgreementStatus.ACTIVE:
            return None
        if status is AgreementStatus.REVOKED:
            assert found.revoked_at is not None
            because = f" ({found.revoke_reason})" if found.revoke_reason else ""
            problems.append(f"agreement {agreement_id} was revoked at "
                            f"{iso_time(found.revoked_at)}{because}")
        elif status is AgreementStatus.PENDING:
            problems.append(f"agreement {agreement_id} is not in force before "
                            f"{iso_time(found.valid_from)}")
        else:
            assert found.expires_at is not None
            problems.append(f"agreement {agreement_id} expired at "
                            f"{iso_time(found.expires_at)}")
    if not problems:
        return "the workflow names no agreement (spec.security.dataSharing.agreements)"
    return "; ".join(problems)


def refusal(reach: TenantReach, at: float | None,
            agreements: Mapping[str, DataSharingAgreement],
            chain: Callable[[str], Sequence[str]]) -> str | None:
    """Why a command with ``reach``, applied at ``at``, is refused (every reason found), or
    ``None`` when it may be applied."""
    needed = requirements(reach, chain)
    if not needed:
        return None
    reasons: list[str] = []
    if not reach.declared:
        pairs = dict.fromkeys(tuple(sorted((r.first, r.second))) for r in needed)
        shown = ", ".join(f"{x} and {y}" for x, y in pairs)
        reasons.append(f"the workflow crosses tenants ({shown}) without declaring "
                       "spec.execution.crossTenantAllowed: true")
    for requirement in needed:
        problem = why_not(requirement, reach.agreements, agreements, at)
        if problem is not None:
            reasons.append(f"{requirement.shown()}, which needs a data-sharing agreement: "
                           f"{problem}")
    if not reasons:
        return None
    more = len(reasons) - MAX_REASONS
    shown_reasons = reasons[:MAX_REASONS] + ([f"and {more} more"] if more > 0 else [])
    return (f"cross-tenant workflow of tenant {reach.owner} refused: "
            + "; ".join(shown_reasons))


__all__ = ["MAX_REASONS", "ROLES", "Requirement", "refusal", "related", "requirements",
           "roles_of", "why_not"]
