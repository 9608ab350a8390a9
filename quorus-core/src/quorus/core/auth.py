"""Authentication of clients, agents and peers: the ``quorus.auth`` plugin interface and the
built-in ``token`` method.

An auth method is a factory in the ``quorus.auth`` entry-point group, called with its options
(a mapping) and returning an :class:`Authenticator`: ``authenticate(credentials)`` takes what
a peer presented (``{"token": ...}`` from an agent's hello or a REST bearer header) and
returns the :class:`Principal` it proves, or ``None``. It must not raise for wrong
credentials, and must compare secrets in constant time.

On a TLS connection whose peer presented a certificate the handshake verified, the
credentials also hold ``peer_certificate`` (:data:`quorus.core.tls.PEER_CERTIFICATE`): the
certificate as Python's ``ssl`` decodes it. Only the TLS layer fills that key; a key of the
same name in what the peer sends is dropped. When a controller's agent method is not the one
an agent's hello names (an agent presenting a token to a controller that authenticates agents
by certificate), the method gets the TLS credentials alone.

The ``token`` method accepts one shared token. :func:`ensure_token_file` gives the embedded
default its token: generated in the data directory on first start (mode 0600), read on
every later start.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret

#: The token file's name in a controller's data directory.
TOKEN_FILE = "token"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a peer proved to be, and by which method."""

    name: str
    method: str


class Authenticator(Protocol):
    """A configured auth method (see the module docstring)."""

    method: str

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        """The principal ``credentials`` prove, or ``None`` when they prove nothing.

        A method may also offer ``why_refused(credentials) -> str | None``: why credentials
        it recognises prove nothing (expired, revoked), in words safe to show whoever
        presented them; the REST API puts it in its 401 answer."""


class TokenAuth:
    """The ``token`` method: whoever presents the shared token is the principal ``name``."""

    method = "token"

    def __init__(self, token: Secret, *, name: str = "token-holder") -> None:
        if not token.reveal():
            raise ConfigurationError("the token of the 'token' auth method is empty")
        self._token = token.reveal().encode()
        self._principal = Principal(name, self.method)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TokenAuth:
        """Options: ``token`` (a value, ``env:NAME`` or ``file:/path``), ``principal``."""
        reference = options.get("token")
        secret = resolve_secret(reference) if isinstance(reference, (str, Secret)) else None
        if secret is None:
            raise ConfigurationError("the 'token' auth method needs a 'token' option")
        return cls(secret, name=str(options.get("principal", "token-holder")))

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        presented = credentials.get("token")
        if not isinstance(presented, str):
            return None
        if hmac.compare_digest(presented.encode(), self._token):
            return self._principal
        return None


def ensure_token_file(data_dir: Path) -> tuple[Path, bool]:
    """The token file of ``data_dir``, created with a fresh random token (readable by the
    owner only) when missing. Returns the path and whether it was just created."""
    path = (data_dir / TOKEN_FILE).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if not path.read_text().strip():
            raise ConfigurationError(
                f"the token file {path} is empty: delete it to get a new one"
            ) from None
        return path, False
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return path, True


def load_authenticator(method: str, options: Mapping[str, Any]) -> Authenticator:
    """The auth method registered as ``method`` in ``quorus.auth``, configured by ``options``."""
    from quorus.core.plugins import AUTH, registry

    factory = registry().load(AUTH, method)
    authenticator: Authenticator = factory(options)
    return authenticator


__all__ = [
    "TOKEN_FILE",
    "Authenticator",
    "Principal",
    "TokenAuth",
    "ensure_token_file",
    "load_authenticator",
]
