"""From documents to a checked plan: the design's examples prepare cleanly, and problems of
every stage and every file are reported together."""

from __future__ import annotations

from pathlib import Path

import pytest
from quorus.core.errors import ConfigurationError
from quorus.workflow.documents import DefinitionError, load_text
from quorus.workflow.prepare import prepare, prepare_paths

DESIGN = Path(__file__).parent / "data" / "design"


@pytest.mark.parametrize(("name", "kind", "steps"), [
    ("backup-workflow.yaml", "TransferGroup", 3),
    ("multi-tenant-workflow.yaml", "TransferWorkflow", 2),
    ("transfer-internal-data.yaml", "Transfer", 1),
])
def test_every_design_example_prepares(name: str, kind: str, steps: int) -> None:
    prepared = prepare_paths([DESIGN / name, DESIGN / "tenant-config.yaml"])
    assert prepared.workflow.kind == kind
    assert len(prepared.plan.steps) == steps
    assert "acme-corp" in prepared.definitions.tenants


def test_the_design_examples_prepare_together_and_the_workflow_is_chosen() -> None:
    prepared = prepare_paths([DESIGN])
    assert prepared.workflow.name == "cross-tenant-data-sync"
    assert [[s.step_id for s in level] for level in prepared.plan.levels] == [
        ["extract-acme-data/customer-export"], ["sync-to-partner/partner-import"]]
    backup = prepare_paths([DESIGN], name="daily-backup-workflow")
    assert [s.step_id for s in backup.plan.steps] == [
        "daily-backup-workflow/user-data", "daily-backup-workflow/order-data",
        "daily-backup-workflow/analytics-data"]


def test_an_unknown_name_lists_the_definitions() -> None:
    with pytest.raises(ConfigurationError, match="no workflow, group or transfer named 'x'; "
                                                 "defined: cross-tenant-data-sync, "
                                                 "daily-backup-workflow, internal-data-sync"):
        prepare_paths([DESIGN], name="x")


FIRST = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata: {name: first}
spec:
  transfers:
    - name: a
      source: {path: "${MISSING_ONE}"}
      destination: {path: /o/a}
      dependsOn: [c]
    - name: b
      source: {path: /in/b}
      destination: {path: /o/b}
    - name: c
      source: {path: /in/c}
      destination: {path: /o/c}
      dependsOn: [a]
"""
SECOND = """\
apiVersion: quorus.dev/v1
kind: Transfer
metadata: {name: second}
spec:
  source: {path: /in}
  destination: {path: "/o/${nope.result.checksum}"}
  condition: '"a" / 2'
"""


def test_problems_in_several_files_are_reported_at_once() -> None:
    documents = load_text(FIRST, "first.yaml") + load_text(SECOND, "second.yaml")
    with pytest.raises(DefinitionError) as caught:
        prepare(documents, name="first")
    files = sorted({i.file for i in caught.value.issues})
    assert files == ["first.yaml", "second.yaml"]
    messages = [i.message for i in caught.value.issues]
    assert any("undefined variable ${MISSING_ONE}" in m for m in messages)
    assert any("refers to the result of 'nope'" in m for m in messages)
    assert any("'/' needs two numbers" in m for m in messages)
    assert any("dependency cycle among transfers of group 'first': a → c → a" in m
               for m in messages)
    assert len(messages) == 4


def test_a_cycle_alone_is_reported() -> None:
    documents = load_text(FIRST.replace("${MISSING_ONE}", "/in/a"), "first.yaml")
    with pytest.raises(DefinitionError, match="dependency cycle among transfers of group "
                                              "'first': a → c → a"):
        prepare(documents)


def test_schema_errors_stop_before_the_other_stages() -> None:
    documents = load_text(FIRST.replace("transfers:", "transfer:"), "first.yaml")
    with pytest.raises(DefinitionError) as caught:
        prepare(documents)
    assert all("transfer" in i.message or "transfers" in i.message
               for i in caught.value.issues)
    assert not any("MISSING_ONE" in i.message for i in caught.value.issues)


def test_a_set_name_makes_a_variable_defined() -> None:
    documents = load_text(FIRST.replace("      dependsOn: [a]\n", ""), "first.yaml")
    prepared = prepare(documents, sets=("MISSING_ONE",))
    assert len(prepared.plan.steps) == 3
