"""The ``email`` action (also ``notify`` with an ``email://`` target): a plain-text message
with the execution's step table, sent through the configured SMTP relay from a worker
thread."""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any

import anyio.to_thread
from quorus.core.units import format_size
from quorus.workflow.actions.base import ActionContext, ActionError, is_template
from quorus.workflow.actions.settings import ActionSettings
from quorus.workflow.summary import ActionOutcome, ExecutionSummary

EMAIL_SCHEME = "email://"
_ADDRESS = re.compile(r"^[^@\s,<>;\"]+@[^@\s,<>;\"]+$")
_ERROR_WIDTH = 200


def recipients_from_target(target: str) -> list[str]:
    """The addresses of an ``email://a@x,b@y`` target."""
    return [a.strip() for a in target[len(EMAIL_SCHEME):].rstrip("/").split(",") if a.strip()]


def address_problems(addresses: Sequence[str]) -> list[str]:
    """Why these recipients cannot be used (none given, malformed ones)."""
    if not addresses:
        return ["email: no recipients: give 'to' or a target email://ADDRESS[,ADDRESS...]"]
    return [f"email: {a!r} is not an email address (expected name@domain)"
            for a in addresses if not is_template(a) and not _ADDRESS.match(a)]


def step_table(summary: ExecutionSummary) -> str:
    """The steps of ``summary`` as an aligned plain-text table: step, status, bytes, error."""
    rows = [("step", "status", "bytes", "error")]
    for step in summary.steps:
        problem = " ".join((step.error or step.reason or "").split())
        if len(problem) > _ERROR_WIDTH:
            problem = problem[: _ERROR_WIDTH - 3] + "..."
        rows.append((step.step, str(step.status), format_size(step.bytes), problem))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  " + row[3]
        for row in rows
    ).rstrip() + "\n"


def default_subject(summary: ExecutionSummary) -> str:
    return f"[quorus] workflow {summary.workflow} {summary.status}"


def default_message(summary: ExecutionSummary) -> str:
    return f"Workflow {summary.workflow} {summary.status}."


def compose(
    summary: ExecutionSummary, *, message: str, subject: str, sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """The message: ``message``, the execution's totals, then the step table."""
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts().items()) or "no steps"
    lines = [
        message.rstrip(), "",
        f"Execution {summary.execution_id} of {summary.workflow}: {summary.status} "
        f"({counts}; {format_size(summary.bytes)}).",
    ]
    if summary.error:
        lines.append(f"Error: {summary.error}")
    msg = EmailMessage()
    # Header values must be one line; a bound variable could carry a line break.
    msg["Subject"] = " ".join(subject.split())
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg.set_content("\n".join(lines) + "\n\n" + step_table(summary))
    return msg


def _send(settings: ActionSettings, msg: EmailMessage, recipients: Sequence[str]) -> None:
    """Deliver ``msg`` (blocking: runs in a worker thread)."""
    host, port = settings.smtp_host, settings.smtp_port
    assert host is not None
    where = f"SMTP server {host}:{port}"
    try:
        with smtplib.SMTP(host, port, timeout=settings.timeout) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_username:
                if settings.smtp_password is None:
                    raise ActionError(
                        f"email: a username ({settings.smtp_username}) is set but no password: "
                        "set QUORUS_SMTP_PASSWORD_FILE or smtp.passwordFile"
                    )
                smtp.login(settings.smtp_username, settings.smtp_password.reveal())
            refused = smtp.send_message(msg, from_addr=settings.smtp_from, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ActionError(f"email: {where} refused every recipient: {_refusals(exc.recipients)}"
                          ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ActionError(
            f"email: {where} refused the login as {settings.smtp_username!r}: "
            f"{exc.smtp_code} {_text(exc.smtp_error)}; check the SMTP username and password"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ActionError(f"email: {where} does not support {exc}; check QUORUS_SMTP_STARTTLS "
                          "and whether the relay needs a login") from None
    except smtplib.SMTPResponseException as exc:
        raise ActionError(
            f"email: {where} refused the message: {exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except (smtplib.SMTPException, ssl.SSLError) as exc:
        raise ActionError(f"email: conversation with {where} failed: {exc}") from None
    except TimeoutError:
        raise ActionError(f"email: {where} did not answer within {settings.timeout:g} s") from None
    except OSError as exc:
        raise ActionError(
            f"email: cannot reach {where}: {exc.strerror or exc}; check QUORUS_SMTP_HOST and "
            "QUORUS_SMTP_PORT"
        ) from None
    if refused:
        raise ActionError(f"email: {where} refused some recipients: {_refusals(refused)}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr}: {code} {_text(text)}" for addr, (code, text) in refused.items())


class EmailAction:
    """``{action: email, to: [a@x, b@y] | "a@x,b@y", message, subject}`` or
    ``{action: notify|email, target: email://a@x,b@y, ...}``: the recipients in ``to`` or in
    the target, not in both."""

    name = "email"

    def recipients(self, spec: Mapping[str, Any]) -> list[str]:
        to = spec.get("to")
        if to is None:
            target = spec.get("target")
            if isinstance(target, str) and target.lower().startswith(EMAIL_SCHEME):
                return recipients_from_target(target)
            return []
        if isinstance(to, str):
            return [a.strip() for a in to.split(",") if a.strip()]
        if isinstance(to, list) and all(isinstance(a, str) for a in to):
            return [a.strip() for a in to if a.strip()]
        raise ActionError(f"email: 'to' must be an address or a list of addresses, not {to!r}")

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        try:
            addresses = self.recipients(spec)
        except ActionError as exc:
            return [str(exc)]
        target = spec.get("target")
        if ("to" in spec and isinstance(target, str)
                and target.lower().startswith(EMAIL_SCHEME) and recipients_from_target(target)):
            return [f"email: recipients in both 'to' and the target {target!r}: give them in "
                    "one place"]
        problems = address_problems(addresses)
        for key in ("message", "subject"):
            if key in spec and not isinstance(spec[key], str):
                problems.append(f"email: {key!r} must be a string")
        return problems

    async def __call__(
        self, spec: Mapping[str, Any], summary: ExecutionSummary, context: ActionContext
    ) -> ActionOutcome:
        problems = self.validate(spec)
        if problems:
            raise ActionError("; ".join(problems))
        recipients = self.recipients(spec)
        settings = context.settings
        target = EMAIL_SCHEME + ",".join(recipients)
        action = str(spec.get("action", self.name))
        msg = compose(
            summary,
            message=str(spec.get("message") or default_message(summary)),
            subject=str(spec.get("subject") or default_subject(summary)),
            sender=settings.smtp_from,
            recipients=recipients,
        )
        if settings.smtp_host is None:
            if context.dry_run:
                return ActionOutcome(action, target, True,
                                     f"would send {msg['Subject']!r} to {len(recipients)} "
                                     "recipients, but no SMTP host is set (QUORUS_SMTP_HOST)")
            raise ActionError("email: no SMTP server configured: set QUORUS_SMTP_HOST "
                              "(or smtp.host in the configuration)")
        relay = f"{settings.smtp_host}:{settings.smtp_port}"
        if context.dry_run:
            return ActionOutcome(action, target, True,
                                 f"would send {msg['Subject']!r} to {', '.join(recipients)} "
                                 f"through {relay}")
        await anyio.to_thread.run_sync(_send, settings, msg, recipients)
        return ActionOutcome(action, target, True,
                             f"sent {msg['Subject']!r} to {', '.join(recipients)} through {relay}")


__all__ = [
    "EMAIL_SCHEME",
    "EmailAction",
    "address_problems",
    "compose",
    "default_message",
    "default_subject",
    "recipients_from_target",
    "step_table",
]
