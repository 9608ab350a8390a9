"""The errors of the expression layer: a message, the expression it concerns and the column
to point at, shown with a caret under the offending character."""

from __future__ import annotations

from quorus.core.errors import QuorusError


class ExpressionError(QuorusError):
    """A template, date pattern or condition could not be parsed, checked or evaluated.

    ``text`` is the whole expression as written; ``column`` is the 1-based character offset
    into it (counted across lines when the text has several), or None when no single place is
    to blame. ``where`` optionally names the document location the text came from, such as
    ``spec.transfers[2].source.uri``.
    """

    def __init__(
        self, message: str, text: str, column: int | None = None, *, where: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.column = column
        self.where = where

    def located(self, where: str) -> ExpressionError:
        """A copy of this error (same class) that says which document location it concerns."""
        return type(self)(self.message, self.text, self.column, where=where)

    def shifted(self, text: str, offset: int) -> ExpressionError:
        """A copy for a larger expression ``text`` in which this error's text starts at
        character ``offset``; used when a date pattern is checked inside a template."""
        column = None if self.column is None else self.column + offset
        return type(self)(self.message, text, column, where=self.where)

    def __str__(self) -> str:
        head = self.message if self.where is None else f"{self.where}: {self.message}"
        return f"{head}\n{_excerpt(self.text, self.column)}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only ``where`` is lost by Exception's default pickling.
        return (_rebuild, (type(self), self.message, self.text, self.column, self.where))


class ConditionTypeError(ExpressionError):
    """A condition applies an operator to values it does not accept: comparing a number with a
    string, arithmetic on a boolean, division by zero, ``&&``/``||``/``!`` on a non-boolean, or
    a condition whose result is not a boolean."""


def _rebuild(
    cls: type[ExpressionError], message: str, text: str, column: int | None, where: str | None
) -> ExpressionError:
    return cls(message, text, column, where=where)


def _excerpt(text: str, column: int | None) -> str:
    """The line of ``text`` holding ``column`` (indented), and a caret under that column."""
    if column is None:
        return f"  {text}"
    offset = min(max(column - 1, 0), len(text))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start:] if line_end == -1 else text[line_start:line_end]
    # Tabs are kept in the caret line so the caret lines up wherever the terminal's tab stops are.
    pad = "".join("\t" if ch == "\t" else " " for ch in text[line_start:offset])
    return f"  {line}\n  {pad}^"
