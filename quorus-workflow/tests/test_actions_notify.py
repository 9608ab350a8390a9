"""The notify action against a real HTTP receiver on 127.0.0.1: webhook and Slack payloads,
error answers, unreachable endpoints, and credentials kept out of outcomes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from quorus.core.testing.fixtures import anyio_backend, free_port
from quorus.workflow.actions import (
    BUILTIN_ACTIONS,
    ActionContext,
    ActionSettings,
    redact_url,
    run_actions,
    validate_action,
)
from quorus.workflow.actions.notify import slack_channel
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import load_text
from quorus.workflow.local import LocalRunner
from quorus.workflow.prepare import prepare
from quorus.workflow.summary import ExecutionStatus, ExecutionSummary, StepOutcome, StepStatus

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Records every POST; ``/status/NNN`` answers NNN, ``/stall`` answers only once
    ``release`` is set, anything else 200 ``ok``."""

    base: str
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Receiver(f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            state.requests.append(Received(self.path, dict(self.headers), body))
            status = 200
            if self.path.startswith("/status/"):
                status = int(self.path.split("/")[2].split("?")[0])
            if self.path.startswith("/stall"):
                state.release.wait(10)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            text = b"ok" if status < 400 else b"internal trouble"
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the recorded requests instead."""

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def summary(status: ExecutionStatus = ExecutionStatus.COMPLETED) -> ExecutionSummary:
    return ExecutionSummary(
        execution_id="e-42", workflow="daily-backup", status=status,
        steps=(
            StepOutcome("g/users", StepStatus.COMPLETED, "/src/u", "/dst/u", bytes=2048),
            StepOutcome("g/orders", StepStatus.FAILED, "/src/o", "/dst/o",
                        error="connection reset"),
        ),
    )


def context(**settings: Any) -> ActionContext:
    return ActionContext(settings=ActionSettings(**settings))


@pytest.mark.anyio
async def test_http_target_receives_the_summary_and_the_message(receiver: Receiver) -> None:
    run = summary()
    [outcome] = await run_actions(
        [{"action": "notify", "target": f"{receiver.base}/hook", "message": "backup done"}],
        run, context())
    assert outcome.ok, outcome.detail
    assert (outcome.action, outcome.target) == ("notify", f"{receiver.base}/hook")
    assert "HTTP 200" in outcome.detail
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {**run.to_json(), "message": "backup done"}


@pytest.mark.anyio
async def test_slack_target_posts_to_the_configured_webhook_with_the_channel(
    receiver: Receiver,
) -> None:
    webhook = f"{receiver.base}/services/T000/B000/s3cr3tpath"
    [outcome] = await run_actions(
        [{"action": "notify", "target": "slack://data-ops-channel",
          "message": "Daily backup completed"}],
        summary(), context(slack_webhook=webhook))
    assert outcome.ok, outcome.detail
    assert outcome.target == "slack://data-ops-channel"
    assert "s3cr3tpath" not in outcome.detail
    [request] = receiver.requests
    assert request.path == "/services/T000/B000/s3cr3tpath"
    assert request.body["channel"] == "#data-ops-channel"
    assert request.body["text"] == "Daily backup completed"
    [attachment] = request.body["attachments"]
    assert attachment["color"] == "good"
    assert {"title": "Steps", "value": "1 completed, 1 failed", "short": True} in (
        attachment["fields"])


@pytest.mark.anyio
async def test_slack_blocks_given_in_the_spec_replace_the_default_attachment(
    receiver: Receiver,
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*failed*"}}]
    [outcome] = await run_actions(
        [{"action": "notify", "target": "slack://ops", "message": "m", "blocks": blocks}],
        summary(ExecutionStatus.FAILED), context(slack_webhook=f"{receiver.base}/s"))
    assert outcome.ok, outcome.detail
    assert receiver.requests[0].body == {"channel": "#ops", "text": "m", "blocks": blocks}


SLACK_GROUP = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata: {name: backup}
spec:
  variables: {TEAM: data-ops}
  transfers:
    - {name: users, source: {path: "SRC"}, destination: {path: "DST"}}
  onSuccess:
    - action: notify
      target: slack://ops
      message: backup done
      attachments:
        - {color: good, fields: [{title: Team, value: "${TEAM}", short: true}]}
    - action: notify
      target: slack://ops
      message: blocks too
      blocks:
        - {type: section, text: {type: mrkdwn, text: "*${workflow.name}* done"}}
"""


@pytest.mark.anyio
async def test_a_workflow_giving_attachments_and_blocks_validates_and_slack_receives_them(
    receiver: Receiver, tmp_path: Path,
) -> None:
    (tmp_path / "users.csv").write_text("id\n")
    text = SLACK_GROUP.replace("SRC", str(tmp_path / "users.csv")).replace(
        "DST", str(tmp_path / "out.csv"))
    prepared = prepare(load_text(text, "backup.yaml"))  # the schema accepts both fields
    binder = Binder(prepared.workflow, RunContext(started_at=time.time(), execution_id="t"))
    run = await LocalRunner(prepared.plan, binder, execution_id="t", actions=BUILTIN_ACTIONS,
                            action_context=context(slack_webhook=f"{receiver.base}/s")).run()
    assert run.status is ExecutionStatus.COMPLETED
    assert [a.ok for a in run.actions] == [True, True], run.actions
    assert [r.body for r in receiver.requests] == [
        {"channel": "#ops", "text": "backup done", "attachments": [
            {"color": "good", "fields": [{"title": "Team", "value": "data-ops",
                                          "short": True}]}]},
        {"channel": "#ops", "text": "blocks too", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "*backup* done"}}]},
    ]


@pytest.mark.anyio
async def test_slack_without_a_webhook_fails_saying_what_to_set(receiver: Receiver) -> None:
    [outcome] = await run_actions([{"action": "notify", "target": "slack://ops"}],
                                  summary(), context())
    assert not outcome.ok
    assert "QUORUS_SLACK_WEBHOOK" in outcome.detail
    assert receiver.requests == []


@pytest.mark.anyio
async def test_named_webhook_posts_to_its_url_and_an_unknown_name_lists_the_known_ones(
    receiver: Receiver,
) -> None:
    settings = {"webhooks": MappingProxyType({"ops": f"{receiver.base}/named?token=t0k"})}
    ok, unknown = await run_actions(
        [{"action": "notify", "target": "webhook://ops"},
         {"action": "notify", "target": "webhook://opz"}],
        summary(), context(**settings))
    assert ok.ok, ok.detail
    assert ok.target == "webhook://ops" and "t0k" not in ok.detail
    assert receiver.requests[0].path == "/named?token=t0k"
    assert receiver.requests[0].body["message"] == "Workflow daily-backup completed."
    assert not unknown.ok
    assert "no webhook named 'opz'" in unknown.detail and "ops" in unknown.detail


@pytest.mark.anyio
async def test_an_error_status_fails_that_action_and_the_next_one_still_runs(
    receiver: Receiver,
) -> None:
    failed, delivered = await run_actions(
        [{"action": "notify", "target": f"{receiver.base}/status/500", "message": "one"},
         {"action": "notify", "target": f"{receiver.base}/hook", "message": "two"}],
        summary(), context())
    assert not failed.ok
    assert "HTTP 500" in failed.detail and "internal trouble" in failed.detail
    assert delivered.ok
    assert [r.body["message"] for r in receiver.requests] == ["one", "two"]


@pytest.mark.anyio
async def test_an_unreachable_endpoint_is_a_failed_outcome() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    [outcome] = await run_actions([{"action": "notify", "target": url}], summary(), context())
    assert not outcome.ok
    assert outcome.detail.startswith(f"notify: POST to {url} failed")


@pytest.mark.anyio
async def test_an_endpoint_that_does_not_answer_in_time_fails_naming_the_timeout(
    receiver: Receiver,
) -> None:
    [outcome] = await run_actions([{"action": "notify", "target": f"{receiver.base}/stall"}],
                                  summary(), context(timeout=0.2))
    receiver.release.set()
    assert not outcome.ok
    assert "did not answer within 0.2 s" in outcome.detail


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/status/500", "/hook"])
async def test_credentials_in_the_url_never_appear_in_the_outcome(
    receiver: Receiver, path: str,
) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    url = f"http://alice:pa55word@127.0.0.1:{port}{path}?token=tok3n&team=ops"
    unreachable = f"http://alice:pa55word@127.0.0.1:{free_port()}/x?sig=tok3n"
    outcomes = await run_actions(
        [{"action": "notify", "target": url}, {"action": "notify", "target": unreachable}],
        summary(), context())
    assert outcomes[0].ok is (path == "/hook")
    assert not outcomes[1].ok
    for outcome in outcomes:
        text = json.dumps(outcome.to_json())
        assert "pa55word" not in text and "tok3n" not in text and "alice" not in text
    assert outcomes[0].target == f"http://***@127.0.0.1:{port}{path}?token=***&team=ops"
    # The credentials were used, only never shown.
    assert receiver.requests[0].headers["Authorization"].startswith("Basic ")


@pytest.mark.anyio
async def test_a_dry_run_posts_nothing(receiver: Receiver) -> None:
    dry = ActionContext(settings=ActionSettings(slack_webhook=f"{receiver.base}/s"),
                        dry_run=True)
    outcomes = await run_actions(
        [{"action": "notify", "target": f"{receiver.base}/hook"},
         {"action": "notify", "target": "slack://ops"}], summary(), dry)
    assert [o.ok for o in outcomes] == [True, True]
    assert outcomes[0].detail == f"would post to {receiver.base}/hook"
    assert outcomes[1].detail == "would post to the Slack webhook for #ops"
    assert receiver.requests == []


@pytest.mark.parametrize(("target", "channel"), [
    ("slack://data-ops", "#data-ops"),
    ("slack://#alerts", "#alerts"),
    ("slack://@oncall", "@oncall"),
    ("slack://C0123456789", "C0123456789"),
    ("slack://ops/", "#ops"),
])
def test_slack_channel_names(target: str, channel: str) -> None:
    assert slack_channel(target) == channel


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.example/x?a=1", "https://hooks.example/x?a=1"),
    ("https://u:p@hooks.example:8443/x", "https://***@hooks.example:8443/x"),
    ("https://tokenonly@hooks.example/x", "https://***@hooks.example/x"),
    ("https://h.example/x?api_key=k&Signature=s&v=2", "https://h.example/x?api_key=***&Signature=***&v=2"),
    ("https://[::1]:9000/x", "https://[::1]:9000/x"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("spec", "problem"), [
    ({"action": "notify"}, "'target' is required"),
    ({"action": "notify", "target": "ftp://host/x"}, "unknown target 'ftp://host/x'"),
    ({"action": "notify", "target": "https://u:pw@h/x?token=t"}, None),
    ({"action": "notify", "target": "ftp://u:pw@h/x"}, "unknown target 'ftp://***@h/x'"),
    ({"action": "notify", "target": "slack://"}, "names no channel"),
    ({"action": "notify", "target": "webhook://"}, "names no webhook"),
    ({"action": "notify", "target": "slack://ops", "message": 3}, "'message' must be a string"),
    ({"action": "notify", "target": "email://not-an-address"}, "is not an email address"),
    ({"action": "notify", "target": "${ALERT_TARGET}"}, None),
    ({"action": "notify", "target": "slack://ops", "blocks": [{"type": "divider"}],
      "attachments": []}, None),
    ({"action": "notify", "target": "slack://ops", "blocks": "*x*"},
     "'blocks' must be a list of mappings"),
    ({"action": "notify", "target": "slack://ops", "attachments": [1]},
     "'attachments' must be a list of mappings"),
    ({"action": "notify", "target": "https://h.example/x", "blocks": [{"type": "divider"}]},
     "'blocks' applies to slack://CHANNEL targets only, not https://"),
    ({"action": "notify", "target": "${ALERT_TARGET}", "blocks": [{"type": "divider"}]}, None),
    ({"action": "notify", "target": "slack://ops", "to": "a@x.test"},
     "'to' names email recipients: not used with a slack:// target"),
])
def test_validate_notify(spec: dict[str, Any], problem: str | None) -> None:
    problems = validate_action(spec)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems
