"""Hierarchical configuration: global defaults, then each ancestor, the tenant and a namespace,
merged key by key with the layer each value came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.tenant.config import merge, parse_configuration
from quorus.tenant.effective import GLOBAL_DEFAULTS, UnknownScope, effective_config
from quorus.tenant.model import Tenant

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tenants() -> dict[str, Tenant]:
    found: dict[str, Tenant] = {}
    for name in ("acme-corp.yaml", "departments.yaml"):
        found = merge(found, parse_configuration((DATA / name).read_text(), name))
    return found


def as_map(values: tuple[object, ...]) -> dict[str, tuple[object, str]]:
    return {v.path: (v.value, v.source) for v in values}  # type: ignore[attr-defined]


def test_each_value_says_which_layer_set_it(tenants: dict[str, Tenant]) -> None:
    found = as_map(effective_config(tenants, "payroll-team"))
    assert found["defaults.retry.maxAttempts"] == (5, "tenant acme-corp-finance")
    assert found["defaults.retry.backoff"] == ("exponential", "tenant acme-corp")
    assert found["defaults.validation.checksumRequired"] == (True, "tenant acme-corp")
    assert found["defaults.monitoring.metricsEnabled"] == (True, "tenant acme-corp")
    assert found["security.networking.allowedDestinations"] == (
        ["s3://acme-corp-*", "/data/acme-corp/*"], "tenant acme-corp")
    assert found["governance.audit.enabled"] == (True, "tenant acme-corp")


def test_a_namespace_overrides_its_tenant(tenants: dict[str, Tenant]) -> None:
    found = as_map(effective_config(tenants, "acme-corp-finance", "payroll"))
    assert found["defaults.retry.backoff"] == ("fixed", "namespace payroll")
    assert found["defaults.retry.maxAttempts"] == (5, "tenant acme-corp-finance")
    assert found["defaults.timeout"] == ("2h", "namespace payroll")
    assert found["security.dataProtection.encryptionAtRest"] == (False, "namespace payroll")
    assert found["security.dataProtection.encryptionInTransit"] == (True, "tenant acme-corp")
    outside = as_map(effective_config(tenants, "acme-corp-finance", "finance"))
    assert outside["defaults.retry.backoff"] == ("exponential", "tenant acme-corp")
    assert "defaults.timeout" not in outside


def test_without_tenants_the_global_defaults_apply(tenants: dict[str, Tenant]) -> None:
    found = as_map(effective_config({}, "default"))
    assert found["defaults.retry.maxAttempts"] == (3, "global")
    assert all(source == "global" for _, source in found.values())
    assert len(found) == 11 and GLOBAL_DEFAULTS["defaults"]["retry"]["maxAttempts"] == 3


def test_the_result_is_sorted_and_deterministic(tenants: dict[str, Tenant]) -> None:
    first = effective_config(tenants, "payroll-team")
    assert [v.path for v in first] == sorted(v.path for v in first)
    reordered = dict(reversed(list(tenants.items())))
    assert effective_config(reordered, "payroll-team") == first


def test_a_leaf_replaces_a_map_and_a_map_replaces_a_leaf() -> None:
    text = ("apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata: {name: a}\n"
            "spec:\n  variables: {storage: /data/a}\n---\n"
            "apiVersion: quorus.dev/v1\nkind: TenantConfiguration\nmetadata: {name: b}\n"
            "spec:\n  hierarchy: {parent: a}\n  variables: {storage: {root: /data/b}}\n")
    tenants = merge({}, parse_configuration(text))
    assert as_map(effective_config(tenants, "a"))["variables.storage"] == ("/data/a",
                                                                           "tenant a")
    found = as_map(effective_config(tenants, "b"))
    assert "variables.storage" not in found
    assert found["variables.storage.root"] == ("/data/b", "tenant b")


def test_unknown_tenants_and_namespaces_are_named(tenants: dict[str, Tenant]) -> None:
    with pytest.raises(UnknownScope, match="no tenant 'ghost'"):
        effective_config(tenants, "ghost")
    with pytest.raises(UnknownScope, match="tenant 'acme-corp-finance' has no namespace "
                                           "'sales' \\(its namespaces: finance, payroll\\)"):
        effective_config(tenants, "acme-corp-finance", "sales")
