"""The tokens of the condition language: operators, string and number literals, the words
``true``/``false``/``null`` and ``${...}`` references (read by the template parser, so a
reference follows the same rules in a condition as in a string)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from quorus.workflow.expr.errors import ExpressionError
from quorus.workflow.expr.template import Reference, read_reference

TokenKind: TypeAlias = Literal["value", "ref", "op", "end"]

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
# Longest first, so that "<=" is not read as "<" then "=".
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(",
              ")")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORDS: dict[str, str | int | float | bool | None] = {"true": True, "false": False, "null": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_MISTAKES = {
    "=": "'=' is not an operator: write '==' to compare",
    "&": "'&' is not an operator: write '&&'",
    "|": "'|' is not an operator: write '||'",
}
_WORD_HINTS = {"and": "&&", "or": "||", "not": "!", "True": "true", "False": "false",
               "None": "null", "NULL": "null", "TRUE": "true", "FALSE": "false"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``text`` as written, ``column`` 1-based; ``value`` for literals and
    ``reference`` for references."""

    kind: TokenKind
    text: str
    column: int
    value: str | int | float | bool | None = None
    reference: Reference | None = None


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; ExpressionError with the column
    for anything that is not a token."""
    tokens: list[Token] = []
    i = 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            tokens.append(Token("end", "", len(text) + 1))
            return tokens
        ch = text[i]
        if text.startswith("${", i):
            reference = read_reference(text, i)
            tokens.append(Token("ref", str(reference), i + 1, reference=reference))
            i = reference.end
        elif "0" <= ch <= "9":
            token = _number(text, i)
            tokens.append(token)
            i += len(token.text)
        elif ch in "\"'":
            token, i = _string(text, i)
            tokens.append(token)
        elif (word := _WORD.match(text, i)) is not None:
            tokens.append(_word(text, word.group(), i))
            i = word.end()
        else:
            operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if operator is None:
                hint = _MISTAKES.get(ch) or (
                    "a reference is written ${name}" if ch in "${}" else
                    "operators are || && ! == != < <= > >= + - * / % and parentheses")
                raise ExpressionError(f"unexpected {ch!r}: {hint}", text, i + 1)
            tokens.append(Token("op", operator, i + 1))
            i += len(operator)


def _number(text: str, start: int) -> Token:
    match = _NUMBER.match(text, start)
    if match is None:  # the caller saw a digit, which always matches
        raise ExpressionError("expected a number", text, start + 1)
    written = match.group()
    try:
        value: int | float = float(written) if match.group(1) or match.group(2) else int(written)
    except ValueError:
        # Python refuses to convert integers of thousands of digits.
        raise ExpressionError(
            f"number with {len(written)} digits is too long", text, start + 1) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(
            f"number {written} is too large to be represented", text, start + 1)
    return Token("value", written, start + 1, value=value)


def _string(text: str, start: int) -> tuple[Token, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return Token("value", text[start:i + 1], start + 1, value="".join(out)), i + 1
        if ch == "\\":
            escape = text[i + 1:i + 2]
            if escape not in _ESCAPES:
                shown = repr("\\" + escape) if escape else "'\\' at the end"
                raise ExpressionError(
                    f"unknown escape {shown} in a string: the escapes are \\\" \\' \\\\ \\n "
                    f"\\t \\r", text, i + 1)
            out.append(_ESCAPES[escape])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError(
        f"string opened here is never closed: end it with {quote}", text, start + 1)


def _word(text: str, word: str, start: int) -> Token:
    if word in _WORDS:
        return Token("value", word, start + 1, value=_WORDS[word])
    if word in _WORD_HINTS:
        hint = f"write {_WORD_HINTS[word]!r}"
    else:
        hint = f"write a reference as ${{{word}}}, or text in quotes as \"{word}\""
    raise ExpressionError(f"unknown word {word!r}: {hint}", text, start + 1)
