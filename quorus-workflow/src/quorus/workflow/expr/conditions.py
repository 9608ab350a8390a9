"""The condition language: its syntax tree, a parser (tokenizer and precedence climbing, no
``eval``) and the printer back to source.

From loosest to tightest: ``||``, ``&&``, ``!``, one comparison (``==`` ``!=`` ``<`` ``<=``
``>`` ``>=``, not chainable), ``+`` ``-``, ``*`` ``/`` ``%``, unary ``-``. Operands are
strings (single or double quotes, backslash escapes), numbers, ``true``, ``false``, ``null``
and ``${...}`` references, which are bound as values, never spliced in as text. Nesting is
bounded (:data:`MAX_DEPTH`) and so is the length (:data:`MAX_LENGTH`), so no condition can
exhaust the interpreter's stack. Evaluation lives in :mod:`quorus.workflow.expr.evaluation`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import TypeAlias

from quorus.workflow.expr.errors import ExpressionError
from quorus.workflow.expr.lexer import COMPARISONS, Token, tokenize
from quorus.workflow.expr.template import Reference

Value: TypeAlias = str | int | float | bool | None
CompareOp: TypeAlias = typing.Literal["==", "!=", "<", "<=", ">", ">="]
ArithOp: TypeAlias = typing.Literal["+", "-", "*", "/", "%"]

MAX_DEPTH = 100
MAX_LENGTH = 10_000


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    """A string, number, ``true``/``false`` or ``null`` written in the condition. Equality
    also compares the Python type, so ``1``, ``1.0`` and ``true`` are different literals."""

    value: Value
    column: int = 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Literal) and type(self.value) is type(other.value)
                and self.value == other.value)

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


@dataclass(frozen=True, slots=True)
class Ref:
    """A ``${...}`` operand; its value comes from the lookup when evaluated."""

    reference: Reference

    @property
    def column(self) -> int:
        return self.reference.start + 1


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Arith:
    op: ArithOp
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


Node: TypeAlias = Literal | Ref | Not | Neg | And | Or | Compare | Arith
"""A node of the syntax tree. ``column`` (1-based, in the condition's source) is where an
operator or operand was written; it is used in errors and takes no part in equality."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: ``source`` as written, the tree, and every reference in order of
    appearance (repeats included)."""

    source: str
    root: Node
    references: tuple[Reference, ...]

    def __str__(self) -> str:
        return self.source


# Binding powers, loosest first; prefix '!' binds at _NOT and '-' at _UNARY.
_OR, _AND, _NOT, _CMP, _SUM, _PRODUCT, _UNARY = 1, 2, 3, 4, 5, 6, 7
_ATOM = 8
_BINARY: dict[str, int] = {
    "||": _OR, "&&": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "%": _PRODUCT,
    **dict.fromkeys(COMPARISONS, _CMP),
}


def parse_condition(text: str) -> Condition:
    """Parse a condition; ExpressionError with the column for anything malformed, including
    conditions longer than :data:`MAX_LENGTH` or nested deeper than :data:`MAX_DEPTH`."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"condition is {len(text)} characters long, more than the {MAX_LENGTH} allowed: "
            f"split it, or compute part of it into a variable", text[:200] + "…", None)
    tokens = tokenize(text)
    if tokens[0].kind == "end":
        raise ExpressionError(
            "empty condition: write one such as ${extract.success} && ${extract.bytes} > 0",
            text, 1)
    parser = _Parser(text, tokens)
    root, _ = parser.expression(_OR, 0)
    end = parser.peek()
    if end.kind != "end":
        message = ("')' has no matching '('" if end.text == ")" else
                   f"unexpected {end.text!r} after a complete condition: join conditions "
                   f"with && or ||")
        raise ExpressionError(message, text, end.column)
    references = tuple(token.reference for token in tokens if token.reference is not None)
    return Condition(text, root, references)


class _Parser:
    """Precedence climbing over the tokens; each method returns a node and its depth."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token:
        return self.tokens[self.position]

    def take(self) -> Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self, min_power: int, nesting: int) -> tuple[Node, int]:
        left, depth = self.prefix(min_power, nesting)
        while True:
            token = self.peek()
            power = _BINARY.get(token.text) if token.kind == "op" else None
            if power is None or power < min_power:
                return left, depth
            self.take()
            # Left-associative: the right side binds one level tighter. Comparisons are not
            # associative at all; a second one is refused after the loop or by the caller.
            right, right_depth = self.expression(power + 1, nesting + 1)
            depth = self.check_depth(max(depth, right_depth) + 1, token)
            left = _binary(token, left, right)
            if power == _CMP and self.peek().text in COMPARISONS:
                extra = self.peek()
                raise ExpressionError(
                    f"comparisons cannot be chained ({token.text!r} then {extra.text!r}): join "
                    f"them with &&, as in 1 < x && x < 3", self.text, extra.column)

    def prefix(self, min_power: int, nesting: int) -> tuple[Node, int]:
        token = self.take()
        self.check_depth(nesting + 1, token)
        if token.text == "!" and token.kind == "op":
            if min_power > _NOT:
                raise ExpressionError(
                    "'!' cannot stand inside a comparison or arithmetic without parentheses: "
                    "write (!x)", self.text, token.column)
            operand, depth = self.expression(_NOT, nesting + 1)
            return Not(operand, token.column), self.check_depth(depth + 1, token)
        if token.text == "-" and token.kind == "op":
            operand, depth = self.expression(_UNARY, nesting + 1)
            return Neg(operand, token.column), self.check_depth(depth + 1, token)
        if token.text == "(" and token.kind == "op":
            inner, depth = self.expression(_OR, nesting + 1)
            closing = self.take()
            if closing.text != ")" or closing.kind != "op":
                found = "the end" if closing.kind == "end" else repr(closing.text)
                raise ExpressionError(
                    f"'(' at column {token.column} is not closed: expected ')' but found "
                    f"{found}", self.text, closing.column)
            return inner, depth
        if token.kind == "ref" and token.reference is not None:
            return Ref(token.reference), 1
        if token.kind == "value":
            return Literal(token.value, token.column), 1
        found = "the end of the condition" if token.kind == "end" else repr(token.text)
        raise ExpressionError(
            f"expected a value (a ${{reference}}, string, number, true, false, null or '(') "
            f"but found {found}", self.text, token.column)

    def check_depth(self, depth: int, token: Token) -> int:
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"condition nests more than {MAX_DEPTH} levels deep (parentheses, operators "
                f"and chained operands): split it into simpler conditions",
                self.text, token.column)
        return depth


def _binary(token: Token, left: Node, right: Node) -> Node:
    if token.text == "||":
        return Or(left, right, token.column)
    if token.text == "&&":
        return And(left, right, token.column)
    if token.text in COMPARISONS:
        return Compare(typing.cast(CompareOp, token.text), left, right, token.column)
    return Arith(typing.cast(ArithOp, token.text), left, right, token.column)


def _power(node: Node) -> int:
    if isinstance(node, Or):
        return _OR
    if isinstance(node, And):
        return _AND
    if isinstance(node, Not):
        return _NOT
    if isinstance(node, Compare):
        return _CMP
    if isinstance(node, Arith):
        return _BINARY[node.op]
    if isinstance(node, Neg):
        return _UNARY
    return _ATOM


def to_source(node: Node) -> str:
    """The condition text for a tree, with only the parentheses it needs, such that
    ``parse_condition(to_source(node)).root == node``. Number literals must be finite and not
    negative (negative numbers are ``Neg`` nodes, as the parser builds them)."""
    if isinstance(node, Literal):
        return _literal_source(node.value)
    if isinstance(node, Ref):
        return str(node.reference)
    if isinstance(node, Not | Neg):
        sign, power = ("!", _NOT) if isinstance(node, Not) else ("-", _UNARY)
        return sign + _wrapped(node.operand, _power(node.operand) < power)
    power = _power(node)
    op = {Or: "||", And: "&&"}.get(type(node)) or typing.cast(Compare | Arith, node).op
    # Comparisons do not chain, so either side of one needs parentheses if it is one too.
    left_wrap = _power(node.left) < power or (power == _CMP and _power(node.left) == _CMP)
    right_wrap = _power(node.right) <= power
    return f"{_wrapped(node.left, left_wrap)} {op} {_wrapped(node.right, right_wrap)}"


def _wrapped(node: Node, wrap: bool) -> str:
    text = to_source(node)
    return f"({text})" if wrap else text


def _literal_source(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                   .replace("\t", "\\t").replace("\r", "\\r"))
        return f'"{escaped}"'
    if not math.isfinite(value) or math.copysign(1, value) < 0:
        raise ValueError(
            f"the number {value!r} cannot be written as a condition literal: use Neg for "
            f"negative numbers; infinities and NaN have no literal")
    return repr(value)
