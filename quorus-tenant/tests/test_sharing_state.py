"""The ``sharing`` state module on a controller state machine fed encoded commands, as consensus
would: agreements recorded and revoked (bad ones refused with the reason, nothing applied),
both tenants' audit chains recording them, the design's cross-tenant workflow refused and
admitted by its agreement (submitted, registered, fired by a trigger), commands logged before
reaches existed applied as before, and snapshots restored exactly by every replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
from quorus.core.controller import Applied, Command, ControllerState, RejectCode, Rejected
from quorus.core.controller.codec import to_plain
from quorus.core.controller.state import SnapshotFormatError
from quorus.tenant.auditlog import AuditStateModule
from quorus.tenant.commands import ApplyTenants
from quorus.tenant.model import DataSharingAgreement
from quorus.tenant.sharing import RecordAgreement, RevokeAgreement, SharingResult
from quorus.tenant.sharing.state import SharingStateModule, agreement_problem
from quorus.tenant.state import TenantStateModule
from quorus.workflow.controller.commands import (
    RegisterWorkflow,
    SubmitExecution,
    TriggerFired,
    TriggerRefused,
    workflow_reach,
)
from quorus.workflow.controller.prepared import prepare
from quorus.workflow.controller.state import WorkflowStateModule

DATA = Path(__file__).parent / "data"
T0 = 1_700_000_000.0
DAY = 86400.0
TENANTS = (DATA / "enterprise-tenants.yaml").read_text()
WORKFLOW = (DATA / "cross-tenant-data-sync.yaml").read_text()
TRIGGERED = WORKFLOW + '  triggers:\n    - name: two-am\n      type: cron\n      schedule: "0 2 * * *"\n'
SETS = {"ROOT": "/data"}


class Replica:
    """A controller state with the tenant, workflow, audit and sharing modules."""

    def __init__(self) -> None:
        self.state = ControllerState([TenantStateModule(), WorkflowStateModule(),
                                      AuditStateModule(), SharingStateModule()])
        self.index = 0
        self.log: list[bytes] = []

    @property
    def sharing(self) -> SharingStateModule:
        module = self.state.modules["sharing"]
        assert isinstance(module, SharingStateModule)
        return module

    @property
    def workflows(self) -> WorkflowStateModule:
        module = self.state.modules["workflow"]
        assert isinstance(module, WorkflowStateModule)
        return module

    def apply(self, command: Command | bytes) -> Any:
        self.index += 1
        encoded = command if isinstance(command, bytes) else command.encode()
        self.log.append(encoded)
        return self.state.apply(self.index, encoded)

    def value(self, command: Command) -> Any:
        result = self.apply(command)
        assert isinstance(result, Applied), result
        return result.value

    def actions(self, tenant: str) -> list[tuple[str, str, str]]:
        chain = self.state.modules["audit"].chain(tenant)  # type: ignore[attr-defined]
        return [] if chain is None else [(r.actor, r.action, r.target) for r in chain]


def record(at: float = T0, agreement_id: str = "DSA-2024-001", provider: str = "acme-corp",
           recipient: str = "partner-corp", **terms: Any) -> RecordAgreement:
    return RecordAgreement(agreement_id, provider, recipient, at, **{"recorded_by": "root",
                                                                    **terms})


def submission(execution_id: str, at: float, text: str = WORKFLOW) -> SubmitExecution:
    files = {"sync.yaml": text}
    prepared = prepare(files, workflow=None, environment=None, sets=SETS, bindings={},
                       execution_id=execution_id, started_at=at)
    return SubmitExecution(execution_id, at, files, sets=SETS, submitted_by="alice",
                           tenant="enterprise", reach=workflow_reach(prepared.workflow))


def configured() -> Replica:
    replica = Replica()
    assert replica.value(ApplyTenants(T0 - DAY, TENANTS, applied_by="root")).ok
    return replica


def test_an_agreement_is_recorded_once_and_revoked_once() -> None:
    replica = configured()
    result = replica.value(record(purpose="partner onboarding", classification="internal",
                                  expires_at=T0 + 365 * DAY))
    assert result == SharingResult(True, tenants=("acme-corp", "partner-corp"))
    found = replica.sharing.agreement("DSA-2024-001")
    assert found == DataSharingAgreement(
        "DSA-2024-001", "acme-corp", "partner-corp", valid_from=T0, recorded_at=T0,
        expires_at=T0 + 365 * DAY, purpose="partner onboarding", classification="internal",
        recorded_by="root")
    # A client's retry (a later time, no explicit start) changes nothing.
    again = replica.value(record(T0 + 5, purpose="partner onboarding",
                                 classification="internal", expires_at=T0 + 365 * DAY))
    assert again.ok and again.duplicate
    assert replica.sharing.agreement("DSA-2024-001") == found
    revoked = replica.value(RevokeAgreement("DSA-2024-001", T0 + DAY, "root", "ended"))
    assert revoked == SharingResult(True, tenants=("acme-corp", "partner-corp"))
    assert replica.sharing.agreement("DSA-2024-001") == found.revoke(T0 + DAY, "root", "ended")
    twice = replica.value(RevokeAgreement("DSA-2024-001", T0 + 2 * DAY, "root"))
    assert twice.ok and twice.duplicate
    assert replica.sharing.agreement("DSA-2024-001").revoked_at == T0 + DAY  # type: ignore[union-attr]
    assert replica.sharing.of_tenant("partner-corp") == [replica.sharing.agreement("DSA-2024-001")]


@pytest.mark.parametrize(("command", "message"), [
    (record(provider="acme-corp", recipient="acme-corp"),
     "agreement DSA-2024-001 names tenant acme-corp twice: an agreement is between two "
     "different tenants (within a tenant none is needed)"),
    (record(recipient="initech"),
     "agreement DSA-2024-001: no tenant 'initech' (recipient): apply its TenantConfiguration "
     "(quorus tenant apply FILE) first"),
    (record(provider=""), "agreement DSA-2024-001 needs a provider tenant"),
    (record(expires_at=T0), "agreement DSA-2024-001 expires (1700000000.0) before it starts "
     "(1700000000.0): give an expiry after its start"),
    (record(valid_from=T0 + DAY, expires_at=T0 + 1),
     "agreement DSA-2024-001 expires (1700000001.0) before it starts (1700086400.0): give an "
     "expiry after its start"),
    (record(agreement_id="DSA 2024/1"),
     "invalid agreement id 'DSA 2024/1': use 1 to 128 letters, digits, '.', '_' or '-', "
     "starting with a letter or digit (DSA-2024-001)"),
    (record(classification=""), "agreement DSA-2024-001: classification must be 1 to 128 "
     "characters"),
])
def test_bad_agreements_are_refused_with_the_reason_and_nothing_applied(
        command: RecordAgreement, message: str) -> None:
    replica = configured()
    before = replica.state.snapshot()
    result = replica.value(command)
    assert result == SharingResult(False, message)
    assert replica.sharing.agreements == {}
    assert msgpack.unpackb(replica.state.snapshot())["modules"]["sharing"] == \
        msgpack.unpackb(before)["modules"]["sharing"]


def test_times_that_are_no_times_are_refused_before_they_reach_the_log() -> None:
    # The log's codec refuses a NaN outright; the REST layer asks the same check first.
    command = record(valid_from=float("nan"))
    assert agreement_problem(command, lambda tenant: True) == \
        "agreement DSA-2024-001: valid_from is not a finite time"
    assert agreement_problem(record(), None) == (
        "agreement DSA-2024-001: no tenant 'acme-corp' (provider): apply its "
        "TenantConfiguration (quorus tenant apply FILE) first")


def test_the_same_id_with_other_terms_and_unknown_ids_are_refused() -> None:
    replica = configured()
    replica.value(record())
    kept = replica.sharing.agreement("DSA-2024-001")
    other = replica.value(record(recipient="globex"))
    assert other == SharingResult(False, "agreement DSA-2024-001 is recorded already with "
                                  "other terms (acme-corp shares with partner-corp): "
                                  "agreements are not edited; revoke it and record one under "
                                  "a new id")
    assert not replica.value(record(T0, valid_from=T0 + 1)).ok
    assert not replica.value(record(mutual=True)).ok
    assert replica.sharing.agreement("DSA-2024-001") == kept
    missing = replica.value(RevokeAgreement("DSA-404", T0))
    assert missing == SharingResult(False, "no agreement 'DSA-404': list them with quorus "
                                    "agreement list", missing=True)


def test_without_configured_tenants_no_agreement_can_be_recorded_and_nothing_is_refused(
) -> None:
    replica = Replica()
    refused = replica.value(record())
    assert not refused.ok and "no tenant 'acme-corp' (provider)" in refused.message
    # A cross-tenant workflow with no agreement at all: nothing fences tenants here.
    result = replica.value(submission("e1", T0))
    assert result.ok and replica.workflows.execution("e1") is not None


def test_recording_and_revoking_are_in_both_tenants_audit_chains() -> None:
    replica = configured()
    replica.value(record())
    replica.value(RevokeAgreement("DSA-2024-001", T0 + DAY, "carol", "contract ended"))
    replica.value(RevokeAgreement("DSA-2024-001", T0 + DAY))  # nothing changed: not recorded
    replica.value(record(recipient="globex"))  # refused: not recorded
    for tenant in ("acme-corp", "partner-corp"):
        assert [a for a in replica.actions(tenant) if a[1].startswith("agreement.")] == [
            ("root", "agreement.recorded", "DSA-2024-001"),
            ("carol", "agreement.revoked", "DSA-2024-001")]
    assert replica.actions("globex") == [("root", "tenant.applied", "globex")]
    chain = replica.state.modules["audit"].chain("partner-corp")  # type: ignore[attr-defined]
    recorded, revoked = [r for r in chain if r.action.startswith("agreement.")]
    assert recorded.detail == {"provider": "acme-corp", "recipient": "partner-corp",
                               "mutual": False}
    assert revoked.detail == {"reason": "contract ended"} and revoked.at == T0 + DAY


def test_the_design_workflow_is_refused_without_its_agreement_and_admitted_with_it() -> None:
    replica = configured()
    refused = replica.apply(submission("e1", T0))
    assert isinstance(refused, Rejected) and refused.code is RejectCode.ADMISSION_DENIED
    assert refused.message == (
        "cross-tenant workflow of tenant enterprise refused: data of tenant acme-corp may "
        "reach tenant partner-corp, which needs a data-sharing agreement: agreement "
        "DSA-2024-001 is not recorded")
    assert replica.workflows.execution("e1") is None
    assert not any(a[1] == "workflow.submitted" for a in replica.actions("enterprise"))

    replica.value(record(expires_at=T0 + 30 * DAY))
    admitted = replica.value(submission("e1", T0 + 1))
    assert admitted.ok and replica.workflows.execution("e1") is not None
    assert ("alice", "workflow.submitted", "e1") in replica.actions("enterprise")

    late = replica.apply(submission("e2", T0 + 30 * DAY))
    assert isinstance(late, Rejected) and "expired at 2023-12-14T22:13:20Z" in late.message
    replica.value(RevokeAgreement("DSA-2024-001", T0 + 2, "root"))
    revoked = replica.apply(submission("e3", T0 + 3))
    assert isinstance(revoked, Rejected) and "was revoked at" in revoked.message
    assert replica.workflows.execution("e1") is not None  # admitted ones are not undone


def test_a_reach_that_is_not_the_workflows_is_refused_by_the_workflow_module() -> None:
    replica = configured()
    replica.value(record())
    honest = submission("e1", T0 + 1)
    assert honest.reach is not None
    # Claiming to stay within enterprise, while the files cross to partner-corp.
    lying = SubmitExecution("e1", T0 + 1, honest.files, sets=SETS, tenant="enterprise",
                            reach=type(honest.reach)("enterprise", ("enterprise",)))
    result = replica.value(lying)
    assert not result.ok and "is not that of workflow 'cross-tenant-data-sync'" in \
        result.message
    assert replica.workflows.execution("e1") is None


def test_a_submission_logged_before_reaches_existed_is_applied_unchecked() -> None:
    replica = configured()
    old = submission("e1", T0)
    plain = to_plain(old)
    del plain["reach"]
    encoded = msgpack.packb([old.NAME, plain], use_bin_type=True)
    result = replica.apply(encoded)
    assert isinstance(result, Applied) and result.value.ok
    assert replica.workflows.execution("e1") is not None


def test_a_registration_is_checked_and_so_is_every_fire() -> None:
    replica = configured()
    files = {"sync.yaml": TRIGGERED}
    prepared = prepare(files, workflow=None, environment=None, sets=SETS, bindings={},
                       execution_id="", started_at=T0, needs_triggers=True)
    reach = workflow_reach(prepared.workflow)
    register = RegisterWorkflow("sync", T0, files, sets=SETS, submitted_by="alice",
                                tenant="enterprise", reach=reach)
    assert isinstance(replica.apply(register), Rejected)
    assert replica.workflows.registration("sync") is None
    replica.value(record())
    assert replica.value(register).ok

    fired = replica.value(TriggerFired("sync", "two-am", T0 + 100, T0 + 100, reach=reach))
    assert fired.ok and replica.workflows.execution(fired.execution_id) is not None
    unreached = replica.value(TriggerFired("sync", "two-am", T0 + 150, T0 + 150))
    assert not unreached.ok and "does not carry its registration's tenant reach" in \
        unreached.message

    replica.value(RevokeAgreement("DSA-2024-001", T0 + 200, "root", "ended"))
    refused = replica.apply(TriggerFired("sync", "two-am", T0 + DAY, T0 + DAY, reach=reach))
    assert isinstance(refused, Rejected) and "was revoked" in refused.message
    assert replica.value(TriggerRefused("sync", "two-am", T0 + DAY, T0 + DAY,
                                        refused.message)).ok
    kept = replica.workflows.registration("sync")
    assert kept is not None
    state = kept.triggers["two-am"]
    assert (state.fires, state.refusals, state.last_fire, state.last_refused_at) == (
        1, 1, T0 + DAY, T0 + DAY)
    assert state.last_refusal == refused.message
    # The refused fire is spent: proposed again, it changes nothing.
    again = replica.value(TriggerRefused("sync", "two-am", T0 + DAY, T0 + DAY, "again"))
    assert again.duplicate and state.refusals == 1
    assert ("trigger sync/two-am", "workflow.trigger-refused", "sync") in \
        replica.actions("enterprise")


def full_history() -> Replica:
    replica = configured()
    replica.value(record(purpose="onboarding", expires_at=T0 + 90 * DAY))
    replica.value(record(T0 + 1, "DSA-2024-002", "globex", "enterprise", mutual=True,
                         valid_from=T0 + DAY, classification="confidential"))
    replica.apply(submission("e1", T0 + 2))
    replica.value(RevokeAgreement("DSA-2024-002", T0 + 3, "root", "superseded"))
    replica.apply(submission("e2", T0 + 4))
    return replica


def test_snapshots_restore_exactly_and_replicas_agree() -> None:
    replica = full_history()
    snapshot = replica.state.snapshot()
    restored = Replica()
    restored.state.restore(snapshot, replica.index)
    restored.index = replica.index
    assert restored.state.snapshot() == snapshot
    assert restored.sharing.agreements == replica.sharing.agreements
    assert list(restored.sharing.agreements) == ["DSA-2024-001", "DSA-2024-002"]
    # Another replica applying the same log reaches the same bytes.
    other = Replica()
    for encoded in replica.log:
        other.apply(encoded)
    assert other.state.snapshot() == snapshot
    # And the restored one decides the next command as the original does.
    late = submission("e3", T0 + 91 * DAY)
    first, second = replica.apply(late), restored.apply(late)
    assert isinstance(first, Rejected) and first == second


@pytest.mark.parametrize("section", [
    {"format": 99},
    "agreements",
    {"format": 1, "agreements": [{"id": "x"}]},
    {"format": 1, "agreements": [{"id": "x", "provider": "a", "recipient": "b",
                                  "valid_from": "soon", "recorded_at": 0.0}]},
])
def test_a_malformed_snapshot_section_is_refused(section: Any) -> None:
    module = SharingStateModule()
    with pytest.raises(SnapshotFormatError, match="sharing section"):
        module.restore(section)
    module.restore(None)
    assert module.agreements == {}
