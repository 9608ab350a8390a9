"""API tokens (issue, verify, revoke, expire) and role decisions over the tenant hierarchy."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.core.errors import ConfigurationError
from quorus.tenant.tokens import (
    ACTIONS,
    CLUSTER_ACTIONS,
    GLOBAL_TENANT,
    ROLES,
    Refused,
    RoleBinding,
    TokenRecord,
    UnknownRoleError,
    Verified,
    decide,
    issue_token,
    parse_token,
    validate_binding,
    verify,
)

NOW = 1_700_000_000.0

# company -> departments -> teams, and an unrelated company.
PARENTS: dict[str, str | None] = {
    "acme": None,
    "acme-eng": "acme",
    "acme-eng-data": "acme-eng",
    "acme-sales": "acme",
    "globex": None,
    "globex-ops": "globex",
}


def ancestors(tenant: str) -> Sequence[str]:
    chain = []
    parent = PARENTS[tenant]
    while parent is not None:
        chain.append(parent)
        parent = PARENTS[parent]
    return chain


def subtree(tenant: str) -> set[str]:
    return {t for t in PARENTS if t == tenant or tenant in ancestors(t)}


# -- tokens -------------------------------------------------------------------------------------


def test_an_issued_token_verifies_as_its_principal_and_only_its_hash_is_kept() -> None:
    text, record = issue_token("alice", now=NOW)
    assert text.startswith(f"qrs_{record.token_id}_")
    secret = text.split("_", 2)[2]
    assert record.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(record.to_data())
    assert verify(text, {record.token_id: record}, NOW + 10) == Verified("alice", record.token_id)


def test_tokens_are_different_every_time() -> None:
    issued = {issue_token("alice", now=NOW)[0] for _ in range(50)}
    assert len(issued) == 50


def test_a_token_with_a_wrong_secret_is_refused() -> None:
    text, record = issue_token("alice", now=NOW)
    other, _ = issue_token("alice", now=NOW)
    forged = text[: -len(other.split("_", 2)[2])] + other.split("_", 2)[2]
    result = verify(forged, {record.token_id: record}, NOW)
    assert isinstance(result, Refused)
    assert "does not match" in result.reason


def test_an_expired_token_is_refused_with_the_reason() -> None:
    text, record = issue_token("alice", now=NOW, ttl=3600)
    records = {record.token_id: record}
    assert isinstance(verify(text, records, NOW + 3599), Verified)
    result = verify(text, records, NOW + 3600)
    assert isinstance(result, Refused)
    assert "expired" in result.reason and "'alice'" in result.reason


def test_a_revoked_token_is_refused_with_the_reason() -> None:
    text, record = issue_token("svc-backup", now=NOW)
    result = verify(text, {record.token_id: record.revoke()}, NOW)
    assert isinstance(result, Refused)
    assert "revoked" in result.reason


def test_a_token_never_issued_here_is_unknown() -> None:
    text, _ = issue_token("alice", now=NOW)
    result = verify(text, {}, NOW)
    assert isinstance(result, Refused)
    assert "unknown token" in result.reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "qrs_",
        "Bearer qrs_0123456789abcdef_" + "A" * 43,
        "qrs_0123456789ABCDEF_" + "A" * 43,
        "qrs_0123456789abcdef_" + "A" * 42,
        "qrs_0123456789abcdef_" + "A" * 42 + "=",
        "qrs_0123456789abcdef_" + "é" * 43,
        "qrs_0123456789abcdef" + "A" * 44,
        "xyz_0123456789abcdef_" + "A" * 43,
    ],
)
def test_malformed_tokens_are_refused_with_the_expected_shape(text: str) -> None:
    result = verify(text, {}, NOW)
    assert isinstance(result, Refused)
    assert "malformed token" in result.reason and "qrs_<id>_<secret>" in result.reason


@given(st.one_of(st.text(), st.binary().map(lambda b: "qrs_" + b.hex())))
def test_verify_never_raises_for_anything_presented(text: str) -> None:
    _, record = issue_token("alice", now=NOW)
    assert isinstance(verify(text, {record.token_id: record}, NOW), Refused)


def test_non_text_is_refused_not_raised() -> None:
    assert isinstance(verify(b"qrs_x", {}, NOW), Refused)  # type: ignore[arg-type]


def test_a_token_id_is_hex_so_a_secret_holding_underscores_parses() -> None:
    for _ in range(200):
        text, record = issue_token("alice", now=NOW)
        assert parse_token(text) == (record.token_id, text.split("_", 2)[2])


def test_token_records_survive_plain_data() -> None:
    _, record = issue_token("alice", now=NOW, ttl=60)
    assert TokenRecord.from_data(record.to_data()) == record
    _, forever = issue_token("bob", now=NOW)
    assert TokenRecord.from_data(forever.revoke().to_data()) == forever.revoke()


def test_issuing_needs_a_principal_and_a_positive_lifetime() -> None:
    with pytest.raises(ConfigurationError, match="principal"):
        issue_token("", now=NOW)
    with pytest.raises(ConfigurationError, match="positive"):
        issue_token("alice", now=NOW, ttl=0)


# -- roles --------------------------------------------------------------------------------------


def test_roles_are_ordered_each_including_the_one_below() -> None:
    viewer, user, admin = (ROLES[r] for r in ("viewer", "transfer-user", "transfer-admin"))
    assert viewer < user < admin
    assert "jobs.read" in viewer and "jobs.submit" not in viewer
    assert "workflows.control" in user and "principals.admin" not in user
    assert {"tenants.admin", "agents.drain", "principals.admin", "audit.read"} <= admin
    assert not CLUSTER_ACTIONS & admin


def test_an_unknown_role_is_refused_at_binding_time_naming_the_known_ones() -> None:
    with pytest.raises(UnknownRoleError, match=r"'operator'.*viewer, transfer-user"):
        validate_binding(RoleBinding("alice", "operator", "acme"))
    binding = RoleBinding("alice", "viewer", "acme", "reports")
    assert validate_binding(binding) is binding


def test_a_global_binding_cannot_name_a_namespace() -> None:
    with pytest.raises(ConfigurationError, match="global binding"):
        validate_binding(RoleBinding("root", "transfer-admin", GLOBAL_TENANT, "ns"))


def test_a_tenant_binding_covers_its_namespaces_and_descendants() -> None:
    bindings = [RoleBinding("alice", "transfer-user", "acme-eng")]
    assert decide("alice", "jobs.submit", "acme-eng", "ns1", bindings, ancestors) is None
    assert decide("alice", "jobs.submit", "acme-eng-data", None, bindings, ancestors) is None
    reason = decide("alice", "jobs.submit", "acme-sales", None, bindings, ancestors)
    assert reason is not None and "no role in tenant 'acme-sales'" in reason
    reason = decide("alice", "jobs.read", "acme", None, bindings, ancestors)
    assert reason is not None, "a binding never reaches up to a parent"


def test_a_namespace_binding_covers_that_namespace_only() -> None:
    bindings = [RoleBinding("bob", "transfer-user", "acme-eng", "ingest")]
    assert decide("bob", "jobs.cancel", "acme-eng", "ingest", bindings, ancestors) is None
    assert decide("bob", "jobs.cancel", "acme-eng", "other", bindings, ancestors) is not None
    assert decide("bob", "jobs.cancel", "acme-eng", None, bindings, ancestors) is not None
    assert decide("bob", "jobs.cancel", "acme-eng-data", "ingest", bindings, ancestors) is not None


def test_the_best_covering_binding_decides_and_the_reason_names_the_role_needed() -> None:
    bindings = [
        RoleBinding("carol", "viewer", "acme"),
        RoleBinding("carol", "transfer-admin", "acme-eng", "ops"),
    ]
    assert decide("carol", "agents.drain", "acme-eng", "ops", bindings, ancestors) is None
    reason = decide("carol", "jobs.submit", "acme-eng", "dev", bindings, ancestors)
    assert reason == (
        "principal 'carol' is viewer in tenant 'acme-eng' namespace 'dev', which does not "
        "allow jobs.submit: it needs transfer-user"
    )


def test_cluster_actions_need_a_global_admin_binding() -> None:
    tenant_admin = [RoleBinding("dana", "transfer-admin", "acme")]
    reason = decide("dana", "cluster.admin", None, None, tenant_admin, ancestors)
    assert reason is not None and "global transfer-admin" in reason
    global_viewer = [RoleBinding("erin", "viewer", GLOBAL_TENANT)]
    assert decide("erin", "cluster.read", None, None, global_viewer, ancestors) is not None
    assert decide("erin", "jobs.read", "globex-ops", "x", global_viewer, ancestors) is None
    root = [RoleBinding("root", "transfer-admin", GLOBAL_TENANT)]
    assert decide("root", "cluster.admin", None, None, root, ancestors) is None
    assert decide("root", "principals.admin", "acme-eng-data", None, root, ancestors) is None


def test_bindings_of_other_principals_and_unknown_roles_grant_nothing() -> None:
    bindings = [RoleBinding("alice", "transfer-admin", "acme"), RoleBinding("bob", "root", "acme")]
    assert decide("bob", "jobs.read", "acme", None, bindings, ancestors) is not None


def test_an_unknown_action_is_refused() -> None:
    bindings = [RoleBinding("root", "transfer-admin", GLOBAL_TENANT)]
    reason = decide("root", "jobs.delete-everything", "acme", None, bindings, ancestors)
    assert reason is not None and "unknown action" in reason


def test_ancestors_that_include_the_tenant_itself_are_accepted() -> None:
    bindings = [RoleBinding("alice", "viewer", "acme")]

    def with_self(tenant: str) -> Sequence[str]:
        return [tenant, *ancestors(tenant)]

    assert decide("alice", "jobs.read", "acme-eng", None, bindings, with_self) is None


bindings_strategy = st.lists(
    st.builds(
        RoleBinding,
        principal=st.sampled_from(["alice", "bob"]),
        role=st.sampled_from([*ROLES, "nobody"]),
        tenant=st.sampled_from([*PARENTS, GLOBAL_TENANT]),
        namespace=st.one_of(st.none(), st.sampled_from(["a", "b"])),
    ).filter(lambda b: b.tenant != GLOBAL_TENANT or b.namespace is None),
    max_size=6,
)
places = st.tuples(
    st.sampled_from([*PARENTS, None]), st.one_of(st.none(), st.sampled_from(["a", "b"]))
)


def _covers(binding: RoleBinding, tenant: str | None, namespace: str | None) -> bool:
    if binding.tenant == GLOBAL_TENANT:
        return True
    if tenant is None or tenant not in subtree(binding.tenant):
        return False
    return binding.namespace is None or (binding.tenant, binding.namespace) == (tenant, namespace)


@settings(max_examples=400, deadline=None)
@given(bindings_strategy, st.sampled_from(sorted(ACTIONS)), places)
def test_never_more_than_the_best_covering_role_allows(
    bindings: list[RoleBinding], action: str, place: tuple[str | None, str | None]
) -> None:
    tenant, namespace = place
    allowed = decide("alice", action, tenant, namespace, bindings, ancestors) is None
    covering = [
        b
        for b in bindings
        if b.principal == "alice" and b.role in ROLES and _covers(b, tenant, namespace)
    ]
    if action in CLUSTER_ACTIONS:
        expected = any(b.tenant == GLOBAL_TENANT and b.role == "transfer-admin" for b in covering)
    else:
        expected = any(action in ROLES[b.role] for b in covering)
    assert allowed == expected


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(list(PARENTS)),
    st.sampled_from(list(ROLES)),
    st.one_of(st.none(), st.sampled_from(["a", "b"])),
    st.sampled_from(sorted(ACTIONS)),
    places,
)
def test_a_binding_on_a_tenant_never_reaches_outside_its_subtree(
    bound: str,
    role: str,
    bound_namespace: str | None,
    action: str,
    place: tuple[str | None, str | None],
) -> None:
    tenant, namespace = place
    binding = RoleBinding("alice", role, bound, bound_namespace)
    if decide("alice", action, tenant, namespace, [binding], ancestors) is None:
        assert tenant is not None and tenant in subtree(bound)
        assert action in ROLES[role]


def test_a_global_admin_binding_grants_cluster_actions_beside_an_equal_tenant_binding() -> None:
    # Found by the property test above: the tenant binding ranked first and hid the global one.
    bindings = [RoleBinding("alice", "transfer-admin", "acme"),
                RoleBinding("alice", "transfer-admin", GLOBAL_TENANT)]
    assert decide("alice", "cluster.admin", "acme", None, bindings, ancestors) is None
    assert decide("alice", "cluster.admin", None, None, bindings, ancestors) is None
    assert decide("alice", "cluster.admin", None, None, bindings[:1], ancestors) is not None
