"""An agent's settings and their defaults: which controllers, who it is, where it works, how
much it runs at once, where it is, and how it proves who it is (a token, a TLS client
certificate, or both).

The embedded default joins a controller on this machine: ``127.0.0.1`` at
:data:`DEFAULT_CONTROLLER_PORT`, with the token the controller wrote in its data directory
(:data:`DEFAULT_TOKEN_FILE`). The agent id defaults to one derived from the host name,
created once and kept in the work directory so it survives restarts.

Over TLS (``tls_ca``: the CA that issued the controllers' certificates) the agent verifies
each controller, and the name in its certificate unless ``tls_check_hostname`` is off; with
``tls_cert``/``tls_key`` it presents its own certificate, which a controller that
authenticates agents by certificate (``mtls``) takes as the agent's identity: the agent id
must be the name the certificate carries.

The token goes to the controllers' auth method named ``auth_method``: ``token`` (the
controllers' own token, or a tenant's API token) unless the controllers judge agents by an
installed method of the ``quorus.auth`` group (``agent_auth``) that reads token-shaped
credentials; the agent then names that method.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quorus.core.agentproto import AgentLocation, Backoff, ControllerAddress
from quorus.core.auth import TOKEN_FILE
from quorus.core.controller.settings import DEFAULT_AGENT_PORT
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret
from quorus.core.tls import client_context

#: The port a controller listens on for agents unless told otherwise (the controller's own
#: default, so the two cannot drift apart).
DEFAULT_CONTROLLER_PORT = DEFAULT_AGENT_PORT
#: The token file the embedded controller writes in its data directory (``./quorus-data``).
DEFAULT_TOKEN_FILE = f"quorus-data/{TOKEN_FILE}"
#: The agent's own directory: its id, its lock; the disk space it reports is measured here.
DEFAULT_WORK_DIR = "quorus-agent"
DEFAULT_MAX_CONCURRENT = 4
#: Seconds a drain (SIGTERM, or the controller's) lets running transfers finish.
DEFAULT_DRAIN_TIMEOUT = 30.0
#: Seconds allowed to open a TCP connection to a controller.
CONNECT_TIMEOUT = 5.0
AGENT_ID_FILE = "agent-id"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class AgentConfig:
    """Everything an :class:`~quorus.core.agent.runtime.AgentRuntime` needs.

    ``bandwidth_limit`` is bytes/s per transfer (``None``: none); ``labels`` are matched by
    the jobs' affinity rules; ``protocols`` restricts the schemes advertised (``None``: every
    protocol plugin that loads). ``token`` may be ``None`` when the agent proves who it is by
    its certificate alone (``tls_*``, see the module docstring). ``tenant`` (and
    ``namespace``) dedicate the agent to a tenant: with tenancy on the controllers only that
    tenant's jobs (and its descendants') run on it, and registering needs the right to
    (``agents.register`` there).
    """

    controllers: tuple[ControllerAddress, ...]
    agent_id: str
    token: Secret | None
    work_dir: Path
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    location: AgentLocation = field(default_factory=AgentLocation)
    labels: Mapping[str, str] = field(default_factory=dict)
    bandwidth_limit: int | None = None
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    protocols: tuple[str, ...] | None = None
    features: tuple[str, ...] = ("resume", "sha256-verify", "attempt-staging")
    backoff: Backoff = field(default_factory=Backoff)
    connect_timeout: float = CONNECT_TIMEOUT
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_key_password: Secret | None = None
    tls_check_hostname: bool = True
    tenant: str = "default"
    namespace: str = "default"
    auth_method: str = "token"

    def __post_init__(self) -> None:
        if not self.controllers:
            raise ConfigurationError("an agent needs at least one controller address")
        if self.max_concurrent < 1:
            raise ConfigurationError(f"max concurrent transfers must be 1 or more, not {self.max_concurrent}")
        if self.drain_timeout < 0:
            raise ConfigurationError("the drain timeout must not be negative")
        if self.bandwidth_limit is not None and self.bandwidth_limit <= 0:
            raise ConfigurationError("the bandwidth limit must be positive")
        if self.tls_cert is None and (self.tls_key or self.tls_key_password):
            raise ConfigurationError("a TLS key was given without its certificate (--tls-cert)")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ConfigurationError(
                "a client certificate is for a TLS link: give --tls-ca, the CA that issued the "
                "controllers' certificates, too"
            )
        if self.token is None and self.tls_cert is None:
            raise ConfigurationError(
                "the agent has no way to prove who it is: give a token (--token) or a client "
                "certificate (--tls-cert, --tls-key)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.auth_method):
            raise ConfigurationError(
                "--auth-method: the name of the controllers' auth method the token is for "
                f"(token, or an installed one), not {self.auth_method!r}"
            )

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS client context for controller links, ``None`` for plain TCP."""
        if self.tls_ca is None:
            return None
        return client_context(
            self.tls_ca, self.tls_cert, self.tls_key, key_password=self.tls_key_password,
            check_hostname=self.tls_check_hostname, setting="tls",
        )


def parse_controllers(text: str | Sequence[str]) -> tuple[ControllerAddress, ...]:
    """``host:port,host:port`` (or a list of them) as controller addresses; a bare host gets
    :data:`DEFAULT_CONTROLLER_PORT`. The address stands in for the controller's id until the
    controller names itself."""
    items = [text] if isinstance(text, str) else list(text)
    addresses: list[ControllerAddress] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part:
                addresses.append(_controller_address(part))
    if not addresses:
        raise ConfigurationError("no controller address given: use host:port[,host:port...]")
    return tuple(addresses)


def _controller_address(text: str) -> ControllerAddress:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else str(DEFAULT_CONTROLLER_PORT)
        valid = bool(bracket) and (not rest or rest.startswith(":"))
    elif ":" in text:
        host, _, port = text.partition(":")
        valid = ":" not in port
    else:
        host, port, valid = text, str(DEFAULT_CONTROLLER_PORT), True
    if not (valid and host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigurationError(
            f"controller address {text!r}: expected host:port, e.g. 10.0.0.5:{DEFAULT_CONTROLLER_PORT}"
        )
    address = f"{host}:{port}"
    return ControllerAddress(address, address)


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """``key=value`` items as a mapping."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"label {item!r}: expected key=value")
        labels[key.strip()] = value.strip()
    return labels


def resolve_token(spec: str | None, *, cwd: Path | None = None) -> Secret:
    """The token to present: ``spec`` as text, ``env:NAME`` or ``file:PATH``; without one, the
    embedded controller's token file under ``cwd``."""
    if spec is None:
        path = (cwd or Path.cwd()) / DEFAULT_TOKEN_FILE
        if not path.is_file():
            raise ConfigurationError(
                f"no token given and {path} does not exist: start quorus-controller in this "
                "directory first, or pass --token (text, env:NAME or file:PATH)"
            )
        spec = f"file:{path}"
    secret = resolve_secret(spec)
    assert secret is not None
    if not secret.reveal():
        raise ConfigurationError(f"the token from {secret.source} is empty")
    return secret


def default_agent_id(hostname: str | None = None) -> str:
    """A new id from the host name: ``HOST-xxxxxxxx``."""
    host = _ID_UNSAFE.sub("-", (hostname or socket.gethostname()).split(".")[0]) or "agent"
    return f"{host[:48]}-{uuid.uuid4().hex[:8]}"


def stable_agent_id(work_dir: Path, given: str | None = None) -> str:
    """The agent's id: ``given`` when set, else the one kept in ``work_dir`` (created the
    first time). The id is written back so a restart without ``--agent-id`` keeps it."""
    path = work_dir / AGENT_ID_FILE
    if given is None and path.is_file():
        kept = path.read_text(encoding="utf-8").strip()
        if kept:
            return kept
    agent_id = given or default_agent_id()
    if not agent_id.isprintable() or len(agent_id) > 256:
        raise ConfigurationError(f"agent id {agent_id!r}: 1 to 256 printable characters")
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{AGENT_ID_FILE}.{os.getpid()}")
    tmp.write_text(agent_id + "\n", encoding="utf-8")
    tmp.replace(path)
    return agent_id


__all__ = [
    "AGENT_ID_FILE",
    "CONNECT_TIMEOUT",
    "DEFAULT_CONTROLLER_PORT",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_TOKEN_FILE",
    "DEFAULT_WORK_DIR",
    "AgentConfig",
    "default_agent_id",
    "parse_controllers",
    "parse_labels",
    "resolve_token",
    "stable_agent_id",
]
