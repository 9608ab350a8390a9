"""Reference and condition checks before anything runs: undefined variables with "did you
mean" at the field's line and column, results of transfers that do not exist, and condition
type errors visible without running."""

from __future__ import annotations

from quorus.workflow.checks import check_references
from quorus.workflow.documents import Issue, load_text

HEAD = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata:
  name: nightly
spec:
  variables:
    BACKUP_ROOT: /backup
  transfers:
    - name: user-data
      source:
        path: /in/users
      destination:
        path: /out/users
"""


def where(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first ``needle`` in ``text``."""
    index = text.index(needle)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def check(extra: str, sets: tuple[str, ...] = ()) -> tuple[str, list[Issue]]:
    text = HEAD + extra
    return text, check_references(load_text(text, "nightly.yaml"), sets)


def test_an_undefined_variable_is_reported_at_its_field_with_a_close_match() -> None:
    text, issues = check("""\
    - name: orders
      source:
        path: /in/orders
      destination:
        path: "${BACKUP_RUT}/orders"
""")
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.line, issue.column) == where(text, 'path: "${BACKUP_RUT}')
    assert issue.path == "spec.transfers[1].destination.path"
    assert issue.message.startswith("undefined variable ${BACKUP_RUT}")
    assert "--set BACKUP_RUT=VALUE" in issue.message
    assert issue.hint == "BACKUP_ROOT"
    assert str(issue).endswith("(did you mean 'BACKUP_ROOT'?)")


def test_a_variable_given_with_set_is_defined() -> None:
    _, issues = check("""\
    - name: orders
      source: {path: "${RUN_DIR}/orders"}
      destination: {path: /out/orders}
""", sets=("RUN_DIR",))
    assert issues == []


def test_variables_of_environments_and_groups_count_as_defined() -> None:
    text = """\
apiVersion: quorus.dev/v1
kind: TransferWorkflow
metadata: {name: wf}
spec:
  environments:
    prod: {HOST: prod.example}
  groups:
    - name: g
      variables: {DIR: /d}
      transferGroup:
        spec:
          variables: {SUB: x}
          transfers:
            - name: t
              source: {uri: "https://${HOST}/${SUB}"}
              destination: {path: "${DIR}/t"}
"""
    assert check_references(load_text(text, "wf.yaml")) == []


def test_a_result_of_an_unknown_transfer_is_reported() -> None:
    text, issues = check("""\
    - name: report
      source: {path: /in/r}
      destination: {path: "/out/${usr-data.result.checksum}"}
""")
    assert len(issues) == 1
    assert "${usr-data.result.checksum} refers to the result of 'usr-data', but no transfer " \
           "or group has that name" in issues[0].message
    assert issues[0].hint == "user-data"
    assert (issues[0].line, issues[0].column) == where(text, 'path: "/out/${usr')


def test_results_of_known_transfers_metadata_and_context_values_pass() -> None:
    _, issues = check("""\
    - name: report
      source: {path: "/in/${metadata.name}/${tenant.id}"}
      destination: {path: "/out/${user-data.result.checksum}/${acme-corp.api.endpoint}"}
      condition: "${user-data.success} && ${user-data.bytes} > 10"
""")
    assert issues == []


def test_condition_type_errors_are_found_without_running() -> None:
    text, issues = check("""\
    - name: a
      source: {path: /in/a}
      destination: {path: /out/a}
      condition: '${user-data.bytes} > "x"'
    - name: b
      source: {path: /in/b}
      destination: {path: /out/b}
      condition: '"a" / 2 == 1'
""")
    assert [i.path for i in issues] == ["spec.transfers[1].condition",
                                        "spec.transfers[2].condition"]
    first, second = issues
    assert "'>' needs two numbers or two strings, but got a number and a string" in first.message
    assert "(at character 20 of the text)" in first.message
    assert (first.line, first.column) == where(text, "condition: '${user-data.bytes}")
    assert "'/' needs two numbers, but got a string and a number" in second.message


def test_malformed_templates_and_conditions_are_reported() -> None:
    _, issues = check("""\
    - name: a
      source: {path: "/in/${unclosed"}
      destination: {path: /out/a}
      condition: "${user-data.success} &&"
""")
    assert [i.path for i in issues] == ["spec.transfers[1].source.path",
                                        "spec.transfers[1].condition"]


def test_documents_that_do_not_run_are_not_checked() -> None:
    text = """\
apiVersion: quorus.dev/v1
kind: TenantConfiguration
metadata: {name: acme}
spec:
  variables: {x: "${NOT_A_VARIABLE_HERE}"}
"""
    assert check_references(load_text(text, "tenant.yaml")) == []
