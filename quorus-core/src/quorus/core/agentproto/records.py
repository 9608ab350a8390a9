"""The plain-data parts of agent-protocol messages: what an agent is and has (capabilities,
resources, location, security), what it measures (metrics, health), and the small values
messages share (a job attempt, a controller's address, transfer options).

All are frozen dataclasses; their ``__post_init__`` refuses values no correct peer sends, so
a received message that breaks a rule fails to decode instead of reaching the session.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from quorus.core.engine.model import OverwritePolicy
from quorus.core.netaddr import is_host_port

_SHA256 = re.compile(r"[0-9a-f]{64}")


def require(condition: bool, message: str) -> None:
    """Refuse a value: a :class:`ValueError` that decoding reports with the field's path."""
    if not condition:
        raise ValueError(message)


def require_attempt(job_id: str, attempt: int) -> None:
    require(bool(job_id), "job_id must not be empty")
    require(attempt >= 1, f"attempt must be 1 or more, got {attempt}")


def require_sha256(value: str) -> None:
    require(_SHA256.fullmatch(value) is not None, "sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True, slots=True, order=True)
class JobAttempt:
    """One attempt at one job: the unit an agent runs and a controller accepts results for."""

    job_id: str
    attempt: int

    def __post_init__(self) -> None:
        require_attempt(self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class ControllerAddress:
    """A controller an agent can connect to: its node id and ``host:port``."""

    controller_id: str
    address: str

    def __post_init__(self) -> None:
        require(bool(self.controller_id), "controller_id must not be empty")
        require(
            is_host_port(self.address),
            f"controller address must be host:port, got {self.address!r}",
        )


@dataclass(frozen=True, slots=True)
class AgentCapabilities:
    """What an agent can do: URI schemes of its installed protocol plugins, how many transfers
    it runs at once, its bandwidth in Mbit/s (``None``: unlimited), and named features."""

    protocols: tuple[str, ...]
    max_concurrent_transfers: int
    max_bandwidth_mbps: float | None = None
    supported_features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(self.max_concurrent_transfers >= 1, "max_concurrent_transfers must be 1 or more")
        require(
            self.max_bandwidth_mbps is None or self.max_bandwidth_mbps > 0,
            "max_bandwidth_mbps must be positive",
        )


@dataclass(frozen=True, slots=True)
class CpuInfo:
    cores: int = 0
    architecture: str = ""


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    total_mb: int = 0
    available_mb: int = 0


@dataclass(frozen=True, slots=True)
class StorageInfo:
    """Space in the agent's work directory."""

    total_gb: float = 0.0
    available_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    interfaces: tuple[str, ...] = ()
    total_bandwidth_mbps: float | None = None


@dataclass(frozen=True, slots=True)
class AgentResources:
    """The machine an agent runs on, as measured when it registers."""

    cpu: CpuInfo = CpuInfo()
    memory: MemoryInfo = MemoryInfo()
    storage: StorageInfo = StorageInfo()
    network: NetworkInfo = NetworkInfo()


@dataclass(frozen=True, slots=True)
class AgentLocation:
    """Where an agent is, for location-aware placement; empty strings mean unknown."""

    datacenter: str = ""
    zone: str = ""
    region: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityInfo:
    """How the agent can be authenticated: its certificate's fingerprint (when it has one)
    and the auth methods it supports."""

    certificate_fingerprint: str | None = None
    supported_auth_methods: tuple[str, ...] = ("token",)


class AgentStatus(enum.StrEnum):
    """What an agent says of itself in a heartbeat."""

    #: Ready for work, below its capacity.
    ACTIVE = "active"
    #: Running as many transfers as it can.
    BUSY = "busy"
    #: Finishing its transfers before it deregisters; takes no new work.
    DRAINING = "draining"
    #: Its own health checks fail; should get no new work.
    UNHEALTHY = "unhealthy"


class HealthState(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class LoadLevel(enum.StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    OVERLOADED = "overloaded"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CpuMetrics:
    usage_percent: float = 0.0
    load_average: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MemoryMetrics:
    usage_percent: float = 0.0
    available_mb: int = 0


@dataclass(frozen=True, slots=True)
class NetworkMetrics:
    utilization_percent: float = 0.0
    bytes_transferred: int = 0


@dataclass(frozen=True, slots=True)
class TransferCounts:
    """Transfers running now, and completed and failed since the agent started."""

    active: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class AgentMetrics:
    cpu: CpuMetrics = CpuMetrics()
    memory: MemoryMetrics = MemoryMetrics()
    network: NetworkMetrics = NetworkMetrics()
    transfers: TransferCounts = TransferCounts()


@dataclass(frozen=True, slots=True)
class AgentHealth:
    disk_space: HealthState = HealthState.UNKNOWN
    network_connectivity: HealthState = HealthState.UNKNOWN
    system_load: LoadLevel = LoadLevel.UNKNOWN


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """How an assigned transfer runs: the expected SHA-256 and size (``None``: not known in
    advance) or size range, the overwrite policy, a bandwidth limit in bytes/s (``None``:
    none), the retries the agent makes itself, protocol options (``SCHEME.KEY`` → value, as
    ``-o`` takes), the destination's mode, whether to create directories, the number of
    parallel ranged streams (``None``: the protocol's choice), and the storage roots the
    destination and a local source must stay inside (``None``: not confined; local files are
    then reached without following links, see :mod:`quorus.core.confine`)."""

    checksum: str | None = None
    size: int | None = None
    overwrite: OverwritePolicy = OverwritePolicy.FAIL
    bandwidth_limit: int | None = None
    retries: int = 3
    protocol_options: Mapping[str, str] = field(default_factory=dict)
    size_min: int | None = None
    size_max: int | None = None
    mode: int | None = None
    create_directories: bool = True
    streams: int | None = None
    storage_roots: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.checksum is not None:
            require_sha256(self.checksum)
        require(self.size is None or self.size >= 0, "size must not be negative")
        for bound in (self.size_min, self.size_max):
            require(bound is None or bound >= 0, "size bounds must not be negative")
        require(self.mode is None or 0 <= self.mode <= 0o7777, "mode must be 0 to 0o7777")
        require(self.streams is None or self.streams >= 1, "streams must be at least 1")
        require(
            self.bandwidth_limit is None or self.bandwidth_limit > 0,
            "bandwidth_limit must be positive",
        )
        require(self.retries >= 0, "retries must not be negative")
        require(self.storage_roots is None or len(self.storage_roots) <= 256,
                "at most 256 storage roots")


__all__ = [
    "AgentCapabilities",
    "AgentHealth",
    "AgentLocation",
    "AgentMetrics",
    "AgentResources",
    "AgentStatus",
    "ControllerAddress",
    "CpuInfo",
    "CpuMetrics",
    "HealthState",
    "JobAttempt",
    "LoadLevel",
    "MemoryInfo",
    "MemoryMetrics",
    "NetworkInfo",
    "NetworkMetrics",
    "SecurityInfo",
    "StorageInfo",
    "TransferCounts",
    "TransferOptions",
    "require",
    "require_attempt",
    "require_sha256",
]
