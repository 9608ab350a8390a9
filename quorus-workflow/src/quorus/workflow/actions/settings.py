"""Where post-execution actions send things: the Slack and named webhooks, the SMTP relay,
the time limit of each call and the roots cleanup may touch; read from the environment or
from a configuration file's section."""

from __future__ import annotations

import difflib
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret

SLACK_WEBHOOK_ENV = "QUORUS_SLACK_WEBHOOK"
SMTP_HOST_ENV = "QUORUS_SMTP_HOST"
SMTP_PORT_ENV = "QUORUS_SMTP_PORT"
SMTP_FROM_ENV = "QUORUS_SMTP_FROM"
SMTP_STARTTLS_ENV = "QUORUS_SMTP_STARTTLS"
SMTP_USERNAME_ENV = "QUORUS_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "QUORUS_SMTP_PASSWORD"
SMTP_PASSWORD_FILE_ENV = "QUORUS_SMTP_PASSWORD_FILE"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _default_from() -> str:
    return f"quorus@{socket.gethostname() or 'localhost'}"


@dataclass(frozen=True, slots=True)
class ActionSettings:
    """How actions reach the outside world.

    ``slack_webhook`` is the incoming-webhook URL that ``slack://CHANNEL`` posts to;
    ``webhooks`` names URLs for ``webhook://NAME``. Both URLs carry credentials and are never
    shown in an outcome. ``timeout`` bounds each HTTP request and SMTP conversation step.
    ``allowed_cleanup_roots``, when not empty, are the only directories (paths or URIs)
    cleanup may delete under.
    """

    slack_webhook: str | None = None
    webhooks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = field(default_factory=_default_from)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: Secret | None = None
    timeout: float = 10.0
    allowed_cleanup_roots: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ActionSettings:
        """Settings from ``QUORUS_SLACK_WEBHOOK`` and the ``QUORUS_SMTP_*`` variables; unset
        ones keep their defaults. ``QUORUS_SMTP_PASSWORD_FILE`` names a file holding the
        password (preferred over ``QUORUS_SMTP_PASSWORD``, which other processes may see)."""
        password: Secret | None = None
        if environ.get(SMTP_PASSWORD_FILE_ENV):
            password = resolve_secret(f"file:{environ[SMTP_PASSWORD_FILE_ENV]}")
        elif environ.get(SMTP_PASSWORD_ENV):
            password = Secret(environ[SMTP_PASSWORD_ENV], source=f"env:{SMTP_PASSWORD_ENV}")
        port = environ.get(SMTP_PORT_ENV)
        return cls(
            slack_webhook=environ.get(SLACK_WEBHOOK_ENV) or None,
            smtp_host=environ.get(SMTP_HOST_ENV) or None,
            smtp_port=_port(port, SMTP_PORT_ENV) if port else 25,
            smtp_from=environ.get(SMTP_FROM_ENV) or _default_from(),
            smtp_starttls=_flag(environ.get(SMTP_STARTTLS_ENV, ""), SMTP_STARTTLS_ENV),
            smtp_username=environ.get(SMTP_USERNAME_ENV) or None,
            smtp_password=password,
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ActionSettings:
        """Settings from a configuration section::

            notify: {slackWebhook: URL, webhooks: {NAME: URL}}
            smtp: {host, port, from, starttls, username, passwordFile}
            cleanup: {allowedRoots: [PATH_OR_URI, ...]}
            timeout: SECONDS

        ``smtp.password`` may be given instead of ``passwordFile`` as a reference
        (``env:NAME`` or ``file:/path``). Unknown keys and wrong types are errors naming them.
        """
        _known(data, ("notify", "smtp", "cleanup", "timeout"), "actions settings")
        notify = _section(data, "notify")
        smtp = _section(data, "smtp")
        cleanup = _section(data, "cleanup")
        _known(notify, ("slackWebhook", "webhooks"), "notify")
        _known(smtp, ("host", "port", "from", "starttls", "username", "password",
                      "passwordFile"), "smtp")
        _known(cleanup, ("allowedRoots",), "cleanup")
        webhooks = notify.get("webhooks") or {}
        if not isinstance(webhooks, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in webhooks.items()
        ):
            raise ConfigurationError("notify.webhooks must map names to URLs (NAME: https://...)")
        roots = cleanup.get("allowedRoots") or []
        if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
            raise ConfigurationError("cleanup.allowedRoots must be a list of paths or URIs")
        password: Secret | None = None
        if smtp.get("passwordFile") is not None:
            password = resolve_secret(f"file:{_text(smtp, 'passwordFile', 'smtp')}")
        elif smtp.get("password") is not None:
            password = resolve_secret(_text(smtp, "password", "smtp"))
        port = smtp.get("port")
        timeout = data.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout!r}")
        starttls = smtp.get("starttls", False)
        if not isinstance(starttls, bool):
            raise ConfigurationError(f"smtp.starttls must be true or false, not {starttls!r}")
        return cls(
            slack_webhook=_optional_text(notify, "slackWebhook", "notify"),
            webhooks=MappingProxyType(dict(webhooks)),
            smtp_host=_optional_text(smtp, "host", "smtp"),
            smtp_port=25 if port is None else _port(port, "smtp.port"),
            smtp_from=_optional_text(smtp, "from", "smtp") or _default_from(),
            smtp_starttls=starttls,
            smtp_username=_optional_text(smtp, "username", "smtp"),
            smtp_password=password,
            timeout=float(timeout),
            allowed_cleanup_roots=tuple(roots),
        )


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key} must be a mapping, not {type(value).__name__}")
    return value


def _known(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(keys)}"
            raise ConfigurationError(f"unknown key {key!r} in {where}: {hint}")


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}.{key} must be a non-empty string")
    return value


def _optional_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else _text(data, key, where)


def _port(value: object, what: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        port = -1
    if isinstance(value, bool) or not 0 < port < 65536:
        raise ConfigurationError(f"{what} must be a TCP port (1-65535), not {value!r}")
    return port


def _flag(value: str, what: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{what} must be true or false (1/0, yes/no), not {value!r}")


__all__ = ["ActionSettings"]
