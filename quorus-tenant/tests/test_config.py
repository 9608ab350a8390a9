"""TenantConfiguration YAML → tenants, and the hierarchy checks: unknown parents, cycles,
children listed elsewhere, quotas above an ancestor's, duplicates, namespace documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.tenant.config import TenantConfigError, merge, parse_configuration
from quorus.tenant.model import (
    Allocation,
    Quotas,
    Tenant,
    TenantStatus,
    tenant_from_plain,
    tenant_to_plain,
)

DATA = Path(__file__).parent / "data"


def load(*names: str) -> dict[str, Tenant]:
    tenants: dict[str, Tenant] = {}
    for name in names:
        tenants = merge(tenants, parse_configuration((DATA / name).read_text(), name))
    return tenants


def tenant(name: str, parent: str | None = None, **quotas: int) -> str:
    written = "".join(f"\n      {k}: {v}" for k, v in quotas.items())
    block = f"\n  resources:\n    quotas:{written}" if quotas else ""
    return (f"apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: {name}\n"
            f"spec:\n  hierarchy:\n    parent: {parent or 'null'}{block}\n")


def problems(text: str, existing: dict[str, Tenant] | None = None) -> tuple[str, ...]:
    with pytest.raises(TenantConfigError) as caught:
        merge(existing or {}, parse_configuration(text, "t.yaml"))
    return caught.value.problems


def test_the_design_document_becomes_a_tenant_with_every_field() -> None:
    acme = load("acme-corp.yaml")["acme-corp"]
    assert acme.parent is None
    assert acme.namespaces == ("enterprise",)
    assert acme.status is TenantStatus.ACTIVE
    assert acme.quotas == Quotas(
        max_concurrent_transfers=50, max_daily_transfers=1000,
        max_monthly_data_transfer=10 * 10**12, max_file_size=5 * 10**9,
        max_bandwidth_mbps=1000, max_storage_usage=10**12)
    assert acme.allowed_destinations == ("s3://acme-corp-*", "/data/acme-corp/*")
    assert acme.allocation is Allocation.SHARED and not acme.dedicated_agents
    assert acme.priority == "high"
    assert acme.labels == {"tier": "premium", "region": "us-east-1", "industry": "finance"}
    assert sorted(acme.settings) == ["defaults", "governance", "monitoring", "security"]
    assert acme.settings["defaults"]["retry"] == {"maxAttempts": 3, "backoff": "exponential",
                                                  "initialDelay": "1s"}
    assert acme.settings["governance"]["audit"]["retentionDays"] == 2555


def test_settings_quorus_does_not_enforce_are_named_on_apply() -> None:
    text = (Path(__file__).parent / "data" / "acme-corp.yaml").read_text()
    notices = parse_configuration(text, "acme-corp.yaml").notices
    shown = [n.split(": ", 2)[2] for n in notices]
    assert shown == [f"{path} is recorded but not enforced" for path in (
        "spec.resources.quotas.maxRetentionDays", "spec.resources.quotas.maxCpuCores",
        "spec.resources.quotas.maxMemoryGB", "spec.security.networking.allowedSourceCIDRs",
        "spec.security.networking.requireVPN", "spec.security.networking.allowCrossRegion",
        "spec.security.authentication", "spec.security.dataProtection",
        "spec.governance.compliance")]
    assert all(n.startswith("acme-corp.yaml:") and ": acme-corp: " in n for n in notices)
    plain = "apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata: {name: t}\nspec: {}\n"
    assert parse_configuration(plain).notices == ()


def test_children_and_namespace_documents_join_the_hierarchy() -> None:
    tenants = load("acme-corp.yaml", "departments.yaml")
    finance = tenants["acme-corp-finance"]
    assert finance.parent == "acme-corp"
    assert finance.allocation is Allocation.DEDICATED and finance.dedicated_agents
    assert finance.namespaces == ("finance", "payroll")
    assert finance.namespace_settings["payroll"]["defaults"]["timeout"] == "2h"
    assert tenants["payroll-team"].parent == "acme-corp-finance"
    assert "finance-payroll-settings" not in tenants


def test_plain_form_round_trips_exactly() -> None:
    for record in load("acme-corp.yaml", "departments.yaml").values():
        plain = tenant_to_plain(record)
        assert tenant_from_plain(plain) == record
        assert tenant_to_plain(tenant_from_plain(plain)) == plain


def test_reapplying_keeps_status_and_namespace_settings() -> None:
    tenants = load("acme-corp.yaml", "departments.yaml")
    import dataclasses

    tenants["acme-corp-finance"] = dataclasses.replace(tenants["acme-corp-finance"],
                                                       status=TenantStatus.SUSPENDED)
    again = merge(tenants, parse_configuration(tenant("acme-corp-finance", "acme-corp",
                                                      maxConcurrentTransfers=7)))
    finance = again["acme-corp-finance"]
    assert finance.status is TenantStatus.SUSPENDED
    assert finance.quotas.max_concurrent_transfers == 7
    assert finance.namespaces == ("payroll",)


def test_an_unknown_parent_is_named() -> None:
    found = problems(tenant("team", "nowhere"))
    assert found == ("tenant 'team': parent 'nowhere' does not exist: apply the parent's "
                     "TenantConfiguration first or in the same file",)


def test_a_cycle_is_named_in_order() -> None:
    text = "---\n".join([tenant("a", "c"), tenant("b", "a"), tenant("c", "b")])
    found = problems(text)
    assert found == ("tenants form a cycle: a → c → b → a: a tenant cannot be its own "
                     "ancestor",)
    assert problems(tenant("self", "self")) == (
        "tenants form a cycle: self → self: a tenant cannot be its own ancestor",)


def test_a_cycle_through_existing_tenants_is_refused() -> None:
    existing = merge({}, parse_configuration("---\n".join([tenant("root"),
                                                           tenant("mid", "root")])))
    found = problems(tenant("root", "mid"), existing)
    assert found == ("tenants form a cycle: mid → root → mid: a tenant cannot be its own "
                     "ancestor",)


def test_a_child_quota_above_its_parent_names_both_values() -> None:
    text = "---\n".join([tenant("company", maxConcurrentTransfers=10,
                                maxMonthlyDataTransfer="1GB"),
                         tenant("dept", "company"),
                         tenant("team", "dept", maxConcurrentTransfers=20,
                                maxMonthlyDataTransfer="2GB")])
    assert problems(text) == (
        "tenant 'team': quota maxConcurrentTransfers 20 is above its ancestor 'company''s "
        "10: lower it to at most 10",
        "tenant 'team': quota maxMonthlyDataTransfer 2000000000 bytes (1.9 GiB) is above its "
        "ancestor 'company''s 1000000000 bytes (953.7 MiB): lower it to at most 1000000000",
    )


def test_lowering_a_parent_below_an_existing_child_is_refused() -> None:
    existing = merge({}, parse_configuration("---\n".join([
        tenant("company", maxDailyTransfers=100), tenant("team", "company",
                                                         maxDailyTransfers=80)])))
    assert problems(tenant("company", maxDailyTransfers=50), existing) == (
        "tenant 'team': quota maxDailyTransfers 80 is above its parent 'company''s 50: "
        "lower it to at most 50",)


def test_children_listed_under_another_parent_are_refused() -> None:
    text = ("apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n  name: a\n"
            "spec:\n  hierarchy:\n    children: [c]\n---\n" + tenant("b") + "---\n"
            + tenant("c", "b"))
    assert problems(text) == ("tenant 'a' lists 'c' as a child, but 'c' has parent 'b': "
                              "make them agree",)


def test_duplicates_and_schema_errors_are_reported_with_positions() -> None:
    found = problems(tenant("a") + "---\n" + tenant("a"))
    assert len(found) == 1 and "TenantConfiguration 'a' is defined twice" in found[0]
    assert found[0].startswith("t.yaml:")
    bad = tenant("a").replace("parent: null", "parent: null\n  resources:\n    quotas:\n"
                              "      maxConcurrentTransfers: -1")
    found = problems(bad)
    assert any("maxConcurrentTransfers" in p and "t.yaml:" in p for p in found), found


def test_other_kinds_and_misplaced_namespace_fields_are_refused() -> None:
    transfer = ("apiVersion: quorus.dev/v1\nkind: Transfer\nmetadata:\n  name: t\nspec:\n"
                "  source: {uri: /a}\n  destination: {uri: /b}\n")
    assert any("is a Transfer, not a TenantConfiguration" in p
               for p in problems(tenant("a") + "---\n" + transfer))
    namespace = ("apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata:\n"
                 "  name: ns\n  tenant: a\nspec:\n  resources:\n    quotas:\n"
                 "      maxDailyTransfers: 1\n")
    found = problems(tenant("a") + "---\n" + namespace)
    assert any("names none: add metadata.namespace" in p for p in found)
    assert any("cannot set spec.resources" in p for p in found)
    orphan = namespace.replace("  tenant: a", "  tenant: ghost\n  namespace: x").replace(
        "  resources:\n    quotas:\n      maxDailyTransfers: 1\n", "  variables: {k: v}\n")
    assert problems(orphan) == ("t.yaml:4: namespace 'x' belongs to tenant 'ghost', which "
                                "does not exist: apply its TenantConfiguration first or in "
                                "the same file",)


def test_malformed_yaml_is_refused_with_its_position() -> None:
    with pytest.raises(TenantConfigError) as caught:
        parse_configuration("metadata: [unclosed\n", "broken.yaml")
    assert caught.value.problems[0].startswith("broken.yaml:")
