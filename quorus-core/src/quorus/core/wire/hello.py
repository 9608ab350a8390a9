"""The first message on every connection: who is speaking, which protocol versions it
speaks, and its credentials.

Both sides send a :class:`Hello`; each picks the highest version both support
(:func:`negotiate_version`) and the receiver authenticates the credentials with the
configured auth method. Credentials never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quorus.core.wire.framing import WireError

HELLO = "hello"


class ProtocolVersionError(WireError):
    """The two sides share no protocol version."""


@dataclass(frozen=True)
class Hello:
    """``protocol`` names the conversation (``quorus-agent``, ``quorus-raft``, ...),
    ``versions`` the versions this side speaks, ``node_id`` who it is. ``credentials`` are
    for the auth method named in ``auth_method`` (e.g. ``{"token": ...}`` for ``token``)."""

    protocol: str
    versions: tuple[int, ...]
    node_id: str
    auth_method: str | None = None
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": HELLO,
            "protocol": self.protocol,
            "versions": list(self.versions),
            "node_id": self.node_id,
            "auth": {"method": self.auth_method, **dict(self.credentials)}
            if self.auth_method
            else None,
        }

    @classmethod
    def from_wire(cls, message: Any) -> Hello:
        """Validate a received hello; :class:`WireError` saying what is wrong otherwise."""
        if not isinstance(message, dict) or message.get("type") != HELLO:
            raise WireError("expected a hello as the first message")
        protocol, versions, node_id = (
            message.get("protocol"), message.get("versions"), message.get("node_id")
        )
        if not isinstance(protocol, str) or not protocol:
            raise WireError("hello: 'protocol' must be a non-empty string")
        if (
            not isinstance(versions, list)
            or not versions
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in versions)
        ):
            raise WireError("hello: 'versions' must be a non-empty list of positive integers")
        if not isinstance(node_id, str) or not node_id:
            raise WireError("hello: 'node_id' must be a non-empty string")
        auth = message.get("auth")
        method: str | None = None
        credentials: dict[str, str] = {}
        if auth is not None:
            if not isinstance(auth, dict) or not isinstance(auth.get("method"), str):
                raise WireError("hello: 'auth' must be a map with a 'method'")
            method = auth["method"]
            for key, value in auth.items():
                if key == "method":
                    continue
                if not isinstance(key, str) or not isinstance(value, str):
                    raise WireError("hello: credentials must be strings")
                credentials[key] = value
        return cls(protocol, tuple(versions), node_id, method, credentials)


def negotiate_version(protocol: str, ours: Sequence[int], hello: Hello) -> int:
    """The highest version both sides speak, after checking they speak the same protocol."""
    if hello.protocol != protocol:
        raise ProtocolVersionError(
            f"peer {hello.node_id!r} speaks {hello.protocol!r}, this side expects {protocol!r}"
        )
    common = set(ours) & set(hello.versions)
    if not common:
        raise ProtocolVersionError(
            f"peer {hello.node_id!r} speaks {protocol} versions "
            f"{sorted(hello.versions)}, this side {sorted(ours)}: no version in common"
        )
    return max(common)


__all__ = ["HELLO", "Hello", "ProtocolVersionError", "negotiate_version"]
