"""Validation of definitions: every problem of every file at once, each at the line and column
of the text concerned, with the document path and a "did you mean" where one is close."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from quorus.workflow.documents import DefinitionError, Issue, load_file, load_text
from quorus.workflow.validation import (
    load_and_validate,
    validate_documents,
    validate_or_raise,
)

DESIGN = Path(__file__).parent / "data" / "design"
DESIGN_FILES = sorted(DESIGN.glob("*.yaml"))

GROUP = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata:
  name: nightly
spec:
  execution:
    strategy: parallel
    maxConcurrency: 2
  transfers:
    - name: users
      source:
        uri: https://api.example/users
      destination:
        path: /backup/users.json
      retry:
        maxAttempts: 3
    - name: orders
      source:
        uri: https://api.example/orders
      destination:
        path: /backup/orders.json
      dependsOn: [users]
"""


def where(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def issues_of(text: str, file: str = "g.yaml") -> list[Issue]:
    return validate_documents(load_text(text, file))


def at(issue: Issue) -> tuple[int, int]:
    return issue.line, issue.column


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: p.name)
def test_design_example_is_valid(path: Path) -> None:
    assert validate_documents(load_file(path)) == []


def test_design_examples_together_in_one_multi_document_file() -> None:
    text = "---\n".join(path.read_text() for path in DESIGN_FILES)
    documents = load_text(text, "all.yaml")
    assert len(documents) == 4
    assert validate_documents(documents) == []
    validate_or_raise(documents)


def test_the_base_group_is_valid() -> None:
    assert issues_of(GROUP) == []


@pytest.mark.parametrize(("typo", "field", "hint"), [
    ("dependson", "dependsOn", "dependsOn"), ("retyr", "retry", "retry"),
    ("Retry", "retry", "retry")])
def test_unknown_field_at_its_key_with_did_you_mean(typo: str, field: str, hint: str) -> None:
    text = GROUP.replace(f"      {field}:", f"      {typo}:", 1)
    [issue] = issues_of(text)
    assert at(issue) == where(text, typo)
    assert issue.path == f"spec.transfers[{1 if field == 'dependsOn' else 0}].{typo}"
    assert issue.message == f"unknown field {typo!r}"
    assert issue.hint == hint
    assert str(issue).endswith(f"unknown field {typo!r} (did you mean {hint!r}?)")


def test_unknown_field_without_a_close_name_lists_the_known_ones() -> None:
    text = GROUP.replace("    maxConcurrency: 2\n", "    maxConcurrency: 2\n    zzz: 1\n")
    [issue] = issues_of(text)
    assert issue.hint is None
    assert issue.message == ("unknown field 'zzz'; known fields here: strategy, maxConcurrency, "
                             "timeout, continueOnError")


def test_misspelt_kind_gets_did_you_mean_and_skips_the_schema() -> None:
    text = GROUP.replace("kind: TransferGroup", "kind: TransferGrop").replace("retry:", "retyr:")
    [issue] = issues_of(text)
    assert at(issue) == (2, 1)
    assert issue.path == "kind"
    assert issue.hint == "TransferGroup"
    assert issue.message.startswith("unknown kind 'TransferGrop': use one of Transfer, ")


@pytest.mark.parametrize(("kind", "hint"), [("transfer-group", "TransferGroup"),
                                            ("Pipeline", None)])
def test_kind_in_another_spelling(kind: str, hint: str | None) -> None:
    [issue] = issues_of(GROUP.replace("kind: TransferGroup", f"kind: {kind}"))
    assert issue.hint == hint


def test_missing_kind_and_api_version() -> None:
    text = "metadata:\n  name: x\nspec: {}\n"
    found = issues_of(text)
    assert [(i.line, i.path, i.message) for i in found] == [
        (1, "", "missing apiVersion: add 'apiVersion: quorus.dev/v1'"),
        (1, "", "missing kind: one of Transfer, TransferGroup, TransferWorkflow, "
                "TenantConfiguration")]


def test_wrong_api_version() -> None:
    [issue] = issues_of(GROUP.replace("quorus.dev/v1", "quorus.dev/v1beta"))
    assert issue.path == "apiVersion"
    assert issue.message == "unknown apiVersion 'quorus.dev/v1beta': definitions use quorus.dev/v1"
    assert issue.hint == "quorus.dev/v1"


def test_user_written_status_is_refused_once() -> None:
    text = GROUP + "status:\n  phase: done\n"
    [issue] = issues_of(text)
    assert at(issue) == where(text, "status")
    assert issue.message == ("status is written by Quorus, not by users: remove it from the "
                             "definition")


@pytest.mark.parametrize(("old", "new", "needle", "message"), [
    ("maxConcurrency: 2", "maxConcurrency: 3x", "maxConcurrency",
     "expected integer, got string '3x'"),
    ("maxAttempts: 3", "maxAttempts: 0", "maxAttempts", "must be at least 1, got 0"),
    ("maxAttempts: 3", "maxAttempts: true", "maxAttempts", "expected integer, got boolean true"),
    ("strategy: parallel", "strategy: [parallel]", "strategy",
     "expected string, got list"),
    ("dependsOn: [users]", "dependsOn: users", "dependsOn", "expected list, got string 'users'"),
    ("    maxConcurrency: 2", "    maxConcurrency: 2\n    timeout: soon", "timeout",
     "expected a duration such as 300s, 500ms, 10m, 2h, 1h30m or 30d, or a number of seconds, "
     "got string 'soon'"),
    ("  name: nightly", "  name: nightly.v2", "name: nightly",
     "expected a name: letters, digits, '-' and '_', starting and ending with a letter or digit, "
     "at most 63 characters (no dots or slashes: names appear in ${name.success} references "
     "and group/transfer step ids), got string 'nightly.v2'"),
])
def test_wrong_values_say_what_was_expected(old: str, new: str, needle: str,
                                            message: str) -> None:
    text = GROUP.replace(old, new, 1)
    [issue] = issues_of(text)
    assert at(issue) == where(text, needle)
    assert issue.message == message


def test_enum_value_gets_did_you_mean() -> None:
    [issue] = issues_of(GROUP.replace("strategy: parallel", "strategy: paralel"))
    assert issue.path == "spec.execution.strategy"
    assert issue.hint == "parallel"


def test_missing_source_is_reported_at_the_transfer() -> None:
    text = GROUP.replace("      source:\n        uri: https://api.example/orders\n", "")
    [issue] = issues_of(text)
    assert at(issue) == where(text, "name: orders")
    assert issue.path == "spec.transfers[1]"
    assert issue.message == "missing required field 'source'"


def test_source_needs_exactly_one_of_uri_and_path() -> None:
    neither = GROUP.replace("        uri: https://api.example/users\n", "        protocol: https\n")
    [issue] = issues_of(neither)
    assert (issue.path, issue.message) == ("spec.transfers[0].source", "needs 'uri' or 'path'")
    both = GROUP.replace("        path: /backup/users.json\n",
                         "        path: /backup/users.json\n        uri: nfs://x/users.json\n")
    [issue] = issues_of(both)
    assert (issue.path, issue.message) == ("spec.transfers[0].destination",
                                           "has both 'uri' and 'path': give only one")


def test_a_source_that_is_not_a_mapping_is_one_issue() -> None:
    text = GROUP.replace("      source:\n        uri: https://api.example/users\n",
                         "      source: https://api.example/users\n")
    [issue] = issues_of(text)
    assert issue.message == "expected mapping, got string 'https://api.example/users'"


def test_cron_trigger_without_schedule_says_why() -> None:
    text = (DESIGN / "multi-tenant-workflow.yaml").read_text()
    text = text.replace('      schedule: "0 2 * * *"  # Daily at 2 AM\n', "")
    [issue] = issues_of(text)
    assert issue.path == "spec.triggers[0]"
    assert issue.message == "missing required field 'schedule' (a cron trigger needs a schedule)"


def test_alternatives_report_the_real_problem() -> None:
    text = (DESIGN / "tenant-config.yaml").read_text().replace("parent: null", "parent: a.b")
    [issue] = issues_of(text)
    assert issue.path == "spec.hierarchy.parent"
    assert issue.message.startswith("expected a name: ")
    nested = (DESIGN / "tenant-config.yaml").read_text() + \
        "  variables:\n    storage:\n      roots: [/a]\n"
    [issue] = issues_of(nested)
    assert issue.path == "spec.variables.storage.roots"
    assert issue.message == "expected string, number, boolean, null or mapping, got list"


def test_several_errors_in_one_file_are_all_reported_in_order() -> None:
    text = (GROUP.replace("retry:", "retyr:").replace("maxConcurrency: 2", "maxConcurrency: 0")
            .replace("dependsOn: [users]", "dependsOn: [orders]"))
    found = issues_of(text)
    assert [(i.line, i.path) for i in found] == [
        (where(text, "maxConcurrency")[0], "spec.execution.maxConcurrency"),
        (where(text, "retyr")[0], "spec.transfers[0].retyr"),
        (where(text, "[orders]")[0], "spec.transfers[1].dependsOn[0]")]
    assert found[2].message == "transfer 'orders' depends on itself"


def test_errors_of_two_files_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GROUP.replace("retry:", "retyr:"))
    (tmp_path / "b.yaml").write_text(GROUP.replace("nightly", "weekly")
                                     .replace("dependsOn:", "dependson:"))
    (tmp_path / "c.yaml").write_text("apiVersion: quorus.dev/v1\nkind: [\n")
    with pytest.raises(DefinitionError) as caught:
        load_and_validate([tmp_path])
    assert [(Path(i.file).name, i.hint) for i in caught.value.issues] == [
        ("a.yaml", "retry"), ("b.yaml", "dependsOn"), ("c.yaml", None)]
    assert str(caught.value).startswith("3 problems in workflow definitions:\n")


def test_load_and_validate_returns_the_documents(tmp_path: Path) -> None:
    (tmp_path / "g.yaml").write_text(GROUP)
    assert [d.name for d in load_and_validate([tmp_path / "g.yaml"])] == ["nightly"]


def test_validate_or_raise_lists_every_issue() -> None:
    documents = load_text(GROUP.replace("retry:", "retyr:") + "status: {}\n", "g.yaml")
    with pytest.raises(DefinitionError) as caught:
        validate_or_raise(documents)
    assert len(caught.value.issues) == 2
    assert "did you mean 'retry'?" in str(caught.value)


def test_same_name_twice_for_one_kind_names_both_places() -> None:
    text = GROUP + "---\n" + GROUP
    [issue] = issues_of(text)
    assert at(issue) == where(text, "name: nightly", 2)
    assert issue.message == "TransferGroup 'nightly' is defined twice: here and at g.yaml:4:3"


def test_same_name_for_different_kinds_is_allowed() -> None:
    transfer = ("apiVersion: quorus.dev/v1\nkind: Transfer\nmetadata:\n  name: nightly\nspec:\n"
                "  source: {uri: https://a/x}\n  destination: {path: /b/x}\n")
    assert issues_of(GROUP + "---\n" + transfer) == []


def test_same_name_across_files() -> None:
    documents = load_text(GROUP, "a.yaml") + load_text(GROUP, "b.yaml")
    [issue] = validate_documents(documents)
    assert (issue.file, issue.message) == (
        "b.yaml", "TransferGroup 'nightly' is defined twice: here and at a.yaml:4:3")


def test_duplicate_transfer_names_in_a_group() -> None:
    text = GROUP.replace("name: orders", "name: users")
    found = issues_of(text)
    assert [(i.line, i.message) for i in found] == [
        (where(text, "name: users", 2)[0],
         "duplicate transfer name 'users': also used by spec.transfers[0] at line 10"),
        (where(text, "[users]")[0], "transfer 'users' depends on itself")]


def test_duplicate_names_in_a_workflow() -> None:
    text = (DESIGN / "multi-tenant-workflow.yaml").read_text()
    text = (text.replace("- name: sync-to-partner", "- name: extract-acme-data")
            .replace("- name: file-watcher", "- name: schedule")
            .replace("- name: partner-import", "- name: customer-export"))
    found = issues_of(text)
    assert [(i.path, i.message.split(":")[0]) for i in found] == [
        ("spec.groups[1].name", "duplicate group name 'extract-acme-data'"),
        ("spec.groups[1].dependsOn[0]", "group 'extract-acme-data' depends on itself"),
        ("spec.triggers[1].name", "duplicate trigger name 'schedule'")]


def test_transfer_names_are_per_group_in_a_workflow() -> None:
    # Step ids are group/transfer, so two groups may each have a transfer of the same name.
    text = (DESIGN / "multi-tenant-workflow.yaml").read_text()
    assert issues_of(text.replace("- name: partner-import", "- name: customer-export")) == []


def test_a_group_depending_on_itself_in_a_workflow() -> None:
    text = (DESIGN / "multi-tenant-workflow.yaml").read_text()
    text = text.replace('dependsOn: ["extract-acme-data"]', 'dependsOn: ["sync-to-partner"]')
    [issue] = issues_of(text)
    assert at(issue) == where(text, '"sync-to-partner"]')
    assert issue.message == "group 'sync-to-partner' depends on itself"


def test_a_large_group_validates() -> None:
    # A smoke test that validation scales; the timing is measured outside the test suite.
    transfers = [{"name": f"t{i}", "source": {"uri": f"https://h/{i}"},
                  "destination": {"path": f"/d/{i}"}, "dependsOn": [f"t{i - 1}"] if i else []}
                 for i in range(5000)]
    transfers[4321]["retry"] = {"maxAttempts": "many"}
    body = {"apiVersion": "quorus.dev/v1", "kind": "TransferGroup", "metadata": {"name": "big"},
            "spec": {"transfers": transfers}}
    text = yaml.safe_dump(body, sort_keys=False)
    [issue] = issues_of(text)
    assert issue.path == "spec.transfers[4321].retry.maxAttempts"
    assert at(issue) == where(text, "maxAttempts")


TRIGGERS = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata:
  name: nightly-export
spec:
  groups:
    - name: only
      transferGroup:
        spec:
          transfers:
            - name: a
              source: {path: /data/in/a.bin}
              destination: {path: /data/out/a.bin}
  triggers:
    - name: at-two
      type: cron
      schedule: "0 2 * * *"
      timezone: Europe/Paris
    - name: ready-flag
      type: fileSystem
      path: /shared/exports/READY
"""


def test_triggers_that_cannot_be_used_are_named_at_their_field() -> None:
    assert issues_of(TRIGGERS) == []
    text = (TRIGGERS.replace('"0 2 * * *"', '"99 2 * * *"')
            .replace("Europe/Paris", "Mars/Olympus")
            .replace("/shared/exports/READY", "shared/exports/READY"))
    found = [(at(i), i.path, i.message) for i in issues_of(text)]
    assert found == [
        ((17, 7), "spec.triggers[0].schedule",
         "trigger 'at-two': schedule '99 2 * * *' is not a cron schedule: its minute field "
         "'99' must be 0-59 (one, a list, a range or a step of them, or '*')"),
        ((18, 7), "spec.triggers[0].timezone",
         "trigger 'at-two': time zone 'Mars/Olympus' is not an IANA zone such as "
         "'Europe/Paris' or 'UTC'"),
        ((21, 7), "spec.triggers[1].path",
         "trigger 'ready-flag': path 'shared/exports/READY' must be absolute (a flag file "
         "every controller can see)"),
    ]
    with pytest.raises(DefinitionError) as raised:
        validate_or_raise(load_text(text, "g.yaml"))
    assert [str(i) for i in raised.value.issues] == [str(i) for i in issues_of(text)]


def test_trigger_checks_cover_inherited_zones_and_days_that_never_come() -> None:
    text = (TRIGGERS.replace("spec:\n", "spec:\n  timezone: Moon/Base\n", 1)
            .replace("      timezone: Europe/Paris\n", "")
            .replace('"0 2 * * *"', '"0 2 31 2 *"'))
    found = [(i.path, i.message) for i in issues_of(text)]
    assert found == [
        ("spec.timezone", "trigger 'at-two': time zone 'Moon/Base' is not an IANA zone such as "
                          "'Europe/Paris' or 'UTC'"),
        ("spec.triggers[0].schedule", "trigger 'at-two': schedule '0 2 31 2 *' never fires: "
                                      "no date matches its day and month"),
    ]


def test_a_trigger_the_schema_refuses_is_reported_once() -> None:
    text = (TRIGGERS.replace('"0 2 * * *"', '"0 0 * * * *"')
            .replace("path: /shared/exports/READY", "path: 5"))
    found = [(i.path, i.message) for i in issues_of(text)]
    assert found == [
        ("spec.triggers[0].schedule", "expected a cron schedule of five fields such as "
                                      "\"0 2 * * *\", got string '0 0 * * * *'"),
        ("spec.triggers[1].path", "expected string, got integer 5"),
    ]


def test_planning_and_registering_refuse_the_same_trigger_issues() -> None:
    from quorus.workflow.controller.prepared import SubmissionError
    from quorus.workflow.controller.prepared import prepare as prepare_submission
    from quorus.workflow.prepare import prepare

    text = TRIGGERS.replace("Europe/Paris", "Mars/Olympus")
    [issue] = issues_of(text)
    with pytest.raises(DefinitionError) as planned:
        prepare(load_text(text, "g.yaml"))
    assert planned.value.issues == (issue,)
    for needs_triggers in (True, False):  # register, and submit to run once
        with pytest.raises(SubmissionError) as refused:
            prepare_submission({"g.yaml": text}, workflow=None, environment=None, sets={},
                               bindings={}, execution_id="", started_at=0.0,
                               needs_triggers=needs_triggers)
        assert refused.value.issues == (issue,)
        assert "trigger 'at-two': time zone 'Mars/Olympus'" in refused.value.message
