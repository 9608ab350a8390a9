"""The email action (and notify with an ``email://`` target) against a real SMTP server
(aiosmtpd on 127.0.0.1): recipients, subject and step table, refusals, login."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from quorus.core.secrets import Secret
from quorus.core.testing.fixtures import anyio_backend, free_port
from quorus.workflow.actions import (
    BUILTIN_ACTIONS,
    ActionContext,
    ActionSettings,
    run_actions,
    step_table,
    validate_action,
)
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import DefinitionError, load_text
from quorus.workflow.local import LocalRunner
from quorus.workflow.prepare import prepare
from quorus.workflow.summary import ExecutionStatus, ExecutionSummary, StepOutcome, StepStatus

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio

USER, PASSWORD = "quorus", "s3cret-pw"


@dataclass
class Mailbox:
    """What the SMTP server accepted; recipients starting ``nobody@`` are refused at RCPT,
    and every message while ``reject_data`` is set is refused after DATA."""

    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    reject_data: bool = False


class Recorder:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.box.reject_data:
            return "550 5.7.1 message rejected by policy"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port())

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        box.logins.append(auth_data.login.decode())
        ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        # handled=False: the server answers 535 itself.
        return AuthResult(success=ok, handled=False)

    controller = Controller(Recorder(box), hostname="127.0.0.1", port=box.port,
                            authenticator=authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def summary() -> ExecutionSummary:
    return ExecutionSummary(
        execution_id="e-7", workflow="nightly", status=ExecutionStatus.FAILED,
        steps=(
            StepOutcome("load/users", StepStatus.COMPLETED, bytes=3 * 1024 * 1024),
            StepOutcome("load/orders", StepStatus.FAILED, error="connection reset by peer"),
            StepOutcome("load/report", StepStatus.SKIPPED, reason="load/orders failed"),
        ),
        error="step load/orders failed",
    )


def context(box: Mailbox, **settings: Any) -> ActionContext:
    return ActionContext(settings=ActionSettings(
        smtp_host="127.0.0.1", smtp_port=box.port, smtp_from="quorus@test.local", **settings))


@pytest.mark.anyio
async def test_email_target_sends_to_every_recipient_with_subject_and_step_table(
    mailbox: Mailbox,
) -> None:
    [outcome] = await run_actions(
        [{"action": "notify", "target": "email://ops@company.test,dba@company.test",
          "message": "The nightly load failed: connection reset by peer"}],
        summary(), context(mailbox))
    assert outcome.ok, outcome.detail
    assert outcome.target == "email://ops@company.test,dba@company.test"
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "quorus@test.local"
    assert recipients == ["ops@company.test", "dba@company.test"]
    assert message["Subject"] == "[quorus] workflow nightly failed"
    assert message["To"] == "ops@company.test, dba@company.test"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("The nightly load failed: connection reset by peer\n")
    assert "Execution e-7 of nightly: failed (1 completed, 1 failed, 1 skipped; 3.0 MiB)." in body
    assert "Error: step load/orders failed" in body
    assert step_table(summary()) in body
    assert mailbox.logins == []


@pytest.mark.anyio
async def test_email_action_with_to_list_and_subject(mailbox: Mailbox) -> None:
    [outcome] = await run_actions(
        [{"action": "email", "to": ["a@x.test", "b@y.test"], "subject": "Load\r\nBcc: evil@x",
          "message": "see below"}],
        summary(), context(mailbox))
    assert outcome.ok, outcome.detail
    [(_, recipients, message)] = mailbox.messages
    assert recipients == ["a@x.test", "b@y.test"]
    # A line break in a bound subject cannot add a header.
    assert message["Subject"] == "Load Bcc: evil@x"
    assert message["Bcc"] is None


WORKFLOW_WITH_TO = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata: {name: nightly}
spec:
  variables: {ONCALL: oncall@x.test}
  groups:
    - name: load
      transferGroup:
        spec:
          transfers:
            - {name: users, source: {path: "SRC"}, destination: {path: "DST"}}
          onSuccess:
            - {action: email, to: "dba@x.test", subject: "group done"}
  onSuccess:
    - {action: email, to: [ops@x.test, "${ONCALL}"], subject: "nightly ${workflow.name}"}
"""


@pytest.mark.anyio
async def test_a_workflow_giving_to_validates_and_mails_those_recipients(
    mailbox: Mailbox, tmp_path: Path,
) -> None:
    (tmp_path / "users.csv").write_text("id\n")
    text = WORKFLOW_WITH_TO.replace("SRC", str(tmp_path / "users.csv")).replace(
        "DST", str(tmp_path / "out.csv"))
    prepared = prepare(load_text(text, "nightly.yaml"))  # the schema accepts 'to'
    assert [spec["to"] for spec in prepared.workflow.on_success] == [
        ["ops@x.test", "${ONCALL}"]]
    binder = Binder(prepared.workflow, RunContext(started_at=time.time(), execution_id="t"))
    run = await LocalRunner(prepared.plan, binder, execution_id="t", actions=BUILTIN_ACTIONS,
                            action_context=context(mailbox)).run()
    assert run.status is ExecutionStatus.COMPLETED
    assert [(a.action, a.target, a.ok) for a in run.actions] == [
        ("email", "email://dba@x.test", True),
        ("email", "email://ops@x.test,oncall@x.test", True)], run.actions
    assert [(r, m["Subject"]) for _, r, m in mailbox.messages] == [
        (["dba@x.test"], "group done"),
        (["ops@x.test", "oncall@x.test"], "nightly nightly")]


def test_the_schema_says_what_to_may_be() -> None:
    text = WORKFLOW_WITH_TO.replace('to: "dba@x.test"', "to: 5")
    with pytest.raises(DefinitionError) as caught:
        prepare(load_text(text, "nightly.yaml"))
    [issue] = caught.value.issues
    assert str(issue).endswith("onSuccess[0].to: expected an email address, \"a@x,b@y\" or a "
                               "list of addresses (the recipients of an email), got integer 5")


def test_step_table_aligns_columns_and_shortens_long_errors() -> None:
    run = ExecutionSummary("e", "w", ExecutionStatus.FAILED, steps=(
        StepOutcome("g/a", StepStatus.COMPLETED, bytes=10),
        StepOutcome("g/a-much-longer-name", StepStatus.FAILED, error="x" * 500 + "\nmore"),
    ))
    lines = step_table(run).splitlines()
    assert lines[0].split() == ["step", "status", "bytes", "error"]
    assert lines[1].split() == ["g/a", "completed", "10", "B"]
    assert lines[0].index("status") == lines[1].index("completed") == lines[2].index("failed")
    assert lines[2].endswith("x" * 197 + "...")


@pytest.mark.anyio
async def test_every_recipient_refused_is_a_failed_outcome_and_the_next_action_runs(
    mailbox: Mailbox,
) -> None:
    refused, sent = await run_actions(
        [{"action": "email", "to": "nobody@x.test"},
         {"action": "email", "to": "ops@x.test"}],
        summary(), context(mailbox))
    assert not refused.ok
    assert "refused every recipient: nobody@x.test: 550 5.1.1 no such mailbox" in refused.detail
    assert sent.ok
    assert [r for _, r, _ in mailbox.messages] == [["ops@x.test"]]


@pytest.mark.anyio
async def test_some_recipients_refused_is_a_failed_outcome_naming_them(mailbox: Mailbox) -> None:
    [outcome] = await run_actions([{"action": "email", "to": "ops@x.test,nobody@x.test"}],
                                  summary(), context(mailbox))
    assert not outcome.ok
    assert "refused some recipients: nobody@x.test: 550" in outcome.detail
    assert [r for _, r, _ in mailbox.messages] == [["ops@x.test"]]


@pytest.mark.anyio
async def test_a_message_refused_after_data_is_a_failed_outcome(mailbox: Mailbox) -> None:
    mailbox.reject_data = True
    [outcome] = await run_actions([{"action": "email", "to": "ops@x.test"}],
                                  summary(), context(mailbox))
    assert not outcome.ok
    assert "refused the message: 550 5.7.1 message rejected by policy" in outcome.detail


@pytest.mark.anyio
async def test_login_with_the_configured_credentials(mailbox: Mailbox) -> None:
    [outcome] = await run_actions(
        [{"action": "email", "to": "ops@x.test"}], summary(),
        context(mailbox, smtp_username=USER, smtp_password=Secret(PASSWORD)))
    assert outcome.ok, outcome.detail
    assert mailbox.logins == [USER]
    assert len(mailbox.messages) == 1


@pytest.mark.anyio
async def test_a_refused_login_fails_without_showing_the_password(mailbox: Mailbox) -> None:
    [outcome] = await run_actions(
        [{"action": "email", "to": "ops@x.test"}], summary(),
        context(mailbox, smtp_username=USER, smtp_password=Secret("wrong-pw-123")))
    assert not outcome.ok
    assert "refused the login as 'quorus': 535" in outcome.detail
    assert "wrong-pw-123" not in outcome.detail
    assert mailbox.messages == []


@pytest.mark.anyio
async def test_a_username_without_a_password_says_what_to_set(mailbox: Mailbox) -> None:
    [outcome] = await run_actions([{"action": "email", "to": "ops@x.test"}], summary(),
                                  context(mailbox, smtp_username=USER))
    assert not outcome.ok
    assert "QUORUS_SMTP_PASSWORD_FILE" in outcome.detail


@pytest.mark.anyio
async def test_starttls_against_a_server_without_it_fails_saying_so(mailbox: Mailbox) -> None:
    [outcome] = await run_actions([{"action": "email", "to": "ops@x.test"}], summary(),
                                  context(mailbox, smtp_starttls=True))
    assert not outcome.ok
    assert "does not support STARTTLS" in outcome.detail


@pytest.mark.anyio
async def test_no_smtp_host_and_an_unreachable_one_are_failed_outcomes() -> None:
    unset, unset_via_notify = await run_actions(
        [{"action": "email", "to": "ops@x.test"},
         {"action": "notify", "target": "email://ops@x.test"}],
        summary(),
        ActionContext(settings=ActionSettings()),
    )
    assert not unset.ok and "QUORUS_SMTP_HOST" in unset.detail
    assert not unset_via_notify.ok and "QUORUS_SMTP_HOST" in unset_via_notify.detail
    port = free_port()
    [outcome] = await run_actions(
        [{"action": "email", "to": "ops@x.test"}], summary(),
        ActionContext(settings=ActionSettings(smtp_host="127.0.0.1", smtp_port=port)))
    assert not outcome.ok
    assert f"cannot reach SMTP server 127.0.0.1:{port}" in outcome.detail


@pytest.mark.anyio
async def test_a_dry_run_sends_nothing(mailbox: Mailbox) -> None:
    dry = ActionContext(settings=context(mailbox).settings, dry_run=True)
    [outcome] = await run_actions([{"action": "email", "to": "ops@x.test"}], summary(), dry)
    assert outcome.ok
    assert outcome.detail == (f"would send '[quorus] workflow nightly failed' to ops@x.test "
                              f"through 127.0.0.1:{mailbox.port}")
    assert mailbox.messages == []


@pytest.mark.parametrize(("spec", "problem"), [
    ({"action": "email"}, "no recipients"),
    ({"action": "email", "to": "ops at x"}, "'ops at x' is not an email address"),
    ({"action": "email", "to": ["a@x.test", 3]}, "'to' must be an address or a list"),
    ({"action": "email", "to": "a@x.test", "subject": ["s"]}, "'subject' must be a string"),
    ({"action": "notify", "target": "email://"}, "no recipients"),
    ({"action": "email", "to": "${ONCALL}"}, None),
    ({"action": "email", "to": "a@x.test", "target": "email://b@x.test"},
     "recipients in both 'to' and the target 'email://b@x.test'"),
    ({"action": "notify", "to": "a@x.test", "target": "email://b@x.test"},
     "recipients in both 'to' and the target"),
    ({"action": "notify", "to": ["a@x.test"], "target": "email://"}, None),
    ({"action": "email", "to": "a@x.test, b@y.test"}, None),
])
def test_validate_email(spec: dict[str, Any], problem: str | None) -> None:
    problems = validate_action(spec)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems
