"""Checking a protocol plugin's options, with errors that name the option (never a secret).

Options come from configuration files and from ``-o SCHEME.KEY=VALUE`` on the command line,
where ``true``/``false`` and digits already arrive as booleans and numbers. Every protocol
plugin checks its options the same way; these functions are that one way::

    check_known("sftp", options, KNOWN_OPTIONS)
    password = option_secret("sftp", options, "password")
    verify = option_flag("sftp", options, "verify_host_key", True)
    timeout = option_number("sftp", options, "connect_timeout", 15, minimum=0.1)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def check_known(scheme: str, options: Mapping[str, Any], known: Collection[str]) -> None:
    """Refuse option names the protocol does not know, listing the ones it does."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown {scheme} option(s) {', '.join(map(repr, unknown))}; "
            f"known options: {', '.join(sorted(known))}"
        )


def option_secret(scheme: str, options: Mapping[str, Any], name: str) -> Secret | None:
    """A credential: literal text, ``env:NAME`` or ``file:PATH`` (resolved now)."""
    value = options.get(name)
    if value is None or isinstance(value, Secret):
        return value
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigurationError(f"{scheme} option {name}: expected text or env:NAME / file:PATH")
    # The command line turns digits into numbers: resolve_secret takes them as their text.
    return resolve_secret(value)


def option_flag(scheme: str, options: Mapping[str, Any], name: str, default: bool) -> bool:
    """A yes/no option (``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``)."""
    value = options.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{scheme} option {name}={value!r}: expected true or false")


def option_number(
    scheme: str,
    options: Mapping[str, Any],
    name: str,
    default: float,
    *,
    minimum: float = 0,
    maximum: float | None = None,
) -> float:
    """A number within ``[minimum, maximum]``."""
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{scheme} option {name}={value!r}: expected a number") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum:g}" if maximum is not None else ""
        raise ConfigurationError(
            f"{scheme} option {name}={value!r}: must be at least {minimum:g}{upper}"
        )
    return number


__all__ = ["check_known", "option_flag", "option_number", "option_secret"]
