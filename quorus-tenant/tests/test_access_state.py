"""The ``access`` state module applied through the controller's state machine: principals,
token records, revocation, role bindings (unknown roles refused), a principal's deletion
taking its tokens and bindings with it, and snapshots restored exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.core.controller.commands import Command
from quorus.core.controller.results import Applied
from quorus.core.controller.state import ControllerState, SnapshotFormatError
from quorus.tenant.access.commands import (
    AccessResult,
    BindRole,
    CreatePrincipal,
    DeletePrincipal,
    IssueToken,
    RevokeToken,
    UnbindRole,
)
from quorus.tenant.access.state import AccessStateModule, PrincipalKind
from quorus.tenant.tokens import RoleBinding, Verified, issue_token, verify


class Log:
    """A state machine with the access module, and the index of the next entry."""

    def __init__(self) -> None:
        self.module = AccessStateModule()
        self.state = ControllerState([self.module])
        self.index = 0

    def apply(self, command: Command) -> AccessResult:
        self.index += 1
        applied = self.state.apply(self.index, command.encode())
        assert isinstance(applied, Applied)
        assert isinstance(applied.value, AccessResult)
        return applied.value


def test_principals_tokens_and_bindings_are_recorded_and_refused_clearly() -> None:
    log = Log()
    assert log.apply(CreatePrincipal("alice", "user", "acme", 10.0, "root")).ok
    assert log.module.principal("alice") is not None
    assert log.module.principals["alice"].kind is PrincipalKind.USER
    again = log.apply(CreatePrincipal("alice", "user", "acme", 11.0))
    assert again.ok and again.duplicate
    clash = log.apply(CreatePrincipal("alice", "service-account", "globex", 12.0))
    assert not clash.ok
    assert clash.message == ("principal 'alice' exists already, a user of tenant 'acme': "
                             "choose another name or delete it first")
    bad_kind = log.apply(CreatePrincipal("robot", "droid", "acme", 12.0))
    assert bad_kind.message == "unknown principal kind 'droid': use user or service-account"
    bad_name = log.apply(CreatePrincipal("../x", "user", "acme", 12.0))
    assert "invalid principal name '../x'" in bad_name.message
    assert sorted(log.module.principals) == ["alice"]

    text, record = issue_token("alice", now=20.0, ttl=60.0)
    assert log.apply(IssueToken("alice", record.token_id, record.secret_sha256, 20.0,
                                record.expires_at)).ok
    assert log.module.tokens[record.token_id] == record
    assert verify(text, log.module.tokens, 30.0) == Verified("alice", record.token_id)
    orphan = log.apply(IssueToken("ghost", "00" * 8, "ab" * 32, 20.0))
    assert orphan.missing and "no principal 'ghost'" in orphan.message

    unknown = log.apply(BindRole("alice", "owner", "acme", 21.0))
    assert not unknown.ok
    assert unknown.message == ("unknown role 'owner' for principal 'alice': use one of viewer, "
                               "transfer-user, transfer-admin")
    assert log.apply(BindRole("alice", "transfer-user", "acme", 21.0, "finance")).ok
    assert log.apply(BindRole("alice", "transfer-user", "acme", 22.0, "finance")).duplicate
    assert log.module.bindings == [RoleBinding("alice", "transfer-user", "acme", "finance")]
    missing = log.apply(UnbindRole("alice", "transfer-user", "acme", 23.0))
    assert missing.missing and "has no binding transfer-user on acme:" in missing.message
    assert log.apply(UnbindRole("alice", "transfer-user", "acme", 23.0, "finance")).ok
    assert log.module.bindings == []

    wrong_owner = log.apply(CreatePrincipal("bob", "user", "acme", 24.0))
    assert wrong_owner.ok
    stolen = log.apply(RevokeToken("bob", record.token_id, 25.0))
    assert stolen.missing and not log.module.tokens[record.token_id].revoked
    assert log.apply(RevokeToken("alice", record.token_id, 25.0)).ok
    assert log.apply(RevokeToken("alice", record.token_id, 26.0)).duplicate
    assert "was revoked" in str(verify(text, log.module.tokens, 30.0))


def test_deleting_a_principal_takes_its_tokens_and_bindings() -> None:
    log = Log()
    for name in ("alice", "bob"):
        log.apply(CreatePrincipal(name, "user", "acme", 1.0))
        log.apply(BindRole(name, "viewer", "acme", 2.0))
        _, record = issue_token(name, now=3.0)
        log.apply(IssueToken(name, record.token_id, record.secret_sha256, 3.0))
    assert log.apply(DeletePrincipal("alice", 4.0)).ok
    assert sorted(log.module.principals) == ["bob"]
    assert [t.principal for t in log.module.tokens.values()] == ["bob"]
    assert log.module.bindings == [RoleBinding("bob", "viewer", "acme")]
    assert log.apply(DeletePrincipal("alice", 5.0)).missing


names = st.sampled_from(["alice", "bob", "carol", "svc.backup"])
commands = st.one_of(
    st.builds(CreatePrincipal, names, st.sampled_from(["user", "service-account"]),
              st.sampled_from(["acme", "globex"]), st.floats(0, 1e9)),
    st.builds(DeletePrincipal, names, st.floats(0, 1e9)),
    st.builds(BindRole, names, st.sampled_from(["viewer", "transfer-admin", "nope"]),
              st.sampled_from(["acme", "*"]), st.floats(0, 1e9),
              st.sampled_from([None, "finance"])),
    st.builds(UnbindRole, names, st.sampled_from(["viewer", "transfer-admin"]),
              st.sampled_from(["acme", "*"]), st.floats(0, 1e9), st.just(None)),
    st.builds(IssueToken, names, st.sampled_from(["0123456789abcdef", "fedcba9876543210"]),
              st.sampled_from(["aa" * 32, "bb" * 32]), st.floats(0, 1e9),
              st.one_of(st.none(), st.floats(0, 2e9))),
    st.builds(RevokeToken, names, st.sampled_from(["0123456789abcdef", "fedcba9876543210"]),
              st.floats(0, 1e9)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(commands, max_size=25))
def test_a_snapshot_restores_exactly_what_the_log_built(history: list[Command]) -> None:
    log = Log()
    for command in history:
        log.apply(command)
    copy = Log()
    copy.state.restore(log.state.snapshot(), log.index)
    assert copy.module.principals == log.module.principals
    assert copy.module.tokens == log.module.tokens
    assert copy.module.bindings == log.module.bindings
    assert copy.module.snapshot() == log.module.snapshot()


@pytest.mark.parametrize("section", [{"format": 99}, "nonsense",
                                     {"format": 1, "principals": [{"name": "x"}]}])
def test_a_foreign_snapshot_section_is_refused(section: Any) -> None:
    with pytest.raises(SnapshotFormatError, match="access section"):
        AccessStateModule().restore(section)
