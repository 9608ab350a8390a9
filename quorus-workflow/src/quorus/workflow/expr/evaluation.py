"""Evaluating a parsed condition against bound reference values, and checking its types
before anything runs, with one set of typing rules for both.

No value is ever converted: strings are strings, booleans are booleans (a step result such as
``${x.success}`` is bound as a real boolean, ``${x.bytes}`` as a number), and a boolean is not
a number. ``&&`` and ``||`` take booleans and short-circuit; ``!`` takes a boolean.
Comparisons take two numbers (integers and decimals mix) or two strings (ordered by code
point); ``==``/``!=`` also take two booleans, and null on either side (null equals only null).
Arithmetic takes numbers (``/`` divides exactly: ``7 / 2`` is ``3.5``; ``%`` takes the sign of
the divisor), and ``+`` also joins two strings. The result must be a boolean. Anything else
raises :class:`ConditionTypeError` at the operator or operand to blame.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any, TypeAlias
from typing import Literal as Kinds

from quorus.workflow.expr.conditions import (
    And,
    Compare,
    Condition,
    Literal,
    Neg,
    Node,
    Not,
    Or,
    Ref,
    Value,
    to_source,
)
from quorus.workflow.expr.errors import ConditionTypeError, ExpressionError
from quorus.workflow.expr.template import Reference

Kind: TypeAlias = Kinds["boolean", "number", "string", "null"]

_COMPARE_HINT = "compare it with something, as in ${x.bytes} > 0"
_ORDERING = frozenset(("<", "<=", ">", ">="))
# Operands are checked by the type rules before these run.
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
_ARITH: dict[str, Callable[[Any, Any], object]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "%": operator.mod,
}


def kind_of(value: object) -> Kind | None:
    """The condition type of a Python value, or None for a value conditions cannot hold."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return None


def _kind_of_type(python_type: type) -> Kind | None:
    if issubclass(python_type, bool):
        return "boolean"
    if issubclass(python_type, int | float):
        return "number"
    if issubclass(python_type, str):
        return "string"
    if python_type is type(None):
        return "null"
    return None


def compare_problem(op: str, left: Kind, right: Kind) -> str | None:
    """Why ``left op right`` is ill-typed, or None if it is allowed."""
    if op not in _ORDERING:
        if left == right or "null" in (left, right):
            return None
        return (f"'{op}' compares values of the same type, but got a {left} and a {right}: "
                f"convert one side or compare like with like")
    if left == right and left in ("number", "string"):
        return None
    return f"'{op}' needs two numbers or two strings, but got a {left} and a {right}"


def arith_problem(op: str, left: Kind, right: Kind) -> str | None:
    """Why ``left op right`` is ill-typed, or None if it is allowed."""
    if left == right == "number" or (op == "+" and left == right == "string"):
        return None
    wanted = "two numbers or two strings" if op == "+" else "two numbers"
    return f"'{op}' needs {wanted}, but got a {left} and a {right}"


def _describe(node: Node, value: object) -> str:
    """A value as the condition language writes it, with the reference it came from."""
    if value is None or isinstance(value, bool):
        shown = "null" if value is None else "true" if value else "false"
    elif isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, int) and value.bit_length() > 160:
        # Python refuses to print integers of thousands of digits; about 48 digits is enough.
        shown = f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    else:
        shown = repr(value)
    return f"{node.reference} = {shown}" if isinstance(node, Ref) else shown


def evaluate(condition: Condition, lookup: Callable[[Reference], Value]) -> bool:
    """The condition's truth with every reference bound by ``lookup``. Raises
    ConditionTypeError for type errors (see the module's rules), division by zero, overflow or
    a non-boolean result; whatever ``lookup`` raises passes through."""
    text = condition.source

    def fail(message: str, node: Node) -> ConditionTypeError:
        return ConditionTypeError(message, text, node.column)

    def boolean(node: Node, role: str) -> bool:
        value = run(node)
        if not isinstance(value, bool):
            raise fail(f"{role} needs true or false, but got a {kind_of(value)} "
                       f"({_describe(node, value)})", node)
        return value

    def run(node: Node) -> Value:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Ref):
            value = lookup(node.reference)
            if kind_of(value) is None:
                raise fail(f"{node.reference} is a {type(value).__name__}; conditions work on "
                           f"strings, numbers, booleans and null: refer to one of its parts",
                           node)
            return value
        if isinstance(node, Not):
            return not boolean(node.operand, "'!'")
        if isinstance(node, And):
            return boolean(node.left, "'&&'") and boolean(node.right, "'&&'")
        if isinstance(node, Or):
            return boolean(node.left, "'||'") or boolean(node.right, "'||'")
        if isinstance(node, Neg):
            value = run(node.operand)
            if kind_of(value) != "number":
                raise fail(f"'-' needs a number, but got a {kind_of(value)} "
                           f"({_describe(node.operand, value)})", node)
            return -_number(value)
        left, right = run(node.left), run(node.right)
        kinds = (kind_of(left), kind_of(right))
        if isinstance(node, Compare):
            problem = compare_problem(node.op, *_known(kinds))
            if problem is not None:
                raise fail(f"{problem} ({_describe(node.left, left)} {node.op} "
                           f"{_describe(node.right, right)})", node)
            return _COMPARE[node.op](left, right)
        problem = arith_problem(node.op, *_known(kinds))
        if problem is not None:
            raise fail(f"{problem} ({_describe(node.left, left)} {node.op} "
                       f"{_describe(node.right, right)})", node)
        try:
            result = _ARITH[node.op](left, right)
        except ZeroDivisionError:
            what = "" if isinstance(node.right, Literal) else (
                f", {node.right.reference}," if isinstance(node.right, Ref)
                else f", {to_source(node.right)},")
            raise fail(f"division by zero: the right side of '{node.op}'{what} is 0",
                       node) from None
        except OverflowError:
            raise fail(f"the result of '{node.op}' is too large for a number", node) from None
        return result if isinstance(result, str) else _number(result)

    result = run(condition.root)
    if not isinstance(result, bool):
        raise ConditionTypeError(
            f"the condition gives a {kind_of(result)} ({_describe(condition.root, result)}), "
            f"not true or false: {_COMPARE_HINT}", text, 1)
    return result


def _number(value: object) -> int | float:
    # The type rules were checked before; this narrows the type for the checker.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected a number, got {value!r}")


def _known(kinds: tuple[Kind | None, Kind | None]) -> tuple[Kind, Kind]:
    # Values reaching an operator were checked by ``run``; None cannot occur.
    left, right = kinds
    if left is None or right is None:
        raise TypeError("operand of unknown type")
    return left, right


def check_condition(
    condition: Condition, types: Callable[[Reference], type | None]
) -> list[ExpressionError]:
    """Every type error that can be seen without running: from literals, and from the
    references whose type ``types`` knows (``bool`` for ``${x.success}``, ``int`` for
    ``${x.bytes}``; None when unknown, which is never an error). Also a literal zero divisor.
    The errors are ConditionTypeErrors, in the order of the condition's text."""
    text = condition.source
    errors: list[ExpressionError] = []

    def report(message: str, node: Node) -> None:
        errors.append(ConditionTypeError(message, text, node.column))

    def expect(node: Node, wanted: Kind, role: str) -> None:
        kind = infer(node)
        if kind is not None and kind != wanted:
            article = "a number" if wanted == "number" else "true or false"
            report(f"{role} needs {article}, but this is a {kind}", node)

    def infer(node: Node) -> Kind | None:
        if isinstance(node, Literal):
            return kind_of(node.value)
        if isinstance(node, Ref):
            python_type = types(node.reference)
            if python_type is None:
                return None
            kind = _kind_of_type(python_type)
            if kind is None:
                report(f"{node.reference} is a {python_type.__name__}; conditions work on "
                       f"strings, numbers, booleans and null", node)
            return kind
        if isinstance(node, Not | And | Or):
            role = {Not: "'!'", And: "'&&'", Or: "'||'"}[type(node)]
            for operand in (node.operand,) if isinstance(node, Not) else (node.left, node.right):
                expect(operand, "boolean", role)
            return "boolean"
        if isinstance(node, Neg):
            expect(node.operand, "number", "'-'")
            return "number"
        left, right = infer(node.left), infer(node.right)
        if isinstance(node, Compare):
            problem = _partial(node.op, left, right, compare_problem, ordering=True)
            if problem is not None:
                report(problem, node)
            return "boolean"
        problem = _partial(node.op, left, right, arith_problem, ordering=False)
        if problem is not None:
            report(problem, node)
            return None
        if node.op in ("/", "%") and isinstance(node.right, Literal) \
                and kind_of(node.right.value) == "number" and node.right.value == 0:
            report(f"division by zero: the right side of '{node.op}' is 0", node)
        if node.op == "+":
            return left or right
        return "number"

    root = infer(condition.root)
    if root is not None and root != "boolean":
        errors.append(ConditionTypeError(
            f"the condition gives a {root}, not true or false: {_COMPARE_HINT}", text, 1))
    errors.sort(key=lambda error: error.column or 0)
    return errors


def _partial(
    op: str, left: Kind | None, right: Kind | None,
    rule: Callable[[str, Kind, Kind], str | None], *, ordering: bool
) -> str | None:
    """``rule`` when both kinds are known; with one known, only what no other side could fix."""
    if left is not None and right is not None:
        return rule(op, left, right)
    known = left or right
    if known is None:
        return None
    if ordering and op not in _ORDERING:
        return None
    # With the other side unknown, only a kind the operator never accepts is certainly wrong.
    accepted = ("number", "string") if ordering or op == "+" else ("number",)
    if known in accepted:
        return None
    return f"'{op}' does not take a {known}"
