"""``quorus workflow run --settings FILE``: action settings from YAML reach the actions (a
named webhook receives the summary); a malformed settings file is a usage error."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from quorus.workflow.cli import workflow

WORKFLOW = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata: {{name: act}}
spec:
  transfers:
    - name: a
      source: {{path: {src}}}
      destination: {{path: {dst}}}
  onSuccess:
    - {{action: notify, target: "webhook://ops", message: "copied"}}
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_named_webhook_from_the_settings_file(tmp_path: Path,
                                              receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    (tmp_path / "in.txt").write_text("payload")
    (tmp_path / "wf.yaml").write_text(WORKFLOW.format(src=tmp_path / "in.txt",
                                                      dst=tmp_path / "out.txt"))
    (tmp_path / "settings.yaml").write_text(f"notify: {{webhooks: {{ops: '{url}'}}}}\n")
    result = CliRunner().invoke(workflow, ["run", str(tmp_path / "wf.yaml"), "--settings",
                                           str(tmp_path / "settings.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["actions"][0]["ok"] is True
    assert received[0]["message"] == "copied"
    assert received[0]["workflow"] == "act" and received[0]["status"] == "completed"


def test_malformed_settings_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("payload")
    (tmp_path / "wf.yaml").write_text(WORKFLOW.format(src=tmp_path / "in.txt",
                                                      dst=tmp_path / "out.txt"))
    (tmp_path / "settings.yaml").write_text("notfy: {}\n")
    result = CliRunner().invoke(workflow, ["run", str(tmp_path / "wf.yaml"), "--settings",
                                           str(tmp_path / "settings.yaml")])
    assert result.exit_code == 2
    assert "unknown key 'notfy'" in result.output
    assert not (tmp_path / "out.txt").exists()
