"""The cross-tenant rule on its own: which pairs of a workflow's tenants cross (the hierarchy),
which way data goes between them (the roles of ``spec.tenants``), and whether the agreements
it names cover them at the command's time (recorded, naming both, in that direction, in force,
not revoked), with ``crossTenantAllowed`` declared; every reason is named."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from quorus.core.controller.commands import TenantReach
from quorus.tenant.model import AgreementStatus, DataSharingAgreement
from quorus.tenant.sharing.rule import MAX_REASONS, Requirement, refusal, requirements
from quorus.workflow.controller.commands import WorkflowReach

T0 = 1_700_000_000.0
DAY = 86400.0
#: enterprise ─┬─ acme-corp ── acme-finance
#:             └─ acme-labs
#: partner-corp, globex (roots of their own)
PARENTS: dict[str, str | None] = {"enterprise": None, "acme-corp": "enterprise",
                                  "acme-finance": "acme-corp", "acme-labs": "enterprise",
                                  "partner-corp": None, "globex": None}


def chain(tenant: str) -> tuple[str, ...]:
    found = [tenant]
    while PARENTS.get(found[-1]) is not None:
        parent = PARENTS[found[-1]]
        assert parent is not None
        found.append(parent)
    return tuple(found)


def agreement(agreement_id: str = "DSA-2024-001", provider: str = "acme-corp",
              recipient: str = "partner-corp", **terms: object) -> DataSharingAgreement:
    fields: dict[str, object] = {"valid_from": T0, "recorded_at": T0, **terms}
    return DataSharingAgreement(agreement_id, provider, recipient, **fields)  # type: ignore[arg-type]


def design_reach(**changes: object) -> WorkflowReach:
    """The design's multi-tenant workflow: run by enterprise, acme-corp's group the source,
    partner-corp's the destination, naming DSA-2024-001."""
    reach = WorkflowReach("enterprise", ("acme-corp", "partner-corp"), ("DSA-2024-001",), True,
                          (("acme-corp", "source"), ("partner-corp", "destination")))
    return replace(reach, **changes)  # type: ignore[arg-type]


def refused(reach: TenantReach, *agreements: DataSharingAgreement,
            at: float | None = T0 + DAY) -> str | None:
    return refusal(reach, at, {a.id: a for a in agreements}, chain)


def test_a_parent_acting_in_its_own_subtree_needs_no_agreement() -> None:
    down = TenantReach("enterprise", ("enterprise", "acme-corp", "acme-finance"))
    assert requirements(down, chain) == []
    assert refused(down) is None
    up = TenantReach("acme-finance", ("enterprise",))  # a child running a group of its parent
    assert refused(up) is None
    assert refused(TenantReach("globex", ("globex",))) is None


def test_siblings_under_the_owner_that_runs_them_need_no_agreement() -> None:
    fanout = TenantReach("enterprise", ("acme-corp", "acme-labs", "acme-finance"))
    assert requirements(fanout, chain) == []
    assert refused(fanout) is None
    # Run by one of them, they do cross: acme-corp does not administer acme-labs.
    assert requirements(TenantReach("acme-corp", ("acme-corp", "acme-labs")), chain) == [
        Requirement("acme-corp", "acme-labs", True), Requirement("acme-labs", "acme-corp", True)]


def test_an_owner_running_only_in_another_tenant_crosses_with_it() -> None:
    assert requirements(TenantReach("globex", ("partner-corp",)), chain) == [
        Requirement("globex", "partner-corp", True), Requirement("partner-corp", "globex", True)]


def test_a_partner_outside_the_owners_subtree_crosses() -> None:
    reach = design_reach(agreements=(), declared=False, roles=())
    assert requirements(reach, chain) == [Requirement("acme-corp", "partner-corp", True),
                                          Requirement("partner-corp", "acme-corp", True)]
    reason = refused(reach)
    assert reason == (
        "cross-tenant workflow of tenant enterprise refused: the workflow crosses tenants "
        "(acme-corp and partner-corp) without declaring spec.execution.crossTenantAllowed: "
        "true; data of tenant acme-corp may reach tenant partner-corp, which needs a "
        "data-sharing agreement: the workflow names no agreement "
        "(spec.security.dataSharing.agreements); data of tenant partner-corp may reach "
        "tenant acme-corp, which needs a data-sharing agreement: the workflow names no "
        "agreement (spec.security.dataSharing.agreements)")


def test_the_design_workflow_is_covered_by_its_one_way_agreement() -> None:
    assert refused(design_reach(), agreement()) is None


def test_crossTenantAllowed_must_be_declared_even_with_an_agreement() -> None:
    reason = refused(design_reach(declared=False), agreement())
    assert reason is not None
    assert "without declaring spec.execution.crossTenantAllowed: true" in reason
    assert "DSA-2024-001" not in reason  # the agreement itself is fine


def test_direction_comes_from_the_declared_roles() -> None:
    backwards = agreement(provider="partner-corp", recipient="acme-corp")
    reason = refused(design_reach(), backwards)
    assert reason is not None and ("agreement DSA-2024-001 lets partner-corp share with "
                                   "acme-corp only (it is not mutual), not acme-corp with "
                                   "partner-corp") in reason
    assert refused(design_reach(), replace(backwards, mutual=True)) is None
    # Roles swapped: now partner-corp's data reaches acme-corp, which the reversed one lets.
    swapped = design_reach(roles=(("acme-corp", "destination"), ("partner-corp", "source")))
    assert refused(swapped, backwards) is None
    assert refused(swapped, agreement()) is not None


def test_without_roles_data_may_go_both_ways() -> None:
    reach = design_reach(roles=())
    one_way = refused(reach, agreement())
    assert one_way is not None and "data of tenant partner-corp may reach tenant acme-corp" \
        in one_way and "data of tenant acme-corp may reach" not in one_way
    assert refused(reach, agreement(mutual=True)) is None
    both = (agreement(), agreement("DSA-2024-002", "partner-corp", "acme-corp"))
    assert refused(design_reach(roles=(), agreements=("DSA-2024-001", "DSA-2024-002")),
                   *both) is None


def test_two_sources_still_need_an_agreement_naming_both_in_either_direction() -> None:
    reach = design_reach(roles=(("acme-corp", "source"), ("partner-corp", "source")))
    assert requirements(reach, chain) == [Requirement("acme-corp", "partner-corp", False)]
    assert "tenants acme-corp and partner-corp cross" in (refused(reach) or "")
    backwards = agreement(provider="partner-corp", recipient="acme-corp")
    assert refused(reach, backwards) is None


def test_an_owner_outside_the_tree_crosses_every_tenant_it_reaches() -> None:
    reach = TenantReach("globex", ("acme-corp",), ("DSA-9",), True)
    needed = requirements(reach, chain)
    assert needed == [Requirement("globex", "acme-corp", True),
                      Requirement("acme-corp", "globex", True)]
    assert refused(reach, agreement("DSA-9", "globex", "acme-corp", mutual=True)) is None


def test_expiry_and_start_are_checked_at_the_commands_time() -> None:
    dated = agreement(valid_from=T0, expires_at=T0 + 10 * DAY)
    assert refused(design_reach(), dated, at=T0) is None
    assert refused(design_reach(), dated, at=T0 + 10 * DAY - 1) is None
    expired = refused(design_reach(), dated, at=T0 + 10 * DAY)
    assert expired is not None and \
        "agreement DSA-2024-001 expired at 2023-11-24T22:13:20Z" in expired
    early = refused(design_reach(), dated, at=T0 - 1)
    assert early is not None and \
        "agreement DSA-2024-001 is not in force before 2023-11-14T22:13:20Z" in early
    untimed = refused(design_reach(), dated, at=None)
    assert untimed is not None and "carries no time" in untimed


def test_a_revoked_agreement_covers_nothing_and_says_why() -> None:
    revoked = agreement().revoke(T0 + 2 * DAY, "root", "partner audit failed")
    assert revoked.status(T0 + DAY) is AgreementStatus.REVOKED
    reason = refused(design_reach(), revoked)
    assert reason is not None and ("agreement DSA-2024-001 was revoked at "
                                   "2023-11-16T22:13:20Z (partner audit failed)") in reason


def test_unknown_and_unrelated_agreements_are_named() -> None:
    reach = design_reach(agreements=("DSA-404", "DSA-GLOBEX", "DSA-404"))
    reason = refused(reach, agreement("DSA-GLOBEX", "acme-corp", "globex"))
    assert reason is not None
    assert reason.count("agreement DSA-404 is not recorded") == 1
    assert "agreement DSA-GLOBEX does not name tenant partner-corp" in reason
    neither = refused(design_reach(agreements=("X",)), agreement("X", "globex", "enterprise"))
    assert neither is not None and "agreement X does not name tenant acme-corp or " \
        "partner-corp" in neither


def test_any_one_named_agreement_in_force_covers_the_pair() -> None:
    old = agreement("DSA-2023-001", expires_at=T0 + 1)
    reach = design_reach(agreements=("DSA-2023-001", "DSA-2024-001"))
    assert refused(reach, old, agreement()) is None
    assert refused(reach, old) is not None


def test_a_long_refusal_names_the_first_reasons_and_counts_the_rest() -> None:
    tenants = tuple(f"t{i}" for i in range(6))
    reason = refused(TenantReach("globex", tenants, (), True))
    assert reason is not None
    # 6 tenants and the owner, no hierarchy between them: 21 pairs, both ways each.
    assert reason.count("needs a data-sharing agreement") == MAX_REASONS
    assert reason.endswith(f"and {42 - MAX_REASONS} more")


@given(st.lists(st.sampled_from(sorted(PARENTS)), min_size=1, max_size=5),
       st.booleans())
def test_a_reach_along_one_line_of_the_hierarchy_is_never_refused(
        picked: list[str], declared: bool) -> None:
    line = chain(picked[0])  # the tenant and its ancestors
    tenants = tuple(t for t in picked if t in line) or (picked[0],)
    reach = TenantReach(line[-1], tenants, (), declared)
    assert refused(reach) is None
