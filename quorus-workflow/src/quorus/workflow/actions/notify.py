"""The ``notify`` action: POST the execution summary to an ``http(s)://`` or named
``webhook://`` endpoint, a Slack message to ``slack://CHANNEL`` through the configured
incoming webhook, or an email to ``email://`` recipients."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
from quorus.core.units import format_size
from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    is_template,
    redact_url,
    spec_text,
)
from quorus.workflow.actions.email import EmailAction
from quorus.workflow.actions.settings import SLACK_WEBHOOK_ENV, ActionSettings
from quorus.workflow.summary import ActionOutcome, ExecutionStatus, ExecutionSummary

SCHEMES = ("http", "https", "slack", "webhook", "email")
#: Spec fields sent as they are in a Slack message, in place of the default attachment.
SLACK_FIELDS = ("attachments", "blocks")
_BODY_EXCERPT = 200
# Slack conversation ids (C…, G…, D…) and user ids (U…, W…) are sent as they are.
_SLACK_ID = re.compile(r"^[CGDUW][A-Z0-9]{8,}$")


def target_scheme(target: str) -> str | None:
    scheme, sep, _ = target.partition("://")
    return scheme.lower() if sep else None


def show_target(target: str) -> str:
    """The target as an outcome shows it: URLs without credentials; paths and email
    recipients as given."""
    return target if target_scheme(target) in (None, "email") else redact_url(target)


def slack_channel(target: str) -> str:
    """``slack://data-ops`` → ``#data-ops``; ``@user``, ``#channel`` and Slack ids unchanged."""
    channel = target.partition("://")[2].strip("/")
    if channel.startswith(("#", "@")) or _SLACK_ID.match(channel):
        return channel
    return f"#{channel}"


def slack_payload(spec: Mapping[str, Any], summary: ExecutionSummary, channel: str,
                  message: str) -> dict[str, Any]:
    """A Slack incoming-webhook message; ``attachments``/``blocks`` from the spec replace the
    default attachment with the execution's totals."""
    payload: dict[str, Any] = {"channel": channel, "text": message}
    if any(k in spec for k in SLACK_FIELDS):
        payload.update({k: spec[k] for k in SLACK_FIELDS if k in spec})
        return payload
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts().items()) or "no steps"
    payload["attachments"] = [{
        "color": "good" if summary.status is ExecutionStatus.COMPLETED else "danger",
        "fields": [
            {"title": "Workflow", "value": summary.workflow, "short": True},
            {"title": "Status", "value": str(summary.status), "short": True},
            {"title": "Steps", "value": counts, "short": True},
            {"title": "Transferred", "value": format_size(summary.bytes), "short": True},
        ],
        "footer": f"execution {summary.execution_id}",
    }]
    return payload


async def post_json(url: str, payload: Mapping[str, Any], settings: ActionSettings,
                    shown: str) -> str:
    """POST ``payload`` to ``url``; what happened, as ``shown`` (never ``url`` itself, which
    may carry credentials). A failure or a non-2xx answer is an :class:`ActionError`."""
    try:
        async with httpx.AsyncClient(timeout=settings.timeout) as client:
            response = await client.post(url, json=payload)
    except httpx.TimeoutException:
        raise ActionError(
            f"notify: {shown} did not answer within {settings.timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:
        reason = str(exc).replace(url, shown) or type(exc).__name__
        raise ActionError(f"notify: POST to {shown} failed: {reason}") from None
    if not response.is_success:
        body = " ".join(response.text.split()).replace(url, shown)[:_BODY_EXCERPT]
        raise ActionError(
            f"notify: {shown} answered HTTP {response.status_code} {response.reason_phrase}"
            + (f": {body}" if body else "")
        )
    return f"posted to {shown}: HTTP {response.status_code}"


def _field_problems(spec: Mapping[str, Any], scheme: str | None) -> list[str]:
    """Problems of the fields only some targets use: ``attachments``/``blocks`` (lists of
    mappings, for ``slack://``) and ``to`` (for ``email://``); ``scheme`` None: not known
    before binding."""
    problems: list[str] = []
    for key in SLACK_FIELDS:
        if key not in spec:
            continue
        value = spec[key]
        if not (isinstance(value, list) and all(isinstance(item, Mapping) for item in value)):
            problems.append(f"notify: {key!r} must be a list of mappings (Slack {key})")
        elif scheme not in (None, "slack"):
            problems.append(f"notify: {key!r} applies to slack://CHANNEL targets only, "
                            f"not {scheme}://")
    if "to" in spec and scheme not in (None, "email"):
        problems.append(f"notify: 'to' names email recipients: not used with a {scheme}:// "
                        "target (use target email://ADDRESS or action email)")
    return problems


class NotifyAction:
    """``{action: notify, target: https://…|webhook://NAME|slack://CHANNEL|email://…,
    message: TEXT}``; a ``slack://`` target also takes ``attachments`` and ``blocks``."""

    name = "notify"

    def __init__(self, email: EmailAction | None = None) -> None:
        self._email = email or EmailAction()

    def validate(self, spec: Mapping[str, Any]) -> list[str]:
        target = spec.get("target")
        if target is None:
            return ["notify: 'target' is required (https://URL, webhook://NAME, "
                    "slack://CHANNEL or email://ADDRESS)"]
        if not isinstance(target, str):
            return [f"notify: 'target' must be a string, not {type(target).__name__}"]
        if "message" in spec and not isinstance(spec["message"], str):
            return ["notify: 'message' must be a string"]
        if is_template(target.partition("://")[0]):
            return _field_problems(spec, None)
        scheme = target_scheme(target)
        if scheme not in SCHEMES:
            return [f"notify: unknown target {show_target(target)!r}: use one of "
                    f"{', '.join(s + '://' for s in SCHEMES)}"]
        problems = _field_problems(spec, scheme)
        if scheme == "email":
            return problems + self._email.validate(spec)
        if not target.partition("://")[2].strip("/"):
            problems.append(f"notify: target {show_target(target)!r} names no "
                            + {"slack": "channel", "webhook": "webhook"}.get(scheme, "host"))
        return problems

    async def __call__(
        self, spec: Mapping[str, Any], summary: ExecutionSummary, context: ActionContext
    ) -> ActionOutcome:
        problems = self.validate(spec)
        if problems:
            raise ActionError("; ".join(problems))
        target = spec_text(spec, "target", self.name)
        scheme = target_scheme(target)
        if scheme == "email":
            return await self._email(spec, summary, context)
        message = str(spec.get("message") or f"Workflow {summary.workflow} {summary.status}.")
        settings = context.settings
        shown = show_target(target)
        if scheme == "slack":
            if not settings.slack_webhook:
                raise ActionError(
                    f"notify: {target} needs a Slack incoming webhook: set {SLACK_WEBHOOK_ENV} "
                    "(or notify.slackWebhook in the configuration)"
                )
            url = settings.slack_webhook
            payload = slack_payload(spec, summary, slack_channel(target), message)
            where = f"the Slack webhook for {slack_channel(target)}"
        else:
            url = self._webhook_url(target, settings) if scheme == "webhook" else target
            payload = {**summary.to_json(), "message": message}
            where = shown if scheme != "webhook" else f"webhook {target.partition('://')[2]!r}"
        if context.dry_run:
            return ActionOutcome(self.name, shown, True, f"would post to {where}")
        detail = await post_json(url, payload, settings, where)
        return ActionOutcome(self.name, shown, True, detail)

    @staticmethod
    def _webhook_url(target: str, settings: ActionSettings) -> str:
        name = target.partition("://")[2].strip("/")
        url = settings.webhooks.get(name)
        if url is None:
            known = ", ".join(sorted(settings.webhooks)) or "none are configured"
            raise ActionError(
                f"notify: no webhook named {name!r} (configured: {known}); add it under "
                "notify.webhooks in the configuration"
            )
        return url


__all__ = ["SLACK_FIELDS", "NotifyAction", "post_json", "show_target", "slack_channel", "slack_payload"]
