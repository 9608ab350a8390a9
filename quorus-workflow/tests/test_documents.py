"""YAML text to documents: values as yaml.safe_load reads them, positions of every key and item,
and the problems refused with the line and column where they are."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.core.errors import QuorusError
from quorus.workflow.documents import (
    MAX_FILE_BYTES,
    DefinitionError,
    Document,
    Issue,
    Position,
    format_path,
    load_file,
    load_paths,
    load_text,
)

DESIGN = Path(__file__).parent / "data" / "design"
DESIGN_FILES = sorted(DESIGN.glob("*.yaml"))


def where(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def problems(text: str, file: str = "f.yaml") -> tuple[Issue, ...]:
    with pytest.raises(DefinitionError) as caught:
        load_text(text, file)
    return caught.value.issues


def test_design_examples_are_four_files() -> None:
    assert [p.name for p in DESIGN_FILES] == [
        "backup-workflow.yaml", "multi-tenant-workflow.yaml", "tenant-config.yaml",
        "transfer-internal-data.yaml"]


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: p.name)
def test_design_example_loads_as_safe_load_reads_it(path: Path) -> None:
    [document] = load_file(path)
    assert document.file == str(path)
    assert document.index == 0
    assert document.body == yaml.safe_load(path.read_text())
    assert document.api_version == "quorus.dev/v1"
    assert document.kind in ("Transfer", "TransferGroup", "TransferWorkflow",
                             "TenantConfiguration")


def test_positions_of_keys_items_and_root() -> None:
    text = "apiVersion: quorus.dev/v1\nkind: TransferGroup\nmetadata:\n  name: daily\nspec:\n" \
           "  transfers:\n    - name: a\n      dependsOn: [b, c]\n"
    [document] = load_text(text)
    assert document.positions[()] == Position(1, 1)
    assert document.positions[("metadata", "name")] == Position(*where(text, "name: daily"))
    assert document.positions[("spec", "transfers", 0)] == Position(*where(text, "name: a"))
    assert document.positions[("spec", "transfers", 0, "dependsOn")] == \
        Position(*where(text, "dependsOn"))
    assert document.positions[("spec", "transfers", 0, "dependsOn", 1)] == \
        Position(*where(text, "c]"))
    assert document.name == "daily"
    assert document.kind == "TransferGroup"


def test_position_of_a_missing_path_is_its_nearest_known_ancestor() -> None:
    text = "kind: Transfer\nspec:\n  source:\n    uri: x\n"
    [document] = load_text(text)
    assert document.position(("spec", "source", "path", 3)) == Position(3, 3)
    assert document.position(("nothing",)) == Position(1, 1)


def test_issue_from_a_document_carries_file_position_and_path() -> None:
    [document] = load_text("spec:\n  transfers:\n    - name: a\n", "g.yaml")
    issue = document.issue(("spec", "transfers", 0, "name"), "bad", "b")
    assert issue == Issue("g.yaml", 3, 7, "spec.transfers[0].name", "bad", "b")


def test_kind_api_version_and_name_are_none_when_absent_or_not_text() -> None:
    [document] = load_text("kind: 3\nmetadata: [x]\n")
    assert (document.kind, document.api_version, document.name) == (None, None, None)


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("spec", "transfers", 1, "dependsOn")) == "spec.transfers[1].dependsOn"
    assert format_path(("spec", "variables", "storage.root")) == "spec.variables['storage.root']"
    assert format_path((0, "a")) == "[0].a"


def test_issue_text_and_order() -> None:
    with_hint = Issue("a.yaml", 3, 5, "spec.retyr", "unknown field 'retyr'", "retry")
    assert str(with_hint) == "a.yaml:3:5: spec.retyr: unknown field 'retyr' (did you mean 'retry'?)"
    assert str(Issue("a.yaml", 1, 1, "", "missing kind")) == "a.yaml:1:1: missing kind"
    assert str(Issue("a.yaml", 0, 0, "", "cannot read")) == "a.yaml: cannot read"
    unordered = [Issue("b.yaml", 1, 1, "", "x"), Issue("a.yaml", 9, 1, "", "x"),
                 Issue("a.yaml", 2, 7, "", "x", "h"), Issue("a.yaml", 2, 3, "", "x")]
    assert [(i.file, i.line, i.column) for i in sorted(unordered)] == [
        ("a.yaml", 2, 3), ("a.yaml", 2, 7), ("a.yaml", 9, 1), ("b.yaml", 1, 1)]


def test_definition_error_lists_every_issue() -> None:
    error = DefinitionError([Issue("b.yaml", 1, 1, "", "two"), Issue("a.yaml", 4, 2, "k", "one"),
                             Issue("a.yaml", 7, 1, "", "three")])
    assert isinstance(error, QuorusError)
    assert str(error).splitlines() == [
        "3 problems in workflow definitions:", "  a.yaml:4:2: k: one", "  a.yaml:7:1: three",
        "  b.yaml:1:1: two"]
    assert str(DefinitionError([Issue("a", 1, 1, "", "x")])).startswith("1 problem in ")


def test_multi_document_file_keeps_order_and_skips_empty_documents() -> None:
    text = "---\nkind: A\n---\n---\nkind: B\n...\n---\n"
    documents = load_text(text)
    assert [(d.index, d.kind) for d in documents] == [(0, "A"), (2, "B")]
    assert documents[1].positions[("kind",)] == Position(5, 1)


def test_anchors_aliases_and_merge_keys() -> None:
    text = ("defaults: &defaults {maxAttempts: 3, backoff: fixed}\n"
            "extra: &extra {backoff: linear, initialDelay: 1s}\n"
            "retry: {<<: [*defaults, *extra], maxAttempts: 5}\n"
            "copy: *defaults\n"
            "list: &l [1, 2]\nagain: *l\n")
    [document] = load_text(text)
    read = yaml.safe_load(text)
    assert {k: v for k, v in document.body.items() if k != "retry"} == \
        {k: v for k, v in read.items() if k != "retry"}
    # The mapping's own keys win, then earlier merge sources over later ones, as the YAML
    # merge key type says (PyYAML 6.0.4 lets the later source win here).
    assert document.body["retry"] == {"maxAttempts": 5, "backoff": "fixed", "initialDelay": "1s"}
    # A merged field points at where it is written: in the anchored mapping.
    assert document.positions[("retry", "initialDelay")] == \
        Position(*where(text, "initialDelay"))
    assert document.positions[("again", 1)] == Position(*where(text, "2]"))


def test_scalars_resolve_like_yaml_1_1_but_dates_stay_text() -> None:
    text = ("a: 10\nb: 0x1f\nc: 1.5e3\nd: .inf\ne: yes\nf: ~\ng: '640'\nh: 2024-01-31\n"
            "i: 2001-12-14t21:59:43.10-05:00\nj: 1_000\n")
    [document] = load_text(text)
    expected = yaml.safe_load(text)
    expected["h"], expected["i"] = "2024-01-31", "2001-12-14t21:59:43.10-05:00"
    assert document.body == expected
    assert document.body["e"] is True
    assert math.isinf(document.body["d"])


def test_duplicate_keys_are_refused_at_the_second_key() -> None:
    text = "spec:\n  retry: {maxAttempts: 3}\n  timeout: 10s\n  retry: {maxAttempts: 9}\n"
    [issue] = problems(text)
    assert (issue.line, issue.column) == where(text, "retry", 2)
    assert issue.path == "spec.retry"
    assert "duplicate key 'retry' (first at line 2)" in issue.message


def test_merge_keys_may_be_overridden_without_being_duplicates() -> None:
    [document] = load_text("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")
    assert document.body["other"] == {"x": 2}


@pytest.mark.parametrize(("key", "reading"), [
    ("1", "integer 1"), ("yes", "boolean true"), ("null", "null null"), ("1.5", "number 1.5")])
def test_keys_that_are_not_text_are_refused(key: str, reading: str) -> None:
    [issue] = problems(f"metadata:\n  {key}: x\n")
    assert (issue.line, issue.column) == (2, 3)
    assert issue.message == f"key {key!r} is read as {reading}, not text: quote it ('{key}')"


def test_collection_keys_are_refused() -> None:
    [issue] = problems("? [a, b]\n: x\n")
    assert issue.message == "a key must be text, not a list"


@pytest.mark.parametrize(("text", "shape"), [
    ("- a\n- b\n", "a list"), ("just text\n", "the value 'just text'")])
def test_a_document_that_is_not_a_mapping_is_refused(text: str, shape: str) -> None:
    [issue] = problems("kind: A\n---\n" + text)
    assert issue.line == 3
    assert issue.message.startswith(f"document 2 is {shape}, not a mapping")


def test_alias_bomb_is_refused_without_being_expanded() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for number in range(1, 10):
        previous, name = chr(ord("a") + number - 1), chr(ord("a") + number)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    [issue] = problems("\n".join(lines) + "\n")
    assert "expands to 4,412,961,516 values" in issue.message
    assert "over the limit of 2,000,000" in issue.message


def test_a_structure_containing_itself_is_refused() -> None:
    [issue] = problems("x: 1\nloop: &l [1, *l]\n")
    assert "contains itself through an alias (anchored at line 2)" in issue.message


def test_unsupported_tags_are_refused_where_written() -> None:
    text = "a: !!binary aGVsbG8=\nb: !Ref other\nc: !!set {x}\n"
    found = problems(text)
    assert [(i.line, i.path) for i in found] == [(1, "a"), (2, "b"), (3, "c")]
    assert "unsupported tag '!Ref'" in found[1].message


def test_nesting_beyond_the_limit_is_refused() -> None:
    [issue] = problems("a: " + "[" * 150 + "]" * 150 + "\n")
    assert "nested more than 100 levels deep" in issue.message


def test_unclosed_quote_is_reported_where_the_quote_opens() -> None:
    text = "metadata:\n  name: x\n  description: \"never closed\nspec: {}\n"
    [issue] = problems(text)
    assert (issue.line, issue.column) == where(text, '"never')
    assert issue.message.startswith("YAML syntax error while scanning a quoted scalar")


def test_bad_indentation_is_reported_on_its_line() -> None:
    text = "spec:\n  source:\n    uri: x\n   path: y\n"
    [issue] = problems(text)
    assert issue.line == 4
    assert issue.message.startswith("YAML syntax error")


def test_control_characters_are_reported_where_they_are() -> None:
    [issue] = problems("a: 1\nb: x\x07y\n")
    assert (issue.line, issue.column) == (2, 5)
    assert "unreadable character" in issue.message


def test_oversized_text_is_refused() -> None:
    [issue] = problems("a: " + "x" * MAX_FILE_BYTES + "\n")
    assert issue.line == 0
    assert "over the 16 MiB limit" in issue.message


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(DefinitionError) as caught:
        load_file(big)
    [issue] = caught.value.issues
    assert issue.file == str(big)
    assert "16.0 MiB, over the 16 MiB limit" in issue.message


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    [issue] = caught.value.issues
    assert (issue.line, issue.column) == (2, 7)
    assert "not UTF-8" in issue.message


def test_load_paths_reads_directories_sorted_and_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.yml").write_text("kind: Two\n")
    (tmp_path / "a.yaml").write_text("kind: One\n---\nkind: OneAgain\n")
    (tmp_path / "notes.txt").write_text("not: read\n")
    single = tmp_path / "single.conf"
    single.write_text("kind: Given\n")
    documents = load_paths([tmp_path, single])
    assert [d.kind for d in documents] == ["One", "OneAgain", "Two", "Given"]
    assert [Path(d.file).name for d in documents] == [
        "a.yaml", "a.yaml", "two.yml", "single.conf"]


def test_load_paths_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    (tmp_path / "dup.yaml").write_text("a: 1\na: 2\n")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(DefinitionError) as caught:
        load_paths([tmp_path, missing])
    assert [(Path(i.file).name, i.line) for i in caught.value.issues] == [
        ("broken.yaml", 2), ("dup.yaml", 2), ("missing.yaml", 0)]
    assert "cannot read" in caught.value.issues[2].message


# Hypothesis: whatever yaml.safe_dump writes reads back as yaml.safe_load reads it, and every
# recorded position belongs to a value of the body and the other way round.

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_scalars = st.none() | st.booleans() | st.integers() | \
    st.floats(allow_nan=False) | _text
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20)
_bodies = st.dictionaries(_text, _values, max_size=5)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> set[tuple[str | int, ...]]:
    found = {prefix}
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= _paths(item, (*prefix, index))
    return found


@settings(max_examples=300, deadline=None)
@given(_bodies, st.booleans())
def test_safe_dump_round_trips_like_safe_load(body: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(body, default_flow_style=flow, allow_unicode=True)
    [document] = load_text(text)
    assert document.body == yaml.safe_load(text)
    assert set(document.positions) == _paths(document.body)


def test_document_is_frozen() -> None:
    [document] = load_text("a: 1\n")
    assert isinstance(document, Document)
    with pytest.raises(AttributeError):
        document.index = 3  # type: ignore[misc]
