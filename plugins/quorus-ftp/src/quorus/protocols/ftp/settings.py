"""The options of the FTP protocol, validated once per protocol instance.

Credentials (``username``, ``password``) are credential references resolved with
:func:`~quorus.core.secrets.resolve_secret` and kept as :class:`~quorus.core.secrets.Secret`
objects, so no ``repr`` of the settings shows them.
"""

from __future__ import annotations

import functools
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.options import check_known, option_flag, option_number, option_secret
from quorus.core.protocol import ProtocolOptions
from quorus.core.secrets import Secret

log = logging.getLogger(__name__)

#: aioftp reads 8 KiB blocks by default; a loopback or LAN link wants far more per call.
DEFAULT_CHUNK_SIZE = 1024 * 1024
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Control connections kept per server and user: one per concurrent stream.
DEFAULT_MAX_CONNECTIONS = 8
#: A pooled connection idle longer than this is checked with NOOP before it is reused.
DEFAULT_IDLE_CHECK = 15.0
PASSIVE_COMMANDS = ("epsv", "pasv")

KNOWN_OPTIONS = frozenset({
    "username",
    "password",
    "ca_bundle",
    "verify",
    "timeout",
    "connect_timeout",
    "chunk_size",
    "max_connections",
    "passive",
})


_secret = functools.partial(option_secret, "ftp")
_flag = functools.partial(option_flag, "ftp")
_number = functools.partial(option_number, "ftp")


@dataclass(frozen=True)
class FtpSettings:
    """Validated options of one :class:`~quorus.protocols.ftp.FtpProtocol` instance."""

    username: Secret | None = None
    password: Secret | None = None
    ca_bundle: str | None = None
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    passive: tuple[str, ...] = PASSIVE_COMMANDS

    @classmethod
    def from_options(cls, options: ProtocolOptions) -> FtpSettings:
        """Check ``options`` and resolve credential references.

        Raises :class:`~quorus.core.errors.ConfigurationError` naming the option at fault
        (never a credential's value).
        """
        check_known("ftp", options, KNOWN_OPTIONS)
        ca_bundle = options.get("ca_bundle")
        if ca_bundle is not None and not isinstance(ca_bundle, str):
            raise ConfigurationError("ftp option ca_bundle: expected the path of a PEM file")
        return cls(
            username=_secret(options, "username"),
            password=_secret(options, "password"),
            ca_bundle=ca_bundle,
            verify=_flag(options, "verify", True),
            timeout=_number(options, "timeout", DEFAULT_TIMEOUT, minimum=0.1),
            connect_timeout=_number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, minimum=0.1),
            chunk_size=int(_number(options, "chunk_size", DEFAULT_CHUNK_SIZE, minimum=4096)),
            max_connections=int(
                _number(options, "max_connections", DEFAULT_MAX_CONNECTIONS, minimum=2)
            ),
            passive=_passive(options.get("passive")),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The context that checks the server's certificate (control and data connections)."""
        if not self.verify:
            # An explicit opt-out, but never a silent one: the log says so every time.
            log.warning("FTPS certificate verification is off (verify=false): the server's "
                        "identity is not checked")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigurationError(
                f"ftp option ca_bundle={self.ca_bundle!r} cannot be used: {reason}"
            ) from None








def _passive(value: Any) -> tuple[str, ...]:
    if value is None:
        return PASSIVE_COMMANDS
    names = value.split(",") if isinstance(value, str) else list(value)
    commands = tuple(str(name).strip().lower() for name in names if str(name).strip())
    if not commands or any(name not in PASSIVE_COMMANDS for name in commands):
        raise ConfigurationError(
            f"ftp option passive={value!r}: expected epsv, pasv or both (epsv,pasv)"
        )
    return commands


__all__ = ["KNOWN_OPTIONS", "FtpSettings"]
