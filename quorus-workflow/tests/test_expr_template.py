"""``${...}`` templates: parsing into parts, escapes, rendering without re-parsing, errors with
columns, and walking nested documents."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from quorus.core.errors import QuorusError
from quorus.workflow.expr import (
    ExpressionError,
    Reference,
    Template,
    find_references,
    format_path,
    parse_template,
    read_reference,
    render_value,
)


def lookup_from(values: Mapping[str, object]) -> Callable[[Reference], object]:
    def lookup(reference: Reference) -> object:
        return values[reference.argument]

    return lookup


def test_parts_alternate_literal_text_and_references() -> None:
    template = parse_template("cp ${ BACKUP_ROOT }/${date:yyyy-MM-dd@UTC} to ${env:HOME}")
    assert [type(part).__name__ for part in template.parts] == [
        "str", "Reference", "str", "Reference", "str", "Reference"]
    root, date, env = template.references
    assert (root.text, root.kind, root.argument) == (" BACKUP_ROOT ", "name", "BACKUP_ROOT")
    assert (date.kind, date.argument) == ("date", "yyyy-MM-dd@UTC")
    assert (env.kind, env.argument) == ("env", "HOME")
    assert template.source[root.start:root.end] == "${ BACKUP_ROOT }"
    assert template.source[env.start:env.end] == "${env:HOME}"


def test_dotted_names_keep_hyphens_and_expose_root_and_segments() -> None:
    (reference,) = parse_template("${user-data.result.checksum}").references
    assert reference.root == "user-data"
    assert reference.segments == ("user-data", "result", "checksum")
    assert str(reference) == "${user-data.result.checksum}"
    (acme,) = parse_template("${ acme-corp.api.endpoint }").references
    assert acme.argument == "acme-corp.api.endpoint"


def test_functions_have_no_segments_and_are_rooted_at_their_name() -> None:
    (file_ref,) = parse_template("${file: secrets/token.txt }").references
    assert (file_ref.kind, file_ref.argument) == ("file", "secrets/token.txt")
    assert file_ref.segments == ()
    assert file_ref.root == "file"


def test_reference_equality_ignores_where_it_was_written() -> None:
    first, second = parse_template("${a.b} and ${a.b}").references
    assert first == second
    assert first.start != second.start
    assert len({first, second}) == 1


def test_escapes_and_lone_dollars_are_literal() -> None:
    template = parse_template("cost $5, $${HOME} stays, $$ too, end $")
    assert template.is_constant
    assert template.references == ()
    assert template.render(lookup_from({})) == "cost $5, ${HOME} stays, $$ too, end $"


def test_dollar_before_an_escape_is_literal() -> None:
    # "$${" is always the escape, so a literal "$" cannot directly precede a reference.
    assert parse_template("$$${x}").render(lookup_from({})) == "$${x}"
    assert parse_template("price: $${amount}").is_constant


def test_render_converts_values_by_the_documented_rule() -> None:
    template = parse_template("${s}|${t}|${f}|${n}|${i}|${x}")
    values = {"s": "text", "t": True, "f": False, "n": None, "i": 42, "x": 2.5}
    assert template.render(lookup_from(values)) == "text|true|false||42|2.5"


def test_substituted_values_are_never_parsed_again() -> None:
    template = parse_template("${a}-${b}")
    assert template.render(lookup_from({"a": "${b}", "b": "$${c}"})) == "${b}-$${c}"


def test_render_refuses_values_that_have_no_text_form() -> None:
    template = parse_template("files: ${list}")
    with pytest.raises(ExpressionError, match=r"\$\{list\} is a list") as caught:
        template.render(lookup_from({"list": [1, 2]}))
    assert caught.value.column == 8


def test_single_reference_only_for_a_whole_string_reference() -> None:
    assert parse_template("${ x.bytes }").single_reference == Reference(
        " x.bytes ", "name", "x.bytes")
    assert parse_template("${x} ").single_reference is None
    assert parse_template("${x}${y}").single_reference is None
    assert parse_template("plain").single_reference is None


def test_templates_are_parsed_once() -> None:
    assert parse_template("${a}/b") is parse_template("${a}/b")


def test_date_patterns_may_quote_a_closing_brace() -> None:
    template = parse_template("${date:'{'yyyy'}'}!")
    (reference,) = template.references
    assert reference.argument == "'{'yyyy'}'"
    assert template.parts[-1] == "!"


def test_read_reference_reads_one_reference_inside_other_text() -> None:
    text = "${a} && ${ b.success } == true"
    reference = read_reference(text, 8)
    assert (reference.argument, reference.start, reference.end) == ("b.success", 8, 22)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("a ${x", 3, "'${' is never closed"),
        ("${a ${b}}", 1, "references cannot be nested"),
        ("x ${}", 3, "empty reference '${}'"),
        ("${  }", 1, "empty reference"),
        ("${a b}", 4, "' ' cannot appear in a name"),
        ("${a..b}", 5, "empty part in name"),
        ("${a.}", 5, "empty part in name"),
        ("${.a}", 3, "empty part in name"),
        ("${1st}", 3, "must start with a letter or '_'"),
        ("${a.b$c}", 6, "'$' cannot appear in a name"),
        ("${shell:ls}", 3, "unknown function 'shell:'"),
        ("${env:}", 3, "'env:' needs an argument"),
        ("${env:PATH-X}", 11, "'-' cannot appear in an environment variable name"),
        ("${file:  }", 3, "'file:' needs an argument"),
        ("${date:}", 3, "'date:' needs an argument"),
        ("/x/${date:yyyy-MM-ddTHH}", 21, "letter 'T' is reserved"),
        ("${date: yyyy@Europe/Prais}", 14, "did you mean 'Europe/Paris'?"),
        ("${date:'yyyy}", 8, "quote in the date pattern is never closed"),
    ],
)
def test_malformed_templates_say_what_and_where(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template(text)
    assert fragment in caught.value.message
    assert caught.value.column == column
    assert caught.value.text == text


def test_error_shows_the_expression_with_a_caret() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template("${ROOT}/${a b}")
    assert isinstance(caught.value, QuorusError)
    lines = str(caught.value).splitlines()
    assert lines[1:] == ["  ${ROOT}/${a b}", "             ^"]


def test_error_caret_points_into_the_right_line_of_a_multiline_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_template("first line\n\tsecond ${a b}")
    assert str(caught.value).splitlines()[1:] == ["  \tsecond ${a b}", "  \t" + " " * 10 + "^"]


def test_errors_survive_pickling_with_their_location() -> None:
    error = ExpressionError("bad", "${x", 1).located("spec.source")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.message, copy.text, copy.column, copy.where) == (
        ExpressionError, "bad", "${x", 1, "spec.source")
    assert str(copy).startswith("spec.source: bad\n")


DOCUMENT = {
    "metadata": {"name": "nightly"},
    "spec": {
        "variables": {"ROOT": "/data"},
        "transfers": [
            {"name": "a", "source": {"uri": "file://${ROOT}/a"}},
            {"name": "b", "size": 3, "tags": ("${tenant.name}", "x")},
            {"name": "c", "source": {"uri": "sftp://${host}/${date:yyyy}/${ROOT}"}},
        ],
    },
    7: "${numbered}",
}


def test_find_references_reports_the_path_of_each_use() -> None:
    found = [(format_path(path), str(reference)) for path, reference in
             find_references(DOCUMENT)]
    assert found == [
        ("spec.transfers[0].source.uri", "${ROOT}"),
        ("spec.transfers[1].tags[0]", "${tenant.name}"),
        ("spec.transfers[2].source.uri", "${host}"),
        ("spec.transfers[2].source.uri", "${date:yyyy}"),
        ("spec.transfers[2].source.uri", "${ROOT}"),
        ("7", "${numbered}"),
    ]


def test_find_references_raises_or_collects_located_errors() -> None:
    broken = {"spec": {"a": "${", "b": ["ok ${x}", "${y z}"]}}
    with pytest.raises(ExpressionError) as caught:
        find_references(broken)
    assert caught.value.where == "spec.a"
    errors: list[ExpressionError] = []
    found = find_references(broken, errors)
    assert [str(reference) for _, reference in found] == ["${x}"]
    assert [error.where for error in errors] == ["spec.a", "spec.b[1]"]


def test_format_path_quotes_keys_that_are_not_plain_words() -> None:
    assert format_path(("spec", "transfers", 2, "source", "uri")) == "spec.transfers[2].source.uri"
    assert format_path(("labels", "app.kubernetes.io/name")) == "labels['app.kubernetes.io/name']"
    assert format_path(()) == ""


def test_render_value_keeps_the_type_of_whole_string_references() -> None:
    values = {"ROOT": "/data", "tenant.name": "acme", "host": "h", "date:yyyy": "2024",
              "numbered": 7, "size": 3}

    def lookup(reference: Reference) -> object:
        return values[reference.argument if reference.kind == "name" else reference.text]

    rendered = render_value({"n": "${size}", "doc": DOCUMENT, "plain": "$${x}"}, lookup)
    assert isinstance(rendered, dict)
    assert rendered["n"] == 3
    assert rendered["plain"] == "${x}"
    doc: Any = rendered["doc"]
    assert doc["spec"]["transfers"][0]["source"]["uri"] == "file:///data/a"
    assert doc["spec"]["transfers"][1]["tags"] == ("acme", "x")
    assert doc["spec"]["transfers"][2]["source"]["uri"] == "sftp://h/2024//data"
    assert doc[7] == 7
    # The input is left untouched.
    original: Any = DOCUMENT
    assert original["spec"]["transfers"][0]["source"]["uri"] == "file://${ROOT}/a"


def test_render_value_locates_errors() -> None:
    with pytest.raises(ExpressionError) as caught:
        render_value({"spec": [{"uri": "x${a}"}]}, lambda reference: object())
    assert caught.value.where == "spec[0].uri"


def test_a_structure_that_contains_itself_is_refused() -> None:
    loop: list[object] = ["${a}"]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"contains itself at \[1\]"):
        find_references(loop)


def test_template_is_a_frozen_value() -> None:
    template = parse_template("${a}")
    assert template == Template("${a}", (Reference("a", "name", "a"),))
    with pytest.raises(AttributeError):
        template.source = "x"  # type: ignore[misc]


@given(st.one_of(st.text(), st.text(alphabet="$${}:. ab-'@")))
def test_arbitrary_text_parses_or_raises_expression_error(text: str) -> None:
    try:
        template = parse_template(text)
    except ExpressionError as error:
        assert error.column is not None
        assert 1 <= error.column <= len(text) + 1
    else:
        for reference in template.references:
            assert text[reference.start:reference.end] == f"${{{reference.text}}}"


@given(st.text())
def test_escaping_every_opening_gives_back_the_text(text: str) -> None:
    template = parse_template(text.replace("${", "$${"))
    assert template.is_constant
    assert template.render(lookup_from({})) == text


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}(\.[A-Za-z_][A-Za-z0-9_-]{0,8}){0,2}",
                      fullmatch=True)


# Text right before a reference cannot end with "$": "$${" is always the escape.
texts = st.text(alphabet="ab ${}/\\").filter(lambda text: not text.endswith("$"))


@given(st.lists(st.tuples(texts, names, st.text()), max_size=5))
def test_rendering_inserts_values_verbatim(pieces: list[tuple[str, str, str]]) -> None:
    # Literal text with any "${" escaped, then a reference whose value is arbitrary text.
    source = "".join(text.replace("${", "$${") + f"${{{name}}}" for text, name, _ in pieces)
    values = {name: value for _, name, value in pieces}
    expected = "".join(text + values[name] for text, name, _ in pieces)
    assert parse_template(source).render(lookup_from(values)) == expected
