"""The condition language: parsing and precedence, printing back, evaluation against an
independent interpreter, static type checks, bounded depth, and errors with columns."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from quorus.workflow.expr import (
    MAX_DEPTH,
    And,
    Arith,
    Compare,
    ConditionTypeError,
    ExpressionError,
    Literal,
    Neg,
    Node,
    Not,
    Or,
    Ref,
    Reference,
    Value,
    check_condition,
    evaluate,
    parse_condition,
    read_reference,
    to_source,
)


def ref(text: str) -> Ref:
    return Ref(read_reference(f"${{{text}}}", 0))


def values(**bound: Value) -> Callable[[Reference], Value]:
    def lookup(reference: Reference) -> Value:
        return bound[reference.argument.replace(".", "_").replace("-", "_")]

    return lookup


def root(text: str) -> Node:
    return parse_condition(text).root


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("${a} || ${b} && ${c}", Or(ref("a"), And(ref("b"), ref("c")))),
        ("${a} && ${b} || ${c}", Or(And(ref("a"), ref("b")), ref("c"))),
        ("!${a} && ${b}", And(Not(ref("a")), ref("b"))),
        ("!${a} == true", Not(Compare("==", ref("a"), Literal(True)))),
        ("!!${a}", Not(Not(ref("a")))),
        ("1 + 2 * 3 == 7", Compare("==", Arith("+", Literal(1), Arith("*", Literal(2),
                                                                      Literal(3))), Literal(7))),
        ("1 - 2 - 3 < 0", Compare("<", Arith("-", Arith("-", Literal(1), Literal(2)),
                                             Literal(3)), Literal(0))),
        ("-${n} * 2 >= --1", Compare(">=", Arith("*", Neg(ref("n")), Literal(2)),
                                     Neg(Neg(Literal(1))))),
        ("(${a} || ${b}) && ${c}", And(Or(ref("a"), ref("b")), ref("c"))),
        ("${s} != null", Compare("!=", ref("s"), Literal(None))),
        ("'it\\'s' == \"tab\\there\\n\\\\\"", Compare("==", Literal("it's"),
                                                   Literal("tab\there\n\\"))),
        ("1.5 <= 2e3 % 7", Compare("<=", Literal(1.5), Arith("%", Literal(2000.0), Literal(7)))),
        ("${ user-data.success }", ref(" user-data.success ")),
    ],
)
def test_precedence_and_associativity(text: str, tree: Node) -> None:
    assert root(text) == tree


def test_literals_of_different_types_are_different() -> None:
    assert Literal(1) != Literal(True)
    assert Literal(1) != Literal(1.0)
    assert Literal(0) != Literal(False)
    assert len({Literal(1), Literal(True), Literal(1.0)}) == 3


def test_references_are_listed_in_order_with_repeats() -> None:
    condition = parse_condition("${a.success} && ${env:CI} == 'yes' || ${a.success}")
    assert [str(reference) for reference in condition.references] == [
        "${a.success}", "${env:CI}", "${a.success}"]
    assert condition.references[1].kind == "env"
    assert str(condition) == condition.source


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty condition"),
        ("   ", 1, "empty condition"),
        ("1 < 2 < 3", 7, "comparisons cannot be chained"),
        ("1 == 2 != true", 8, "comparisons cannot be chained"),
        ("1 ==", 5, "found the end of the condition"),
        ("(1 == 1", 8, "'(' at column 1 is not closed"),
        ("(1 == 1 true", 9, "expected ')' but found 'true'"),
        ("1 == 1)", 7, "')' has no matching '('"),
        ("true true", 6, "after a complete condition"),
        ("x == 1", 1, "write a reference as ${x}"),
        ("${a} and ${b}", 6, "write '&&'"),
        ("${a} = 1", 6, "write '==' to compare"),
        ("${a} & ${b}", 6, "write '&&'"),
        ("True", 1, "write 'true'"),
        ("'open", 1, "string opened here is never closed"),
        ('"a\\q" == "b"', 3, "unknown escape"),
        ("1 == !true", 6, "'!' cannot stand inside a comparison"),
        ("1 + !true == 2", 5, "write (!x)"),
        ("-!true", 2, "'!' cannot stand"),
        ("${a b} == 1", 4, "cannot appear in a name"),
        ("${a} == ${", 9, "'${' is never closed"),
        ("1 == .5", 6, "unexpected '.'"),
        ("1 ^ 2", 3, "unexpected '^'"),
        ("1e999 > 1", 1, "too large"),
        ("9" * 5000 + " > 1", 1, "too long"),
    ],
)
def test_syntax_errors_say_what_and_where(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_condition(text)
    assert not isinstance(caught.value, ConditionTypeError)
    assert fragment in caught.value.message
    assert caught.value.column == column


def test_nesting_is_bounded_without_exhausting_the_stack() -> None:
    deepest = "(" * (MAX_DEPTH - 1) + "true" + ")" * (MAX_DEPTH - 1)
    assert root(deepest) == Literal(True)
    for text in ("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH,
                 "(" * 5000 + "true" + ")" * 4000,
                 "!" * 9000 + "true",
                 "-" * 9000 + "1 > 0",
                 "1 + " * 2000 + "1 > 0",
                 "${a} == " + "(" * 3000):
        with pytest.raises(ExpressionError, match="levels deep"):
            parse_condition(text)


def test_length_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="more than the 10000 allowed"):
        parse_condition("true && " * 1500 + "true")


# --- printing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("((1 + 2)) * 3 == 9", "(1 + 2) * 3 == 9"),
        ("!(${a} && ${b})", "!(${a} && ${b})"),
        ("-(1 + 2) < 0", "-(1 + 2) < 0"),
        ("(1 < 2) == (true)", "(1 < 2) == true"),
        ("1 - (2 - 3) > 1 - 2 - 3", "1 - (2 - 3) > 1 - 2 - 3"),
        ("(!${a}) == false", "(!${a}) == false"),
        ("${a} || (${b} || ${c})", "${a} || (${b} || ${c})"),
        ("'say \"hi\"' != \"\"", '"say \\"hi\\"" != ""'),
    ],
)
def test_to_source_uses_only_the_parentheses_needed(text: str, printed: str) -> None:
    assert to_source(root(text)) == printed
    assert root(printed) == root(text)


def test_to_source_refuses_numbers_the_language_cannot_write() -> None:
    for number in (-1, -0.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="cannot be written"):
            to_source(Literal(number))


# --- evaluation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${a_success} || ${b_success} && false", True),
        ("${x.bytes} / 4 == 2.5", True),
        ("7 % 3 == 1 && -7 % 3 == 2", True),
        ("${x.bytes} == 10.0", True),
        ("${name} + '-' + 'corp' == 'acme-corp'", True),
        ("'B' < 'a' && 'abc' < 'abd'", True),
        ("${missing} == null && null == null", True),
        ("${missing} != 0 && ${name} != null", True),
        ("true != false", True),
        ("${x.duration} >= 1.5", False),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    lookup = values(a_success=True, b_success=False, x_bytes=10, name="acme", missing=None,
                    x_duration=1.25)
    assert evaluate(parse_condition(text), lookup) is expected


def test_and_or_short_circuit() -> None:
    seen: list[str] = []

    def lookup(reference: Reference) -> Value:
        seen.append(reference.argument)
        return 5

    assert evaluate(parse_condition("false && ${x.bytes} / 0 > 1"), lookup) is False
    assert evaluate(parse_condition("true || ${x.bytes} == 'five'"), lookup) is True
    assert seen == []
    with pytest.raises(ConditionTypeError, match="division by zero") as caught:
        evaluate(parse_condition("true && ${x.bytes} / 0 > 1"), lookup)
    assert caught.value.column == 20
    assert seen == ["x.bytes"]


@pytest.mark.parametrize(
    ("text", "column", "fragments"),
    [
        ("${x.bytes} > 'x'", 12, ["two numbers or two strings", "number and a string",
                                  '${x.bytes} = 10 > "x"']),
        ("'a' / 2 > 1", 5, ["'/' needs two numbers", "string and a number"]),
        ("true == 1", 6, ["same type", "boolean and a number"]),
        ("true < false", 6, ["two numbers or two strings", "boolean and a boolean"]),
        ("${missing} < 1", 12, ["null and a number", "${missing} = null"]),
        ("1 + true == 2", 3, ["'+' needs two numbers or two strings", "number and a boolean"]),
        ("-'a' == 1", 1, ["'-' needs a number", "string"]),
        ("${x.bytes} && true", 1, ["'&&' needs true or false", "${x.bytes} = 10"]),
        ("false || 'yes'", 10, ["'||' needs true or false", "string"]),
        ("!${name}", 2, ["'!' needs true or false", '${name} = "acme"']),
        ("${x.bytes} % (5 - 5) == 0", 12, ["division by zero", "5 - 5"]),
        ("${x.bytes} + 1", 1, ["the condition gives a number (11)"]),
        ("${name}", 1, ["the condition gives a string"]),
        ("${listed} == 1", 1, ["${listed} is a list"]),
    ],
)
def test_type_errors_name_both_types_and_the_column(
    text: str, column: int, fragments: list[str]
) -> None:
    lookup = values(x_bytes=10, missing=None, name="acme", listed=[1])  # type: ignore[arg-type]
    with pytest.raises(ConditionTypeError) as caught:
        evaluate(parse_condition(text), lookup)
    for fragment in fragments:
        assert fragment in caught.value.message
    assert caught.value.column == column


def test_strings_are_never_converted_to_booleans_or_numbers() -> None:
    lookup = values(flag="true", count="3")
    with pytest.raises(ConditionTypeError):
        evaluate(parse_condition("${flag} && true"), lookup)
    with pytest.raises(ConditionTypeError):
        evaluate(parse_condition("${count} > 2"), lookup)
    assert evaluate(parse_condition("${flag} == 'true'"), lookup) is True


def test_a_huge_number_in_an_error_is_shortened() -> None:
    big = "9" * 4000
    with pytest.raises(ConditionTypeError, match="digits") as caught:
        evaluate(parse_condition(f"{big} * {big} + 'a' == 'b'"), values())
    assert caught.value.column == 8005


def test_overflow_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConditionTypeError, match="too large"):
        evaluate(parse_condition("1" + "0" * 400 + " / 3 > 1"), values())


# --- static checks -------------------------------------------------------------------------

TYPES: dict[str, type] = {"a.success": bool, "a.bytes": int, "a.duration": float,
                          "a.status": str, "a.result": dict}


def check(text: str) -> list[tuple[int | None, str]]:
    errors = check_condition(parse_condition(text), lambda reference: TYPES.get(reference.argument))
    assert all(isinstance(error, ConditionTypeError) for error in errors)
    return [(error.column, error.message) for error in errors]


def test_static_check_reports_what_is_known_to_be_wrong() -> None:
    assert check("${a.bytes} > 'x'") == [
        (12, "'>' needs two numbers or two strings, but got a number and a string")]
    assert check("'a' / 2 > 1") == [(5, "'/' needs two numbers, but got a string and a number")]
    assert check("${a.success} && ${a.bytes} / 0 > 1 || ${a.status}") == [
        (28, "division by zero: the right side of '/' is 0"),
        (39, "'||' needs true or false, but this is a string"),
    ]
    assert check("${a.bytes} + ${a.duration}") == [
        (1, "the condition gives a number, not true or false: compare it with something, as in "
            "${x.bytes} > 0")]
    assert check("${a.result} == 1")[0][1].startswith("${a.result} is a dict")


def test_static_check_accepts_unknown_types_and_only_flags_certain_errors() -> None:
    assert check("${context.x} > 3 && ${other} == 'y' && ${u} + ${v} == 2") == []
    assert check("${a.success} && ${a.bytes} > 0 && ${a.status} == 'done'") == []
    assert check("${a.status} == null && ${x} != null") == []
    assert check("${u} < true") == [(6, "'<' does not take a boolean")]
    assert check("${u} - 'a' > 0") == [(6, "'-' does not take a string")]
    assert check("${u} + null == 1") == [(6, "'+' does not take a null")]


# --- properties ----------------------------------------------------------------------------

CMP_OPS = ("==", "!=", "<", "<=", ">", ">=")
EQ_OPS = ("==", "!=")
ORDER_OPS = ("<", "<=", ">", ">=")
ARITH_OPS = ("+", "-", "*", "/", "%")
NAMES = {"number": ("n0", "n1"), "string": ("s0", "s1"), "boolean": ("b0", "b1"),
         "null": ("z0",)}
NAME_TYPES: dict[str, type] = {"n": float, "s": str, "b": bool, "z": type(None)}

numbers = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False))
number_expr = st.recursive(
    st.one_of(numbers.map(Literal), st.sampled_from(NAMES["number"]).map(ref)),
    lambda inner: st.one_of(st.builds(Neg, inner),
                            st.builds(Arith, st.sampled_from(ARITH_OPS), inner, inner)),
    max_leaves=6)
string_expr = st.recursive(
    st.one_of(st.text(max_size=4).map(Literal), st.sampled_from(NAMES["string"]).map(ref)),
    lambda inner: st.builds(Arith, st.just("+"), inner, inner), max_leaves=3)
null_leaf = st.one_of(st.just(Literal(None)), st.just(ref("z0")))


def _bool_leaves(any_expr: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.booleans().map(Literal),
        st.sampled_from(NAMES["boolean"]).map(ref),
        st.builds(Compare, st.sampled_from(CMP_OPS), number_expr, number_expr),
        st.builds(Compare, st.sampled_from(CMP_OPS), string_expr, string_expr),
        st.builds(Compare, st.sampled_from(EQ_OPS), null_leaf, any_expr),
        st.builds(Compare, st.sampled_from(EQ_OPS), any_expr, null_leaf),
    )


boolean_expr = st.recursive(
    _bool_leaves(st.one_of(number_expr, string_expr, null_leaf)),
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(And, inner, inner), st.builds(Or, inner, inner),
        st.builds(Compare, st.sampled_from(EQ_OPS), inner, inner)),
    max_leaves=8)
bindings = st.fixed_dictionaries({
    "n0": st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
    "n1": st.integers(-3, 3),
    "s0": st.text(max_size=4), "s1": st.sampled_from(["", "a", "b"]),
    "b0": st.booleans(), "b1": st.booleans(), "z0": st.none(),
})

_PY_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
_PY_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "%": operator.mod}


def interpret(node: Node, bound: dict[str, Value]) -> Any:
    """The reference semantics for well-typed trees: Python's own operators, short-circuit
    and/or, and ZeroDivisionError for division by zero."""
    match node:
        case Literal(value=value):
            return value
        case Ref(reference=reference):
            return bound[reference.argument]
        case Not(operand=operand):
            return not interpret(operand, bound)
        case Neg(operand=operand):
            return -interpret(operand, bound)
        case And(left=left, right=right):
            return interpret(left, bound) and interpret(right, bound)
        case Or(left=left, right=right):
            return interpret(left, bound) or interpret(right, bound)
        case Compare(op=op, left=left, right=right):
            return _PY_COMPARE[op](interpret(left, bound), interpret(right, bound))
        case Arith(op=op, left=left, right=right):
            return _PY_ARITH[op](interpret(left, bound), interpret(right, bound))
    raise AssertionError(node)


def known_types(reference: Reference) -> type | None:
    return NAME_TYPES.get(reference.argument[0])


@given(boolean_expr, bindings)
def test_evaluate_agrees_with_the_reference_interpreter(
    tree: Node, bound: dict[str, Value]
) -> None:
    condition = parse_condition(to_source(tree))
    try:
        expected = interpret(tree, bound)
    except ZeroDivisionError:
        with pytest.raises(ConditionTypeError, match="division by zero"):
            evaluate(condition, lambda reference: bound[reference.argument])
        return
    assert evaluate(condition, lambda reference: bound[reference.argument]) is expected
    # Well-typed trees have no static errors except dividing by a literal zero.
    for error in check_condition(condition, known_types):
        assert "division by zero" in error.message


@st.composite
def ill_typed(draw: st.DrawFn) -> Node:
    """A tree whose first evaluated operator has operands it refuses, wrapped in operators
    that always evaluate it first, or a tree whose result is not a boolean."""
    boolean_core = st.one_of(
        st.builds(Compare, st.sampled_from(ORDER_OPS), boolean_expr, number_expr),
        st.builds(Compare, st.sampled_from(CMP_OPS), number_expr, string_expr),
        st.builds(Compare, st.sampled_from(CMP_OPS), string_expr, boolean_expr),
        st.builds(Compare, st.sampled_from(ORDER_OPS), null_leaf, number_expr),
        st.builds(Not, st.one_of(number_expr, string_expr, null_leaf)),
        st.builds(And, number_expr, boolean_expr),
        st.builds(Or, string_expr, boolean_expr),
    )
    number_core = st.one_of(
        st.builds(Arith, st.sampled_from(ARITH_OPS), string_expr, number_expr),
        st.builds(Arith, st.sampled_from(ARITH_OPS[1:]), string_expr, string_expr),
        st.builds(Arith, st.sampled_from(ARITH_OPS), boolean_expr, number_expr),
        st.builds(Arith, st.sampled_from(ARITH_OPS), number_expr, null_leaf),
        st.builds(Neg, st.one_of(string_expr, boolean_expr)),
    )
    kind = draw(st.sampled_from(["boolean", "number", "result"]))
    if kind == "result":
        result: Node = draw(st.one_of(number_expr, string_expr, null_leaf))
        return result
    node: Node = draw(boolean_core if kind == "boolean" else number_core)
    for _ in range(draw(st.integers(0, 3))):
        if kind == "boolean":
            wrap = draw(st.sampled_from(["and", "or", "not", "eq"]))
            other = draw(boolean_expr)
            wrapped: dict[str, Node] = {"and": And(node, other), "or": Or(node, other),
                                        "not": Not(node), "eq": Compare("==", node, other)}
            node = wrapped[wrap]
        else:
            node = draw(st.one_of(
                st.builds(Arith, st.sampled_from(ARITH_OPS), st.just(node), number_expr),
                st.builds(Neg, st.just(node))))
    if kind == "number":
        node = Compare(draw(st.sampled_from(CMP_OPS)), node, draw(number_expr))
    return node


@given(ill_typed(), bindings)
def test_ill_typed_conditions_raise_and_never_return(tree: Node, bound: dict[str, Value]) -> None:
    condition = parse_condition(to_source(tree))
    with pytest.raises(ConditionTypeError) as caught:
        evaluate(condition, lambda reference: bound[reference.argument])
    assert caught.value.column is not None
    assert condition.source[caught.value.column - 1] != " "
    assert check_condition(condition, known_types) != []


def depth(node: Node) -> int:
    children = [getattr(node, name) for name in ("operand", "left", "right") if hasattr(node, name)]
    return 1 + max((depth(child) for child in children), default=0)


reference_texts = st.sampled_from(
    ["a", " user-data.success ", "acme-corp.api.endpoint", "env:HOME", "file: x/y z.txt",
     "date:yyyy-MM-dd'T'HH@Europe/Paris", "date:'}'"])
any_leaf = st.one_of(
    st.none().map(Literal), st.booleans().map(Literal), st.integers(min_value=0).map(Literal),
    st.floats(min_value=0, allow_infinity=False).map(Literal), st.text().map(Literal),
    reference_texts.map(ref))
any_tree = st.recursive(
    any_leaf,
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(Neg, inner), st.builds(And, inner, inner),
        st.builds(Or, inner, inner),
        st.builds(Compare, st.sampled_from(CMP_OPS), inner, inner),
        st.builds(Arith, st.sampled_from(ARITH_OPS), inner, inner)),
    max_leaves=12)


@given(any_tree)
def test_printed_trees_parse_back_to_the_same_tree(tree: Node) -> None:
    assume(depth(tree) <= MAX_DEPTH)
    assert parse_condition(to_source(tree)).root == tree


condition_texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="${}()!&|=<>+-*/%\"'\\ .0123456789e_:abnrtu", max_size=40),
    st.lists(st.sampled_from(["(", ")", "!", "-", "1", "2.5", "'s'", "${a}", "true", "null",
                              "&&", "||", "==", "<", "+", "/", "%", " "]), max_size=30).map(
        "".join),
)


@given(condition_texts, st.sampled_from([0, 1, 2.5, "s", "", True, False, None]))
def test_any_text_parses_or_raises_only_expression_errors(text: str, bound: Value) -> None:
    try:
        condition = parse_condition(text)
    except ExpressionError as error:
        assert error.column is None or 1 <= error.column <= len(text) + 1
        return
    try:
        result = evaluate(condition, lambda reference: bound)
    except ConditionTypeError:
        pass
    else:
        assert isinstance(result, bool)
    assert parse_condition(to_source(condition.root)).root == condition.root
