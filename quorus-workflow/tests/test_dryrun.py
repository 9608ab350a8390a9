"""Dry runs: every problem a run would meet, found without moving a byte — missing sources,
destinations that cannot be written, protocols not installed, unresolvable variables grouped
by cause, the workflow's disk-space checks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import load_text
from quorus.workflow.dryrun import DryRunReport, dry_run
from quorus.workflow.prepare import prepare

__all__ = ["anyio_backend"]  # every async test runs under asyncio and trio

pytestmark = pytest.mark.anyio


async def check(transfers: list[dict[str, Any]], *, variables: dict[str, Any] | None = None,
                checks: list[dict[str, Any]] | None = None,
                environ: dict[str, str] | None = None,
                defaults: dict[str, Any] | None = None) -> DryRunReport:
    group: dict[str, Any] = {"execution": {"strategy": "parallel"}, "transfers": transfers}
    if defaults:
        group["defaults"] = defaults
    spec: dict[str, Any] = {"groups": [{"name": "g", "transferGroup": {"spec": group}}]}
    if variables:
        spec["variables"] = variables
    if checks:
        spec["validation"] = checks
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf"}, "spec": spec}, sort_keys=False)
    prepared = prepare(load_text(text, "wf.yaml"))
    binder = Binder(prepared.workflow, RunContext(started_at=time.time(),
                                                  environ=environ or {}))
    return await dry_run(prepared.plan, binder, check_remote=False)


def errors(report: DryRunReport) -> list[tuple[str, str]]:
    return [(f.step, f.message) for f in report.findings if f.level == "error"]


async def test_a_clean_workflow_has_no_error_and_moves_nothing(tmp_path: Path) -> None:
    (tmp_path / "src.bin").write_bytes(b"x" * 1234)
    report = await check([{"name": "t", "source": {"path": str(tmp_path / "src.bin")},
                           "destination": {"path": str(tmp_path / "out" / "dst.bin")}}])
    assert report.ok and errors(report) == []
    assert report.steps[0].size == 1234
    assert report.steps[0].source == str(tmp_path / "src.bin")
    assert not (tmp_path / "out").exists()
    assert report.to_json()["ok"] is True


async def test_a_missing_source_is_reported(tmp_path: Path) -> None:
    report = await check([{"name": "t", "source": {"path": str(tmp_path / "nope")},
                           "destination": {"path": str(tmp_path / "dst")}}])
    assert errors(report) == [("g/t", f"source {tmp_path / 'nope'} does not exist")]
    assert not report.ok


async def test_a_destination_under_a_regular_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    (tmp_path / "plain-file").write_text("not a directory")
    report = await check([{"name": "t", "source": {"path": str(tmp_path / "src")},
                           "destination": {"path": str(tmp_path / "plain-file" / "sub" /
                                                       "dst")}}])
    assert errors(report) == [("g/t", f"cannot create {tmp_path / 'plain-file' / 'sub'}: "
                                      f"{tmp_path / 'plain-file'} is not a directory")]


async def test_a_missing_directory_without_create_directories_is_reported(tmp_path: Path
                                                                          ) -> None:
    (tmp_path / "src").write_bytes(b"x")
    report = await check([{"name": "t", "source": {"path": str(tmp_path / "src")},
                           "destination": {"path": str(tmp_path / "no" / "dst"),
                                           "createDirectories": False}}])
    assert len(errors(report)) == 1
    assert "does not exist (createDirectories is false)" in errors(report)[0][1]


async def test_an_unknown_protocol_names_what_to_install(tmp_path: Path) -> None:
    report = await check([{"name": "t", "source": {"uri": "foo://host/x"},
                           "destination": {"path": str(tmp_path / "dst")}}])
    [(step, message)] = errors(report)
    assert step == "g/t"
    assert "no protocol for scheme 'foo'" in message and "install" in message


async def test_unresolvable_variables_are_grouped_by_cause(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    report = await check([
        {"name": "one", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": "${OUT}/one"}},
        {"name": "two", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": "${OUT}/two"}},
        {"name": "three", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "${partner.dir}")}},
    ], variables={"OUT": "${env:QUORUS_NOT_SET}"})
    unresolved = [m for s, m in errors(report) if m.startswith("unresolvable:")]
    assert len(unresolved) == 2
    env = next(m for m in unresolved if "QUORUS_NOT_SET" in m)
    assert "environment variable QUORUS_NOT_SET is not set" in env
    assert "transfer g/one destination" in env and "transfer g/two destination" in env
    partner = next(m for m in unresolved if "partner.dir" in m)
    assert "--set partner.dir=VALUE" in partner and "transfer g/three" in partner
    # Steps that cannot be bound are not checked further, and not reported twice.
    assert [s for s, _ in errors(report)] == ["", ""]


async def test_results_are_left_to_run_time(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    report = await check([
        {"name": "a", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "a")}},
        {"name": "b", "dependsOn": ["a"], "condition": "${a.success}",
         "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "${a.result.checksum}")}},
    ])
    assert report.ok
    infos = [(f.step, f.message) for f in report.findings if f.level == "info"]
    assert ("g/b", "condition ${a.success} is evaluated at run time") in infos
    assert any(step == "g/b" and message.startswith("bound at run time:")
               for step, message in infos)


async def test_disk_space_checks(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    transfer = {"name": "t", "source": {"path": str(tmp_path / "src")},
                "destination": {"path": str(tmp_path / "dst")}}
    report = await check([transfer], checks=[
        {"name": "small", "type": "diskSpace", "path": str(tmp_path / "not" / "yet"),
         "required": "1KB"},
        {"name": "huge", "type": "diskSpace", "path": str(tmp_path), "required": "1000000TB"},
        {"name": "typo", "type": "diskSpace", "path": str(tmp_path), "required": "1PB"},
    ])
    findings = {f.message.split(":")[0]: f for f in report.findings if not f.step}
    assert findings["small"].level == "info"
    assert f"small: {tmp_path} has" in findings["small"].message  # the nearest existing dir
    assert findings["huge"].level == "error" and "required" in findings["huge"].message
    assert findings["typo"].level == "error" and "invalid required '1PB'" in \
        findings["typo"].message


async def test_action_specs_are_checked(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    spec: dict[str, Any] = {"name": "t", "source": {"path": str(tmp_path / "src")},
                            "destination": {"path": str(tmp_path / "dst")}}
    report = await check([spec])
    assert report.ok
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferGroup",
                           "metadata": {"name": "g"}, "spec": {
                               "transfers": [spec],
                               "onFailure": [{"action": "notify", "target": "slack://ops",
                                              "message": "failed"}],
                               "onSuccess": [{"action": "notify",
                                              "target": "gopher://ops"}]}})
    prepared = prepare(load_text(text, "g.yaml"))
    binder = Binder(prepared.workflow, RunContext(started_at=time.time()))
    actions = await dry_run(prepared.plan, binder, check_remote=False)
    problems = [f.message for f in actions.findings if f.level == "error"]
    assert len(problems) == 1 and problems[0].startswith("workflow action notify:"), problems


async def test_a_source_written_by_an_earlier_step_is_not_a_problem(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 10)
    report = await check([
        {"name": "stage", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "staged")}},
        {"name": "publish", "dependsOn": ["stage"], "source": {"path": str(tmp_path / "staged")},
         "destination": {"path": str(tmp_path / "published")}},
    ])
    assert report.ok, errors(report)
    assert ("info", f"source {tmp_path / 'staged'} is written by g/stage earlier in this run") \
        in [(f.level, f.message) for f in report.findings if f.step == "g/publish"]
    assert report.steps[1].size == 10


async def test_the_effective_validation_is_shown_and_checked_against_the_source(
        tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 3000)
    digest = "AB" * 32
    report = await check([
        {"name": "t", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "t")}},
        {"name": "own", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "own")},
         "validation": {"expectedSize": {"max": "5KB"}}},
    ], defaults={"validation": {"expectedSize": {"max": "10B"},
                                "checksum": {"algorithm": "SHA-256", "value": digest}}})
    t, own = report.steps
    assert t.validation == {"expectedSize": {"min": None, "max": 10},
                            "checksum": f"sha256:{digest.lower()}"}
    assert own.validation["expectedSize"] == {"min": None, "max": 5000}
    assert errors(report) == [("g/t", f"source {tmp_path / 'src'} is 3000 bytes, above the "
                                      "maximum of 10")]
    assert report.to_json()["steps"][0]["validation"] == t.validation


def test_the_dry_run_prints_the_effective_validation(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from quorus.workflow.cli import workflow

    (tmp_path / "src").write_bytes(b"x" * 3000)
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({
        "apiVersion": "quorus.dev/v1", "kind": "TransferGroup", "metadata": {"name": "g"},
        "spec": {"defaults": {"validation": {"expectedSize": {"max": "10B"}}},
                 "transfers": [{"name": "t", "source": {"path": str(tmp_path / "src")},
                                "destination": {"path": str(tmp_path / "dst")}}]}}))
    result = CliRunner().invoke(workflow, ["run", "--dry-run", str(tmp_path / "g.yaml")])
    assert result.exit_code == 1, result.output
    assert "g/t: verifies size at most 10 B" in result.output
    assert "error: g/t: source" in result.output and "above the maximum of 10" in result.output


async def test_an_expected_size_is_checked_exactly_as_the_run_checks_it(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x" * 3000)
    report = await check([
        {"name": "wrong", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "a")}, "expectedSize": "5KB"},
        {"name": "right", "source": {"path": str(tmp_path / "src")},
         "destination": {"path": str(tmp_path / "b")}, "expectedSize": 3000,
         "validation": {"expectedSize": {"min": "1KB", "max": "1MB"}}},
    ])
    assert errors(report) == [("g/wrong", f"source {tmp_path / 'src'} is 3000 bytes, "
                                          "expected exactly 5000")]
    wrong, right = report.steps
    assert wrong.validation == {"expectedSize": {"min": 5000, "max": 5000}}
    assert right.validation == {"expectedSize": {"min": 3000, "max": 3000}}
