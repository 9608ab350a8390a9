"""Credentials that never leak: references to environment variables or files, and a
:class:`Secret` wrapper whose ``repr`` and ``str`` hide the value."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from quorus.core.errors import ConfigurationError


@dataclass(frozen=True)
class Secret:
    """A credential value. ``str()``/``repr()`` never show it; use :meth:`reveal`."""

    _value: str = field(repr=False)
    source: str = "inline"

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})"


def resolve_secret(spec: str | int | float | Secret | None) -> Secret | None:
    """Resolve a credential reference.

    ``env:NAME`` reads an environment variable, ``file:/path`` reads a file (trailing newline
    stripped), anything else is the literal value. A missing variable or unreadable file is a
    :class:`ConfigurationError` that names the reference, never the value. A number is its
    text (``-o scheme.password=1234`` arrives as one); anything else that is not text (a
    mapping or a list from a configuration file, a boolean) is a :class:`ConfigurationError`.
    """
    if spec is None or isinstance(spec, Secret):
        return spec
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ConfigurationError(
            f"a credential must be text, env:NAME or file:PATH, not {type(spec).__name__}")
    if spec.startswith("env:"):
        name = spec[4:]
        value = os.environ.get(name)
        if value is None:
            raise ConfigurationError(f"credential environment variable {name!r} is not set")
        return Secret(value, source=f"env:{name}")
    if spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigurationError(
                f"credential file {str(path)!r} cannot be read: {exc.strerror}"
            ) from None
        return Secret(value, source=f"file:{path}")
    return Secret(spec, source="inline")


__all__ = ["Secret", "resolve_secret"]
