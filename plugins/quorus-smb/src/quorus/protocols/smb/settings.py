"""The options of the SMB protocol, validated once per protocol instance.

Credentials (``username``, ``password``) are credential references resolved with
:func:`~quorus.core.secrets.resolve_secret` and kept as :class:`~quorus.core.secrets.Secret`
objects, so no ``repr`` of the settings shows them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.options import check_known, option_flag, option_number, option_secret
from quorus.core.protocol import ProtocolOptions
from quorus.core.secrets import Secret
from smbprotocol.connection import Dialects

MIB = 1024 * 1024
DEFAULT_BLOCK_SIZE = 1 * MIB
DEFAULT_MAX_REQUESTS = 16
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The largest READ or WRITE SMB 2/3 allows over direct TCP (the 16 MiB frame limit less headers).
MAX_BLOCK_SIZE = 8 * MIB

AUTH_PROTOCOLS = ("negotiate", "ntlm", "kerberos")
SIGNING_MODES = ("required", "auto")
DIALECTS = {
    "2.0.2": Dialects.SMB_2_0_2,
    "2.1": Dialects.SMB_2_1_0,
    "3.0": Dialects.SMB_3_0_0,
    "3.0.2": Dialects.SMB_3_0_2,
    "3.1.1": Dialects.SMB_3_1_1,
}

KNOWN_OPTIONS = frozenset({
    "username",
    "password",
    "domain",
    "auth",
    "signing",
    "encrypt",
    "dialect",
    "block_size",
    "max_requests",
    "timeout",
    "connect_timeout",
})


_secret = functools.partial(option_secret, "smb")
_flag = functools.partial(option_flag, "smb")
_number = functools.partial(option_number, "smb")


@dataclass(frozen=True)
class SmbSettings:
    """Validated options of one :class:`~quorus.protocols.smb.SmbProtocol` instance."""

    username: Secret | None = None
    password: Secret | None = None
    domain: str | None = None
    auth: str = "negotiate"
    signing: str = "required"
    encrypt: bool = False
    dialect: str | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    max_requests: int = DEFAULT_MAX_REQUESTS
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT

    @classmethod
    def from_options(cls, options: ProtocolOptions) -> SmbSettings:
        """Check ``options`` and resolve credential references.

        Raises :class:`~quorus.core.errors.ConfigurationError` naming the option at fault
        (never a credential's value).
        """
        check_known("smb", options, KNOWN_OPTIONS)
        dialect = options.get("dialect")
        if dialect is not None and str(dialect) not in DIALECTS:
            raise ConfigurationError(
                f"smb option dialect={dialect!r}: expected one of {', '.join(DIALECTS)}"
            )
        return cls(
            username=_secret(options, "username"),
            password=_secret(options, "password"),
            domain=_text(options, "domain"),
            auth=_choice(options, "auth", AUTH_PROTOCOLS, "negotiate"),
            signing=_choice(options, "signing", SIGNING_MODES, "required"),
            encrypt=_flag(options, "encrypt", False),
            dialect=None if dialect is None else str(dialect),
            block_size=int(_number(options, "block_size", DEFAULT_BLOCK_SIZE,
                                   minimum=64 * 1024, maximum=MAX_BLOCK_SIZE)),
            max_requests=int(_number(options, "max_requests", DEFAULT_MAX_REQUESTS,
                                     minimum=1, maximum=256)),
            timeout=_number(options, "timeout", DEFAULT_TIMEOUT, minimum=0.1),
            connect_timeout=_number(options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, minimum=0.1),
        )

    def redact(self, options: ProtocolOptions) -> dict[str, Any]:
        """``options`` with credentials replaced by their resolved :class:`Secret` objects."""
        cleaned = dict(options)
        for name, value in (("username", self.username), ("password", self.password)):
            if value is not None:
                cleaned[name] = value
        return cleaned




def _text(options: ProtocolOptions, name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"smb option {name}: expected text")
    return value


def _choice(options: ProtocolOptions, name: str, choices: tuple[str, ...], default: str) -> str:
    value = str(options.get(name, default)).strip().lower()
    if value not in choices:
        raise ConfigurationError(
            f"smb option {name}={options[name]!r}: expected one of {', '.join(choices)}"
        )
    return value






__all__ = ["AUTH_PROTOCOLS", "DIALECTS", "KNOWN_OPTIONS", "SIGNING_MODES", "SmbSettings"]
