"""Binding ``${...}`` references: the precedence of scopes, variables built from variables,
loops, dates at the start time, environment variables, files under allowed roots, metadata,
tenants and context values, step results only once they exist, values never re-expanded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from quorus.workflow.binding import Binder, NotYet, RunContext, Unbound
from quorus.workflow.documents import load_text
from quorus.workflow.execution import Execution
from quorus.workflow.model import WorkflowDefinition, build_definitions
from quorus.workflow.planner import plan
from quorus.workflow.summary import StepStatus

#: 2024-03-01T23:30:00Z: already 2 March in Tokyo.
STARTED = 1_709_335_800.0

TENANT = """\
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata:
  name: acme-corp
spec:
  variables:
    storage:
      root: /srv/acme
    api:
      endpoint: https://api.acme.example
"""


def workflow(variables: dict[str, Any] | None = None, *, group_variables: dict[str, Any]
             | None = None, environments: dict[str, Any] | None = None,
             timezone: str | None = None, extra: str = "") -> tuple[WorkflowDefinition,
                                                                       dict[str, Any]]:
    spec: dict[str, Any] = {"groups": [{
        "name": "main", "tenant": "acme-corp",
        "variables": group_variables or {},
        "transferGroup": {"spec": {"execution": {"strategy": "sequential"}, "transfers": [
            {"name": "user-data", "source": {"path": "/src/users"},
             "destination": {"path": "/dst/users"}},
            {"name": "report", "source": {"path": "/src/report"},
             "destination": {"path": "/dst/${user-data.result.checksum}"}},
        ]}}}]}
    if variables:
        spec["variables"] = variables
    if environments:
        spec["environments"] = environments
    if timezone:
        spec["timezone"] = timezone
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf", "labels": {"team": "data-ops"}},
                           "spec": spec}, sort_keys=False)
    definitions = build_definitions(load_text(text + "---\n" + TENANT + extra, "wf.yaml"))
    return definitions.select("wf"), dict(definitions.tenants)


def binder(wf: WorkflowDefinition, tenants: dict[str, Any] | None = None,
           **context: Any) -> Binder:
    return Binder(wf, RunContext(started_at=STARTED, tenants=tenants or {}, **context))


def render(b: Binder, text: str) -> Any:
    return b.render(text, group=b.workflow.group("main"))


def test_set_beats_environment_beats_group_beats_workflow_variables() -> None:
    wf, _ = workflow({"A": "workflow", "B": "workflow", "C": "workflow", "D": "workflow"},
                     group_variables={"B": "group", "C": "group", "D": "group"},
                     environments={"prod": {"C": "environment", "D": "environment"}})
    b = binder(wf, environment="prod", sets={"D": "set"})
    assert render(b, "${A} ${B} ${C} ${D}") == "workflow group environment set"
    # Without a group, the group's variables are not seen.
    assert b.render("${B}") == "workflow"


def test_variables_are_templates_that_may_use_other_variables() -> None:
    wf, _ = workflow({"ROOT": "/backup", "DAY": "${date:yyyy-MM-dd}",
                      "TARGET": "${ROOT}/${DAY}", "COUNT": 3, "SAME": "${COUNT}"})
    b = binder(wf)
    assert render(b, "${TARGET}/x") == "/backup/2024-03-01/x"
    assert render(b, "${SAME}") == 3  # a single reference keeps the value's type


def test_variables_referring_to_each_other_in_a_loop_are_reported() -> None:
    wf, _ = workflow({"A": "${B}/a", "B": "x${C}", "C": "${A}"})
    with pytest.raises(Unbound, match="variables refer to each other in a loop: A → B → C → A"):
        render(binder(wf), "${A}")


def test_a_name_defined_nowhere_is_unbound() -> None:
    wf, _ = workflow({"A": "1"}, environments={"prod": {"ONLY_PROD": "x"}})
    with pytest.raises(Unbound, match="variable NOPE is not defined"):
        render(binder(wf), "${NOPE}")
    with pytest.raises(Unbound, match="only in the environments prod: choose one with --env"):
        render(binder(wf), "${ONLY_PROD}")


def test_an_unknown_environment_is_refused_naming_the_choices() -> None:
    wf, _ = workflow({"A": "1"}, environments={"prod": {}, "staging": {}})
    with pytest.raises(Unbound, match="no environment 'test'; the workflow defines prod, "
                                      "staging"):
        binder(wf, environment="test")


def test_dates_are_taken_at_the_start_time_in_the_zone_given() -> None:
    wf, _ = workflow({"A": "1"})
    b = binder(wf)
    assert render(b, "${date:yyyy-MM-dd HH:mm}") == "2024-03-01 23:30"
    assert render(b, "${date:yyyy-MM-dd@Asia/Tokyo}") == "2024-03-02"
    tokyo, _ = workflow({"A": "1"}, timezone="Asia/Tokyo")
    assert render(binder(tokyo), "${date:dd}") == "02"


def test_environment_variables_are_read_and_a_missing_one_is_named() -> None:
    wf, _ = workflow({"TOKEN": "${env:API_TOKEN}"})
    assert render(binder(wf, environ={"API_TOKEN": "s3cret"}), "${TOKEN}") == "s3cret"
    with pytest.raises(Unbound, match="environment variable API_TOKEN is not set"):
        render(binder(wf, environ={}), "${TOKEN}")


def test_values_from_set_and_environment_are_never_expanded() -> None:
    wf, _ = workflow({"A": "from-file", "WRAP": "<${B}>", "TOKEN": "${env:T}"})
    b = binder(wf, sets={"B": "${A}"}, environ={"T": "${A}"})
    assert render(b, "${B}") == "${A}"
    assert render(b, "${WRAP}") == "<${A}>"
    assert render(b, "${TOKEN}") == "${A}"
    assert render(b, "x${env:T}") == "x${A}"


def test_files_under_the_allowed_root_are_read(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token.txt").write_text("tok-123\n")
    wf, _ = workflow({"A": "1"})
    b = binder(wf, base_dir=tmp_path)
    assert render(b, "${file:secrets/token.txt}") == "tok-123"


def test_files_outside_the_allowed_roots_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "key").write_text("private")
    (root / "link").symlink_to(outside / "key")
    wf, _ = workflow({"A": "1"})
    b = binder(wf, base_dir=root)
    for reference in ("${file:../outside/key}", f"${{file:{outside / 'key'}}}",
                      "${file:link}"):
        with pytest.raises(Unbound, match=r"outside the allowed roots .* --allow-file-root"):
            render(b, reference)
    allowed = binder(wf, base_dir=root, file_roots=(outside,))
    assert render(allowed, "${file:link}") == "private"


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    wf, _ = workflow({"A": "1"})
    with pytest.raises(Unbound, match=r"cannot read .*missing\.txt"):
        render(binder(wf, base_dir=tmp_path), "${file:missing.txt}")


def test_metadata_namespace_and_workflow_values() -> None:
    wf, _ = workflow({"A": "1"})
    b = binder(wf, execution_id="ex-7")
    assert render(b, "${metadata.labels.team}") == "data-ops"
    assert render(b, "${workflow.name}/${workflow.execution}") == "wf/ex-7"
    assert render(b, "${namespace.name}") == "default"
    with pytest.raises(Unbound, match="labels has no 'nope' \\(it has team\\)"):
        render(b, "${metadata.labels.nope}")


def test_tenant_values_come_from_the_tenant_configuration() -> None:
    wf, tenants = workflow({"ROOT": "${tenant.storage.root}/backup"})
    b = binder(wf, tenants=tenants)
    assert render(b, "${ROOT}") == "/srv/acme/backup"
    assert render(b, "${tenant.id}") == "acme-corp"
    with pytest.raises(Unbound, match=re.escape("--set tenant.region=VALUE")):
        render(b, "${tenant.region}")


def test_a_tenant_name_gives_that_tenants_variables_and_set_gives_context_values() -> None:
    wf, tenants = workflow({"A": "1"})
    b = binder(wf, tenants=tenants, sets={"partner-corp.api.endpoint": "https://partner"})
    assert render(b, "${acme-corp.api.endpoint}/customers") == \
        "https://api.acme.example/customers"
    assert render(b, "${partner-corp.api.endpoint}") == "https://partner"
    with pytest.raises(Unbound, match=re.escape("--set other-corp.x=VALUE")):
        render(b, "${other-corp.x}")


def test_a_missing_value_of_a_known_tenant_says_how_to_give_it() -> None:
    wf, tenants = workflow({"A": "1"})
    with pytest.raises(Unbound, match=r"acme-corp has no 'dataSharing'.*--set "
                                      r"acme-corp\.dataSharing\.approved=VALUE"):
        render(binder(wf, tenants=tenants), "${acme-corp.dataSharing.approved}")


def test_step_results_exist_only_once_the_step_has_ended() -> None:
    wf, _ = workflow({"A": "1"})
    b = binder(wf)
    with pytest.raises(NotYet, match="known only once it ran"):
        render(b, "${user-data.success}")
    execution = Execution("ex", plan(wf), b.judge, started_at=STARTED)
    group = wf.group("main")
    with pytest.raises(NotYet, match="transfer 'user-data' has not finished"):
        b.render("${user-data.bytes}", group=group, execution=execution)
    for decision in execution.decide(STARTED) + execution.decide(STARTED):
        execution.apply(decision, STARTED)
    execution.apply(execution.decide(STARTED)[0], STARTED)
    execution.finish_step("main/user-data", StepStatus.COMPLETED, STARTED + 2, bytes=42,
                          sha256="ab12")
    assert b.render("${user-data.success}", group=group, execution=execution) is True
    assert b.render("${user-data.bytes}", group=group, execution=execution) == 42
    assert b.render("sum-${user-data.result.checksum}", group=group,
                    execution=execution) == "sum-ab12"
    assert b.render("${user-data.status}", group=group, execution=execution) == "completed"
    with pytest.raises(Unbound, match="a result has success, status"):
        b.render("${user-data.size}", group=group, execution=execution)


def test_error_message_binds_in_actions() -> None:
    wf, _ = workflow({"A": "1"})
    assert binder(wf).render("failed: ${error.message}", error="disk full") == \
        "failed: disk full"


def test_static_bindings_bind_what_can_be_and_name_what_cannot() -> None:
    wf, tenants = workflow({"DAY": "${date:yyyy}", "SECRET": "${env:NOT_SET_ANYWHERE}"},
                           group_variables={"ROOT": "${tenant.storage.root}",
                                            "DEST": "${ROOT}/${missing-corp.path}"})
    bound, problems = binder(wf, tenants=tenants, environ={"HOME_DIR": "/h"}).static_bindings()
    # Only what this machine alone knows is bound here: names are bound where they are used
    # (a tenant's value differs from group to group), dates when the execution starts.
    assert "ROOT" not in bound and "tenant.storage.root" not in bound
    assert "date:yyyy" not in bound
    assert "user-data.result.checksum" not in bound  # results when the step has run
    causes = {ref.text: (where, why) for where, ref, why in problems}
    assert causes["env:NOT_SET_ANYWHERE"][1] == "environment variable NOT_SET_ANYWHERE is not set"
    assert causes["env:NOT_SET_ANYWHERE"][0] == "workflow variables SECRET"
    assert causes["missing-corp.path"][0] == "group main variables.DEST"
    assert "--set missing-corp.path=VALUE" in causes["missing-corp.path"][1]
    assert len(problems) == 2


def test_bound_values_given_by_a_client_win(tmp_path: Path) -> None:
    wf, _ = workflow({"TOKEN": "${env:API_TOKEN}"})
    b = binder(wf, environ={}, bound={"env:API_TOKEN": "from-client"})
    assert render(b, "${TOKEN}") == "from-client"


def test_process_context_reads_this_process_environment(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from quorus.workflow.binding import process_context

    monkeypatch.setenv("QUORUS_TEST_BINDING", "yes")
    wf, _ = workflow({"A": "${env:QUORUS_TEST_BINDING}"})
    context = process_context(wf, started_at=STARTED, execution_id="e", environment=None,
                              sets={"X": "1"})
    assert context.environ["QUORUS_TEST_BINDING"] == os.environ["QUORUS_TEST_BINDING"]
    assert Binder(wf, context).render("${A}${X}") == "yes1"
