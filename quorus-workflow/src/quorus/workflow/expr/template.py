"""``${...}`` templates: strings parsed once into literal text and references, rendered by
binding each reference through a lookup, never by re-parsing the values substituted.

A reference is a function (``${date:yyyy-MM-dd@UTC}``, ``${env:HOME}``, ``${file:token.txt}``)
or a dotted name (``${BACKUP_ROOT}``, ``${user-data.result.checksum}``). ``$${`` writes a
literal ``${`` (so a literal ``$`` cannot directly precede a reference: take it from a
variable); any other ``$`` is literal. A date argument may quote a ``}`` (``'}'``); a file path
cannot contain one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from quorus.workflow.expr.dates import parse_date_argument
from quorus.workflow.expr.errors import ExpressionError

ReferenceKind: TypeAlias = Literal["date", "env", "file", "name"]
DocumentPath: TypeAlias = tuple[str | int, ...]

_FUNCTIONS: tuple[ReferenceKind, ...] = ("date", "env", "file")
_NAME_START = re.compile(r"[A-Za-z_]")
_NAME_REST = re.compile(r"[A-Za-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_RULE = ("names are letters, digits, '_' and '-', start with a letter or '_', "
              "and dots separate their parts")


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${...}``. ``text`` is what is inside the braces as written; ``argument`` is the
    part after ``date:``/``env:``/``file:`` or, for a name, the dotted name (both without
    surrounding spaces). ``start``/``end`` delimit ``${...}`` in the source string; they do
    not take part in equality, so the same reference written twice compares equal."""

    text: str
    kind: ReferenceKind
    argument: str
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)

    @property
    def segments(self) -> tuple[str, ...]:
        """The dotted parts of a name (``("user-data", "result", "checksum")``); empty for a
        function."""
        return tuple(self.argument.split(".")) if self.kind == "name" else ()

    @property
    def root(self) -> str:
        """The first part of a name (``user-data``); for a function, the function's name."""
        return self.segments[0] if self.kind == "name" else self.kind

    def __str__(self) -> str:
        return f"${{{self.text}}}"


@dataclass(frozen=True, slots=True)
class Template:
    """A string parsed into literal text and references, in order."""

    source: str
    parts: tuple[str | Reference, ...]

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference, in order of appearance (repeats included)."""
        return tuple(part for part in self.parts if isinstance(part, Reference))

    @property
    def is_constant(self) -> bool:
        """True when the string holds no reference (it may still hold ``$${`` escapes)."""
        return not self.references

    @property
    def single_reference(self) -> Reference | None:
        """The reference when the whole string is exactly one reference, so that a caller can
        keep the value's own type (a number stays a number)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Reference):
            return self.parts[0]
        return None

    def render(self, lookup: Callable[[Reference], object]) -> str:
        """The string with every reference replaced by ``value_text(lookup(reference))``.
        Values are inserted as they are: a value holding ``${x}`` stays literal."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(value_text(lookup(part), part, self.source))
        return "".join(out)


def value_text(value: object, reference: Reference, source: str) -> str:
    """How a value reads inside a string: a string as is, ``true``/``false`` for booleans,
    numbers as Python writes them (``3``, ``2.5``), and nothing for null (None). Anything else
    is an ExpressionError pointing at ``reference`` in ``source``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    raise ExpressionError(
        f"{reference} is a {type(value).__name__}, which cannot be put into text: only "
        f"strings, numbers, booleans and null can; refer to one of its parts instead",
        source, reference.start + 1)


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse ``text`` into literal parts and references; ExpressionError (with the column) for
    an unclosed ``${``, an empty ``${}`` or a malformed reference."""
    parts: list[str | Reference] = []
    literal: list[str] = []
    i = 0
    while True:
        dollar = text.find("$", i)
        if dollar < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:dollar])
        if text.startswith("$${", dollar):
            literal.append("${")
            i = dollar + 3
        elif text.startswith("${", dollar):
            if "".join(literal):
                parts.append("".join(literal))
            literal.clear()
            reference = read_reference(text, dollar)
            parts.append(reference)
            i = reference.end
        else:
            literal.append("$")
            i = dollar + 1
    if "".join(literal):
        parts.append("".join(literal))
    return Template(text, tuple(parts))


def read_reference(text: str, start: int) -> Reference:
    """The reference whose ``${`` is at index ``start`` of ``text`` (used by templates and by
    conditions alike); ExpressionError with a column in ``text`` when it is malformed."""
    if not text.startswith("${", start):
        raise ExpressionError("expected '${' to start a reference", text, start + 1)
    body = start + 2
    close = _closing_brace(text, start)
    return _reference(text, text[body:close], body, start, close + 1)


def _closing_brace(text: str, start: int) -> int:
    body = start + 2
    first = len(text) - len(text[body:].lstrip())
    if text.startswith("date:", first):
        # Date patterns may quote a '}' as text, so only a brace outside quotes closes.
        quote = -1
        for index in range(first + 5, len(text)):
            ch = text[index]
            if ch == "'":
                quote = index if quote < 0 else -1
            elif ch == "}" and quote < 0:
                return index
        if quote >= 0:
            raise ExpressionError(
                "quote in the date pattern is never closed: end the text with ' "
                "(write '' for a quote)", text, quote + 1)
        close = -1
    else:
        close = text.find("}", body)
    nested = text.find("${", body, None if close < 0 else close)
    if nested >= 0:
        raise ExpressionError(
            "'${' is not closed before the next '${' (references cannot be nested): add '}'",
            text, start + 1)
    if close < 0:
        raise ExpressionError(
            "'${' is never closed: add '}' after the name, or write '$${' for a literal '${'",
            text, start + 1)
    return close


def _reference(text: str, inner: str, body: int, start: int, end: int) -> Reference:
    stripped = inner.strip()
    first = body + len(inner) - len(inner.lstrip())
    if not stripped:
        raise ExpressionError(
            "empty reference '${}': write a name such as ${BACKUP_ROOT}, or '$${' for a "
            "literal '${'", text, start + 1)
    for kind in _FUNCTIONS:
        if stripped.startswith(f"{kind}:"):
            raw = stripped[len(kind) + 1:]
            argument = raw.lstrip()
            at = first + len(kind) + 1 + len(raw) - len(argument)
            _check_argument(text, kind, argument, at, first)
            return Reference(inner, kind, argument, start, end)
    _check_name(text, stripped, first)
    return Reference(inner, "name", stripped, start, end)


def _check_argument(text: str, kind: ReferenceKind, argument: str, at: int, first: int) -> None:
    if not argument:
        example = {"date": "yyyy-MM-dd", "env": "HOME", "file": "secrets/token.txt"}[kind]
        raise ExpressionError(
            f"'{kind}:' needs an argument, as in ${{{kind}:{example}}}", text, first + 1)
    if kind == "env":
        match = _ENV_NAME.match(argument)
        if match is None or match.end() != len(argument):
            bad = 0 if match is None else match.end()
            raise ExpressionError(
                f"{argument[bad]!r} cannot appear in an environment variable name: use "
                f"letters, digits and '_', starting with a letter or '_'", text, at + bad + 1)
    elif kind == "date":
        try:
            parse_date_argument(argument)
        except ExpressionError as error:
            raise error.shifted(text, at) from None


def _check_name(text: str, name: str, first: int) -> None:
    colon = name.find(":")
    if colon > 0 and _NAME_START.match(name):
        raise ExpressionError(
            f"unknown function '{name[:colon]}:': the functions are date:, env: and file:",
            text, first + 1)
    position = 0
    for segment in name.split("."):
        column = first + position + 1
        if not segment:
            raise ExpressionError(
                f"empty part in name {name!r}: {_NAME_RULE}", text, column)
        if not _NAME_START.match(segment):
            raise ExpressionError(
                f"name part {segment!r} must start with a letter or '_': {_NAME_RULE}",
                text, column)
        rest = _NAME_REST.match(segment, 1)
        length = rest.end() if rest is not None else 1
        if length != len(segment):
            raise ExpressionError(
                f"{segment[length]!r} cannot appear in a name: {_NAME_RULE}",
                text, column + length)
        position += len(segment) + 1


def format_path(path: DocumentPath) -> str:
    """A document path as people read it: ``("spec", "transfers", 2, "source", "uri")`` →
    ``spec.transfers[2].source.uri``."""
    out: list[str] = []
    for key in path:
        if isinstance(key, int):
            out.append(f"[{key}]")
        elif key and all(ch.isalnum() or ch in "_-" for ch in key):
            out.append(f".{key}" if out else key)
        else:
            out.append(f"[{key!r}]")
    return "".join(out)


def find_references(
    value: object, errors: list[ExpressionError] | None = None
) -> list[tuple[DocumentPath, Reference]]:
    """Every reference in the strings of a nested structure of dicts, lists and tuples, with
    the path of the string that holds it (dict values only; keys are not templates).

    A malformed template raises its ExpressionError, located at its path; when ``errors`` is
    given, such errors are appended to it instead and the walk goes on, so that every problem
    of a document can be reported at once.
    """
    found: list[tuple[DocumentPath, Reference]] = []

    def visit(path: DocumentPath, text: str) -> None:
        try:
            template = parse_template(text)
        except ExpressionError as error:
            located = error.located(format_path(path))
            if errors is None:
                raise located from None
            errors.append(located)
            return
        found.extend((path, reference) for reference in template.references)

    _walk_strings(value, visit)
    return found


def render_value(value: object, lookup: Callable[[Reference], object]) -> object:
    """A copy of a nested structure of dicts, lists and tuples in which every string is
    rendered. A string that is exactly one reference becomes the looked-up value itself, of
    whatever type; other strings become text (see :func:`value_text`). Errors are located at
    the path of the string."""

    def render(path: DocumentPath, node: object, ancestors: frozenset[int]) -> object:
        if isinstance(node, str):
            try:
                template = parse_template(node)
                single = template.single_reference
                return lookup(single) if single is not None else template.render(lookup)
            except ExpressionError as error:
                raise error.located(format_path(path)) from None
        if isinstance(node, dict | list | tuple):
            inner = _enter(node, path, ancestors)
            if isinstance(node, dict):
                return {key: render((*path, _key(key)), item, inner)
                        for key, item in node.items()}
            items = [render((*path, index), item, inner) for index, item in enumerate(node)]
            return items if isinstance(node, list) else tuple(items)
        return node

    return render((), value, frozenset())


def _walk_strings(value: object, visit: Callable[[DocumentPath, str], None]) -> None:
    def walk(path: DocumentPath, node: object, ancestors: frozenset[int]) -> None:
        if isinstance(node, str):
            visit(path, node)
        elif isinstance(node, dict):
            inner = _enter(node, path, ancestors)
            for key, item in node.items():
                walk((*path, _key(key)), item, inner)
        elif isinstance(node, list | tuple):
            inner = _enter(node, path, ancestors)
            for index, item in enumerate(node):
                walk((*path, index), item, inner)

    walk((), value, frozenset())


def _enter(node: object, path: DocumentPath, ancestors: frozenset[int]) -> frozenset[int]:
    # YAML anchors can build a structure that contains itself; walking it would never end.
    if id(node) in ancestors:
        raise ValueError(f"the structure contains itself at {format_path(path) or 'the top'}")
    return ancestors | {id(node)}


def _key(key: object) -> str | int:
    return key if isinstance(key, str) else str(key)
