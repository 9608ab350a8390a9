"""``quorus workflow``: validate, plan, schema and run (real, failing, dry, virtual) through
click's test runner, and once through the installed ``quorus`` console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from quorus.workflow.cli import workflow

DESIGN = Path(__file__).parent / "data" / "design"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(workflow, list(args), env=env, catch_exceptions=False)


def write_group(path: Path, transfers: list[dict[str, Any]], **spec: Any) -> Path:
    body: dict[str, Any] = {"execution": {"strategy": "sequential"}, "transfers": transfers}
    body.update(spec)
    path.write_text(yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferGroup",
                                    "metadata": {"name": "copy"}, "spec": body},
                                   sort_keys=False))
    return path


def copy_files(tmp_path: Path, source: str = "in.txt") -> Path:
    (tmp_path / "in.txt").write_text("hello\n")
    return write_group(tmp_path / "copy.yaml", [
        {"name": "first", "source": {"path": str(tmp_path / source)},
         "destination": {"path": "${OUT}/first.txt"},
         "retry": {"maxAttempts": 1}},
        {"name": "second", "dependsOn": ["first"],
         "source": {"path": "${OUT}/first.txt"},
         "destination": {"path": "${OUT}/${LABEL}.txt"}},
    ], variables={"OUT": str(tmp_path / "out"), "LABEL": "second"})


def test_validate_accepts_the_design_examples() -> None:
    result = invoke("validate", str(DESIGN))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 4 document(s)")
    as_json = json.loads(invoke("validate", "--json", str(DESIGN)).output)
    # A folder: every runnable definition in it is planned, not only one.
    assert as_json["ok"] is True
    assert sorted(d["workflow"] for d in as_json["definitions"]) == [
        "cross-tenant-data-sync", "daily-backup-workflow", "internal-data-sync"]
    one = json.loads(invoke("validate", "--json", "--name", "cross-tenant-data-sync",
                            str(DESIGN)).output)
    assert one["workflow"] == "cross-tenant-data-sync" and one["levels"] == 2


def test_validate_reports_every_problem_with_file_line_and_column(tmp_path: Path) -> None:
    bad = write_group(tmp_path / "bad.yaml", [
        {"name": "a", "source": {"path": "${MISSING}"}, "destination": {"path": "/o"}},
        {"name": "b", "source": {"path": "/i"}, "destination": {"path": "/o"},
         "dependsOn": ["zz"]},
    ])
    result = invoke("validate", str(bad))
    assert result.exit_code == 2
    assert "2 problems" in result.stderr
    assert f"{bad}:11:7: spec.transfers[0].source.path: undefined variable ${{MISSING}}" in \
        result.stderr
    assert f"{bad}:14:5: spec.transfers[1]: transfer 'b' depends on 'zz'" in result.stderr
    as_json = invoke("validate", "--json", str(bad))
    assert as_json.exit_code == 2
    assert json.loads(as_json.output)["ok"] is False


def test_validate_plan_and_dry_runs_refuse_triggers_register_would(tmp_path: Path) -> None:
    flow = tmp_path / "nightly.yaml"
    flow.write_text(yaml.safe_dump({
        "apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
        "metadata": {"name": "nightly"},
        "spec": {"groups": [{"name": "only", "transferGroup": {"spec": {"transfers": [
            {"name": "a", "source": {"path": str(tmp_path / "in.txt")},
             "destination": {"path": str(tmp_path / "out.txt")}}]}}}],
                 "triggers": [
                     {"name": "bad-hour", "type": "cron", "schedule": "99 2 * * *"},
                     {"name": "on-mars", "type": "cron", "schedule": "0 2 * * *",
                      "timezone": "Mars/Olympus"},
                     {"name": "flag", "type": "fileSystem", "path": "flags/ready"}]}},
        sort_keys=False))
    expected = [
        "spec.triggers[0].schedule: trigger 'bad-hour': schedule '99 2 * * *' is not a cron "
        "schedule: its minute field '99' must be 0-59",
        "spec.triggers[1].timezone: trigger 'on-mars': time zone 'Mars/Olympus' is not an "
        "IANA zone",
        "spec.triggers[2].path: trigger 'flag': path 'flags/ready' must be absolute"]
    for args in (["validate"], ["plan"], ["run", "--dry-run"], ["run", "--virtual"]):
        result = invoke(*args, str(flow))
        assert result.exit_code == 2, (args, result.output)
        assert "3 problems" in result.stderr
        for text in expected:
            assert text in result.stderr, (args, text)
    as_json = invoke("validate", "--json", str(flow))
    assert as_json.exit_code == 2
    issues = json.loads(as_json.output)["issues"]
    assert len(issues) == 3
    assert all(text in issue for text, issue in zip(expected, issues, strict=True))
    assert not (tmp_path / "out.txt").exists()


def test_plan_json_gives_levels(tmp_path: Path) -> None:
    result = invoke("plan", "--json", str(copy_files(tmp_path)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "workflow": "copy", "groups": [{"name": "copy", "after": []}],
        "levels": [["copy/first"], ["copy/second"]]}
    text = invoke("plan", str(copy_files(tmp_path)))
    assert "level 1: copy/second" in text.output


def test_schema_prints_a_valid_json_schema() -> None:
    result = invoke("schema", "TransferGroup")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    unknown = invoke("schema", "Nope")
    assert unknown.exit_code == 2 and "no kind 'Nope'" in unknown.stderr


def test_run_copies_the_files(tmp_path: Path) -> None:
    result = invoke("run", "--progress", "none", str(copy_files(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "second.txt").read_text() == "hello\n"
    assert "workflow copy: completed" in result.stderr


def test_run_with_set_and_json(tmp_path: Path) -> None:
    result = invoke("run", "--json", "--set", "LABEL=renamed", str(copy_files(tmp_path)))
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.output)
    assert summary["status"] == "completed"
    assert summary["counts"] == {"completed": 2}
    assert (tmp_path / "out" / "renamed.txt").exists()


def test_a_failing_run_exits_1(tmp_path: Path) -> None:
    result = invoke("run", "--progress", "plain", str(copy_files(tmp_path, "missing.txt")))
    assert result.exit_code == 1
    assert "copy/first: failed" in result.stderr
    assert "copy/second: skipped" in result.stderr
    assert not (tmp_path / "out").exists()


def test_env_selects_the_environment_variables(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x")
    spec = {"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
            "metadata": {"name": "wf"},
            "spec": {"environments": {"prod": {"DEST": str(tmp_path / "prod.txt")},
                                      "test": {"DEST": str(tmp_path / "test.txt")}},
                     "groups": [{"name": "g", "transferGroup": {"spec": {"transfers": [
                         {"name": "t", "source": {"path": str(tmp_path / "in.txt")},
                          "destination": {"path": "${DEST}"}}]}}}]}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert invoke("run", "--progress", "none", "--env", "test", str(path)).exit_code == 0
    assert (tmp_path / "test.txt").exists() and not (tmp_path / "prod.txt").exists()
    unknown = invoke("run", "--env", "qa", str(path))
    assert unknown.exit_code == 2 and "no environment 'qa'" in unknown.stderr


def test_dry_run_exits_1_on_problems_and_0_when_clean(tmp_path: Path) -> None:
    bad = invoke("run", "--dry-run", str(copy_files(tmp_path, "missing.txt")))
    assert bad.exit_code == 1
    assert "does not exist" in bad.output and "1 problem would stop this run" in bad.output
    # The second step reads what the first writes: not a problem before the run.
    assert "is written by copy/first earlier in this run" in bad.output
    good = invoke("run", "--dry-run", "--json", str(copy_files(tmp_path)))
    assert good.exit_code == 0, good.output
    assert json.loads(good.output)["ok"] is True
    assert not (tmp_path / "out").exists()


def test_virtual_run_json(tmp_path: Path) -> None:
    result = invoke("run", "--virtual", "--json", "--assume-rate", "1MB/s",
                    str(copy_files(tmp_path)))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "completed"
    assert report["peak_concurrency"] == 1
    assert [s["step"] for s in report["steps"]] == ["copy/first", "copy/second"]
    assert not (tmp_path / "out").exists()
    both = invoke("run", "--virtual", "--dry-run", str(copy_files(tmp_path)))
    assert both.exit_code == 2


def test_virtual_run_offline_still_stats_local_sources(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello\n")
    path = write_group(tmp_path / "copy.yaml", [
        {"name": "first", "source": {"path": str(tmp_path / "in.txt")},
         "destination": {"path": str(tmp_path / "out" / "first.txt")}},
        {"name": "second", "dependsOn": ["first"], "condition": "${first.bytes} > 0",
         "source": {"path": str(tmp_path / "in.txt")},
         "destination": {"path": str(tmp_path / "out" / "second.txt")}},
    ])
    result = invoke("run", "--virtual", "--offline", "--json", str(path))
    assert result.exit_code == 0, result.output
    steps = {s["step"]: s for s in json.loads(result.output)["steps"]}
    assert (steps["copy/first"]["size"], steps["copy/first"]["size_from"]) == (6, "stat")
    assert steps["copy/second"]["status"] == "completed"
    assert not (tmp_path / "out").exists()


def test_a_malformed_set_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", "--set", "NOEQUALS", str(copy_files(tmp_path)))
    assert result.exit_code == 2
    assert "'NOEQUALS': expected NAME=VALUE" in result.stderr


def test_the_quorus_console_script_validates_and_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "quorus"
    if not script.exists():
        pytest.fail(f"the quorus console script is not installed beside {sys.executable}")
    path = copy_files(tmp_path)
    env = {**os.environ, "NO_COLOR": "1"}
    validated = subprocess.run([str(script), "workflow", "validate", str(path)],
                               capture_output=True, text=True, env=env, timeout=60)
    assert validated.returncode == 0, validated.stderr
    assert "ok: 1 document(s)" in validated.stdout
    ran = subprocess.run([str(script), "workflow", "run", "--json", str(path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["status"] == "completed"
    assert (tmp_path / "out" / "second.txt").read_text() == "hello\n"
