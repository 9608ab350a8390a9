"""What a definition asks for that cannot be done here: requirements refuse the run, hints are
only reported — by the dry run, the run and the quorum submission alike."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from quorus.workflow.cli import workflow
from quorus.workflow.documents import load_file, load_text
from quorus.workflow.prepare import prepare

DESIGN = Path(__file__).parent / "data" / "design"

GROUP = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata: {{name: wf}}
spec:
  execution: {{strategy: parallel, continueOnError: true{extra}}}
  defaults: {{timeout: 90s}}
  groups:
    - name: g
      transferGroup:
        spec:
          transfers:
            - name: t
              source: {{path: {src}}}
              destination: {{path: {dst}{encryption}}}
"""


def test_design_transfer_reports_encryption_and_data_quality_as_errors() -> None:
    (doc,) = load_file(DESIGN / "transfer-internal-data.yaml")
    notices = prepare([doc]).workflow.all_notices()
    errors = [n.message for _, n in notices if n.level == "error"]
    infos = [n.message for _, n in notices if n.level == "info"]
    assert any("AES-256-GCM at rest" in m for m in errors)
    assert any("dataQuality" in m for m in errors)
    assert any("networkOptimization" in m for m in infos)
    assert any("splunk" in m for m in infos)


def test_design_workflow_reports_approval_as_an_error() -> None:
    (doc,) = load_file(DESIGN / "multi-tenant-workflow.yaml")
    notices = prepare([doc]).workflow.all_notices()
    assert [n.level for w, n in notices if "approvalRequired" in n.message] == ["error"]
    assert any("dataSharing" in n.message and n.level == "info" for _, n in notices)


def test_workflow_execution_settings_are_defaults_of_its_groups(tmp_path: Path) -> None:
    text = GROUP.format(extra="", src="/a", dst="/b", encryption="")
    group = prepare(load_text(text, "wf.yaml")).workflow.groups[0]
    assert group.strategy == "parallel" and group.continue_on_error is True
    assert group.transfers[0].timeout == 90.0


def test_run_refuses_and_dry_run_explains(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("data")
    text = GROUP.format(extra="", src=tmp_path / "in.txt", dst=tmp_path / "out.txt",
                        encryption=", encryption: {enabled: true, algorithm: AES-256-GCM}")
    (tmp_path / "wf.yaml").write_text(text)
    runner = CliRunner()
    refused = runner.invoke(workflow, ["run", str(tmp_path / "wf.yaml"), "--progress", "none"])
    assert refused.exit_code == 1
    assert "cannot run here" in refused.output and "AES-256-GCM" in refused.output
    assert not (tmp_path / "out.txt").exists()
    dry = runner.invoke(workflow, ["run", "--dry-run", str(tmp_path / "wf.yaml")])
    assert dry.exit_code == 1 and "cannot be done here" in dry.output


def test_a_workflow_that_asks_for_a_dry_run_gets_one(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("data")
    text = GROUP.format(extra=", dryRun: true", src=tmp_path / "in.txt",
                        dst=tmp_path / "out.txt", encryption="")
    (tmp_path / "wf.yaml").write_text(text)
    result = CliRunner().invoke(workflow, ["run", str(tmp_path / "wf.yaml")])
    assert result.exit_code == 0, result.output
    assert "asks for a dry run" in result.output
    assert not (tmp_path / "out.txt").exists()
