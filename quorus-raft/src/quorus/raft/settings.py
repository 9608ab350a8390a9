"""The ``raft`` backend's options, read from ``ConsensusConfig.options``.

| option | default | meaning |
|---|---|---|
| ``token`` | (required) | the cluster's shared secret: text, ``env:NAME`` or ``file:/path`` |
| ``tick_ms`` | 50 | one logical tick; the heartbeat is one tick |
| ``election_ticks`` | ``[3, 6]`` | election timeout range in ticks (150-300 ms) |
| ``pre_vote`` / ``check_quorum`` | true | Raft's pre-vote and check-quorum |
| ``join`` | false | start outside any configuration and wait to be added |
| ``listen`` | this node's address in ``members`` | ``host:port`` to listen on |
| ``max_frame_bytes`` | 64 MiB | largest peer message accepted |
| ``max_append_bytes`` | 1 MiB | largest batch of entries in one append |
| ``snapshot_chunk_bytes`` | 1 MiB | InstallSnapshot chunk size |
| ``request_timeout`` | 5 s | how long reads and membership changes may wait |
| ``tls_cert``, ``tls_key`` | none | PEM files: this node's certificate and key; peer links use TLS 1.2+ |
| ``tls_key_password`` | none | password of an encrypted ``tls_key``: text, ``env:NAME`` or ``file:/path`` |
| ``tls_ca`` | none | PEM file of the CA that issues the members' certificates: every peer must present one (mutual TLS), and servers are verified against it |

With ``tls_cert`` and ``tls_ca`` the links are mutual TLS: a node accepts a connection only
from a peer whose certificate ``tls_ca`` issued and that is within its validity period, before
any message (the hello and its cluster token included) is read. Without ``tls_ca`` the link
is encrypted, peers are verified against the system's CAs and need no certificate of their
own. ``tls_ca`` or ``tls_key`` without ``tls_cert`` is refused: every member serves TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quorus.core import tls
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret
from quorus.raft.core import RaftConfig


@dataclass(frozen=True)
class RaftSettings:
    core: RaftConfig
    tick_seconds: float
    join: bool
    listen: str
    secret: Secret | None
    max_frame_size: int
    snapshot_chunk_bytes: int
    request_timeout: float
    tls_cert: str | None
    tls_key: str | None
    tls_ca: str | None
    tls_key_password: Secret | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RaftSettings:
        if options.get("tls_cert") is None:
            given = [n for n in ("tls_key", "tls_key_password", "tls_ca")
                     if options.get(n) is not None]
            if given:
                raise ConfigurationError(
                    f"raft option(s) {', '.join(given)} without tls_cert: TLS between peers "
                    "needs this node's certificate (tls_cert) and key (tls_key)"
                )
        try:
            low, high = options.get("election_ticks", (3, 6))
            core = RaftConfig(
                heartbeat_ticks=int(options.get("heartbeat_ticks", 1)),
                election_ticks_min=int(low),
                election_ticks_max=int(high),
                pre_vote=bool(options.get("pre_vote", True)),
                check_quorum=bool(options.get("check_quorum", True)),
                max_append_bytes=int(options.get("max_append_bytes", 1 << 20)),
            )
            return cls(
                core=core,
                tick_seconds=float(options.get("tick_ms", 50)) / 1000,
                join=bool(options.get("join", False)),
                listen=str(options.get("listen", "127.0.0.1:0")),
                secret=resolve_secret(options.get("token")),
                max_frame_size=int(options.get("max_frame_bytes", 64 << 20)),
                snapshot_chunk_bytes=int(options.get("snapshot_chunk_bytes", 1 << 20)),
                request_timeout=float(options.get("request_timeout", 5.0)),
                tls_cert=options.get("tls_cert"),
                tls_key=options.get("tls_key"),
                tls_ca=options.get("tls_ca"),
                tls_key_password=resolve_secret(options.get("tls_key_password")),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"invalid raft option: {exc}") from exc

    def token(self) -> str:
        if self.secret is None:
            raise ConfigurationError(
                "raft needs a cluster token shared by every member: set the 'token' option "
                "(text, env:NAME or file:/path)"
            )
        return self.secret.reveal()

    def server_tls(self) -> ssl.SSLContext | None:
        """The context peers' connections are accepted with: with ``tls_ca``, a peer must
        present a certificate that CA issued (``CERT_REQUIRED``)."""
        if not self.tls_cert:
            return None
        return tls.server_context(self.tls_cert, self.tls_key, ca=self.tls_ca,
                                  key_password=self.tls_key_password, setting="raft tls")

    def client_tls(self) -> ssl.SSLContext | None:
        """The context peers are dialled with: verifies them against ``tls_ca`` (the system's
        CAs without one) and presents this node's certificate."""
        if not self.tls_cert:
            return None
        # Peers are addressed by IP on private networks as often as by name: the CA vouches
        # for them, and the cluster token and membership check who they are.
        return tls.client_context(self.tls_ca, self.tls_cert, self.tls_key,
                                  key_password=self.tls_key_password, check_hostname=False,
                                  setting="raft tls")


__all__ = ["RaftSettings"]
