"""Parsing ``-o SCHEME.KEY=VALUE`` protocol options from the command line."""

from __future__ import annotations

from typing import Any

from quorus.core.errors import ConfigurationError


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_protocol_options(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """``["https.ca_bundle=/ca.pem", "http.headers.X-Team=data"]`` →
    ``{"https": {"ca_bundle": "/ca.pem"}, "http": {"headers": {"X-Team": "data"}}}``.

    Each further dot in the key opens a nested group. Values stay as written
    (``env:NAME``/``file:PATH`` references are resolved by the protocol), except
    ``true``/``false`` and numbers, which become bools and numbers; values inside a group
    (header values, store paths) always stay text.
    """
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        scheme, dot, name = key.partition(".")
        if not sep or not dot or not scheme or not name:
            raise ConfigurationError(
                f"invalid option {item.split('=', 1)[0]!r}: expected SCHEME.KEY=VALUE, "
                "e.g. -o https.ca_bundle=/etc/ssl/ca.pem"
            )
        target: dict[str, Any] = options.setdefault(scheme.lower(), {})
        *parents, leaf = name.split(".")
        for parent in parents:
            nested = target.setdefault(parent, {})
            if not isinstance(nested, dict) or not parent:
                raise ConfigurationError(f"invalid option {key!r}: {parent!r} is not a group")
            target = nested
        if not leaf or isinstance(target.get(leaf), dict):
            raise ConfigurationError(f"invalid option {key!r}: expected SCHEME.KEY=VALUE")
        target[leaf] = value if parents else _scalar(value)
    return options


__all__ = ["parse_protocol_options"]
