"""How one controller process is configured: its id, data directory, consensus backend,
listen addresses, its peers' addresses, tokens and timings.

:class:`ControllerSettings` is built from command-line flags or from a YAML file with the
same keys (``--listen-http`` is ``listen_http``); :meth:`ControllerSettings.from_mapping`
checks every key and value and names the one that is wrong.

Peers are the members of the controller quorum: for each, its Raft address and optionally its
agent and HTTP addresses, which this node gives to agents (redirects to the leader) and to
REST clients (requests forwarded to the leader)::

    peers:
      c1: {raft: 127.0.0.1:7401, agents: 127.0.0.1:7071, http: 127.0.0.1:7081}
      c2: {raft: 127.0.0.1:7402, agents: 127.0.0.1:7072, http: 127.0.0.1:7082}

The agent port can be served over TLS (``agent_tls_cert``, ``agent_tls_key``), requiring
every agent to present a certificate issued by ``agent_tls_ca`` (mutual TLS). Agents are
authenticated by ``agent_auth``, an auth method of the ``quorus.auth`` group: ``token`` (the
default, the agent's hello carries the token) or a method that reads the certificate, such as
``mtls`` (from ``quorus-tenant``), configured by ``agent_auth_options``::

    agent_tls_cert: /etc/quorus/controller.pem
    agent_tls_key: /etc/quorus/controller.key
    agent_tls_ca: /etc/quorus/agents-ca.pem
    agent_auth: mtls
    agent_auth_options: {principal_from: cn}     # ca defaults to agent_tls_ca
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorus.core.errors import ConfigurationError
from quorus.core.netaddr import is_host_port, split_host_port

DEFAULT_AGENT_PORT = 7070
DEFAULT_HTTP_PORT = 7080
DEFAULT_RAFT_PORT = 7400


def check_address(address: str, what: str) -> str:
    """``host:port`` with a valid port, or :class:`ConfigurationError` naming ``what``."""
    if not is_host_port(str(address), allow_port_zero=True):
        raise ConfigurationError(f"{what}: expected host:port, got {address!r}")
    return str(address).strip()


def split_address(address: str) -> tuple[str, int]:
    return split_host_port(address, allow_port_zero=True)


@dataclass(frozen=True, slots=True)
class PeerAddresses:
    """Where one controller of the quorum listens."""

    raft: str | None = None
    agents: str | None = None
    http: str | None = None


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    """Everything a controller process needs (see the module docstring).

    ``token``: the token agents and REST clients present (a value, ``env:NAME`` or
    ``file:/path``); ``None`` means the token file in the data directory, created on first
    start. ``cluster_token``: what Raft peers present to each other (``raft`` only; defaults
    to ``token``). ``agent_tls_*``, ``agent_auth``, ``agent_auth_options``: TLS and the auth
    method on the agent port (see the module docstring).
    """

    node_id: str = "controller-1"
    data_dir: Path = Path("quorus-data")
    consensus: str = "standalone"
    storage: str = "file"
    listen_agents: str = f"127.0.0.1:{DEFAULT_AGENT_PORT}"
    listen_http: str = f"127.0.0.1:{DEFAULT_HTTP_PORT}"
    listen_raft: str | None = None
    peers: Mapping[str, PeerAddresses] = field(default_factory=dict)
    token: str | None = None
    cluster_token: str | None = None
    heartbeat_interval: float = 30.0
    missed_heartbeats: int = 3
    progress_interval: float = 2.0
    schedule_interval: float = 1.0
    drain_timeout: float = 30.0
    max_request_bytes: int = 1 << 20
    max_agent_frame_bytes: int = 1 << 20
    snapshot_every: int = 10_000
    raft_options: Mapping[str, Any] = field(default_factory=dict)
    agent_tls_cert: str | None = None
    agent_tls_key: str | None = None
    agent_tls_key_password: str | None = None
    agent_tls_ca: str | None = None
    agent_auth: str = "token"
    agent_auth_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.node_id or not self.node_id.isprintable() or len(self.node_id) > 64:
            raise ConfigurationError(f"node_id: 1 to 64 printable characters, not {self.node_id!r}")
        check_address(self.listen_agents, "listen_agents")
        check_address(self.listen_http, "listen_http")
        if self.listen_raft is not None:
            check_address(self.listen_raft, "listen_raft")
        for name, value in (("heartbeat_interval", self.heartbeat_interval),
                            ("schedule_interval", self.schedule_interval)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, not {value}")
        if not self.progress_interval >= 0:
            raise ConfigurationError("progress_interval must not be negative")
        if self.missed_heartbeats < 1:
            raise ConfigurationError("missed_heartbeats must be at least 1")
        if self.max_request_bytes < 1024 or self.max_agent_frame_bytes < 1024:
            raise ConfigurationError("request and frame limits must be at least 1024 bytes")
        if self.consensus != "standalone" and self.node_id not in self.peers:
            raise ConfigurationError(
                f"peers must include this node ({self.node_id}) with its raft address"
            )
        self._check_agent_tls()

    def _check_agent_tls(self) -> None:
        if self.agent_tls_cert is None:
            given = [n for n in ("agent_tls_key", "agent_tls_key_password", "agent_tls_ca")
                     if getattr(self, n) is not None]
            if given:
                raise ConfigurationError(
                    f"{', '.join(given)} given without agent_tls_cert: serving agents over TLS "
                    "needs the controller's certificate (agent_tls_cert) and key (agent_tls_key)"
                )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.agent_auth):
            raise ConfigurationError(
                f"agent_auth: the name of an auth method (token, mtls, ...), not {self.agent_auth!r}"
            )
        if self.agent_auth == "mtls" and (self.agent_tls_cert is None or self.agent_tls_ca is None):
            raise ConfigurationError(
                "agent_auth mtls identifies agents by their certificates: serve the agent port "
                "over TLS with client certificates (agent_tls_cert, agent_tls_key and "
                "agent_tls_ca, the CA that issues the agents' certificates)"
            )

    @property
    def agent_tls(self) -> bool:
        """Whether the agent port is served over TLS."""
        return self.agent_tls_cert is not None

    # -- derived --------------------------------------------------------------------------------

    def peer(self, node_id: str) -> PeerAddresses:
        """Addresses of ``node_id``; this node's own come from its listen addresses."""
        known = self.peers.get(node_id, PeerAddresses())
        if node_id != self.node_id:
            return known
        return PeerAddresses(
            raft=known.raft or self.listen_raft,
            agents=known.agents or self.listen_agents,
            http=known.http or self.listen_http,
        )

    @property
    def raft_members(self) -> dict[str, str]:
        members = {n: p.raft for n, p in self.peers.items() if p.raft}
        if self.listen_raft and self.node_id not in members:
            members[self.node_id] = self.listen_raft
        return members

    # -- parsing --------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ControllerSettings:
        """Settings from a YAML/flag mapping; unknown keys and bad values are refused."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("the controller configuration must be a mapping")
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigurationError(
                    f"unknown setting {key!r}; known: {', '.join(sorted(known))}"
                )
            if value is None:
                continue
            values[name] = _convert(name, value)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None


def parse_peers(value: Any) -> dict[str, PeerAddresses]:
    """``id=host:port,...`` (Raft addresses) or a mapping ``id`` → ``host:port`` or
    ``{raft, agents, http}``."""
    if isinstance(value, str):
        items: dict[str, Any] = {}
        for item in filter(None, (i.strip() for i in value.split(","))):
            name, sep, address = item.partition("=")
            if not sep or not name.strip():
                raise ConfigurationError(f"peers: expected id=host:port, got {item!r}")
            items[name.strip()] = address
        value = items
    if not isinstance(value, Mapping):
        raise ConfigurationError("peers: expected id=host:port,... or a mapping")
    peers: dict[str, PeerAddresses] = {}
    for name, spec in value.items():
        if isinstance(spec, str):
            peers[str(name)] = PeerAddresses(raft=check_address(spec, f"peers.{name}"))
        elif isinstance(spec, Mapping):
            unknown = set(spec) - {"raft", "agents", "http"}
            if unknown:
                raise ConfigurationError(f"peers.{name}: unknown key(s) {sorted(unknown)}")
            peers[str(name)] = PeerAddresses(**{
                k: check_address(str(v), f"peers.{name}.{k}") for k, v in spec.items()
            })
        else:
            raise ConfigurationError(f"peers.{name}: expected host:port or a mapping")
    return peers


_FLOATS = {"heartbeat_interval", "progress_interval", "schedule_interval", "drain_timeout"}
_INTS = {"missed_heartbeats", "max_request_bytes", "max_agent_frame_bytes", "snapshot_every"}


def _convert(name: str, value: Any) -> Any:
    try:
        if name == "data_dir":
            return Path(str(value)).expanduser()
        if name == "peers":
            return parse_peers(value)
        if name in ("raft_options", "agent_auth_options"):
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"{name} must be a mapping")
            return dict(value)
        if name in _FLOATS:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if name in _INTS:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}: {value!r} is not a valid value") from None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name}: expected a string, got {type(value).__name__}")
    return value


__all__ = [
    "DEFAULT_AGENT_PORT",
    "DEFAULT_HTTP_PORT",
    "ControllerSettings",
    "PeerAddresses",
    "check_address",
    "parse_peers",
    "split_address",
]
