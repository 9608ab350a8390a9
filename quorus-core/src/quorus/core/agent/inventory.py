"""What an agent has and how it is doing: the protocols it can load, the machine's resources
when it registers, and the metrics and health each heartbeat carries.

Measured with the standard library only (``/proc`` on Linux, ``os`` and ``shutil``
elsewhere); a value that cannot be read is reported as unknown (zero), never guessed.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from quorus.core.agentproto import (
    AgentHealth,
    AgentMetrics,
    AgentResources,
    CpuInfo,
    CpuMetrics,
    HealthState,
    LoadLevel,
    MemoryInfo,
    MemoryMetrics,
    NetworkInfo,
    NetworkMetrics,
    StorageInfo,
    TransferCounts,
)
from quorus.core.errors import QuorusError
from quorus.core.plugins import PROTOCOLS, PluginRegistry, registry

_GB = 1024**3
#: Free space in the work directory below which the agent calls its disk degraded, and
#: below which it calls itself unhealthy (takes no new work).
DISK_DEGRADED_FRACTION = 0.05
DISK_UNHEALTHY_BYTES = 64 * 1024 * 1024


def loadable_protocols(plugins: PluginRegistry | None = None) -> tuple[str, ...]:
    """The URI schemes whose protocol plugin actually loads here (a plugin that is installed
    but fails to import, or is disabled, is not advertised)."""
    reg = plugins or registry()
    schemes: list[str] = []
    for name in reg.names(PROTOCOLS):
        try:
            reg.load(PROTOCOLS, name)
        except QuorusError:
            continue
        schemes.append(name)
    return tuple(schemes)


def _meminfo() -> dict[str, int]:
    """``/proc/meminfo`` in kB; empty where there is none."""
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                number = rest.split()
                if number and number[0].isdigit():
                    values[key] = int(number[0])
    except OSError:
        pass
    return values


def _interfaces() -> tuple[str, ...]:
    try:
        return tuple(name for _, name in socket.if_nameindex())
    except OSError:
        return ()


def measure_resources(work_dir: Path) -> AgentResources:
    """The machine as the registration describes it; storage is that of ``work_dir``."""
    memory = _meminfo()
    try:
        disk = shutil.disk_usage(work_dir)
        storage = StorageInfo(round(disk.total / _GB, 3), round(disk.free / _GB, 3))
    except OSError:
        storage = StorageInfo()
    return AgentResources(
        cpu=CpuInfo(os.cpu_count() or 0, platform.machine()),
        memory=MemoryInfo(memory.get("MemTotal", 0) // 1024, memory.get("MemAvailable", 0) // 1024),
        storage=storage,
        network=NetworkInfo(_interfaces()),
    )


@dataclass
class _CpuSample:
    busy: int
    total: int


def _cpu_sample() -> _CpuSample | None:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:] if value.isdigit()]
    idle = sum(ticks[3:5])  # idle and iowait
    return _CpuSample(sum(ticks) - idle, sum(ticks))


class StatusMeter:
    """Measures what a heartbeat reports: CPU, memory, network use and transfer counts, and
    the health of the disk, the connection and the load.

    The runtime tells it about transfers (:meth:`transfer_started`, :meth:`transfer_ended`,
    :meth:`bytes_moved`); :meth:`sample` reads the machine.
    """

    def __init__(self, work_dir: Path, *, bandwidth_limit: int | None = None) -> None:
        self.work_dir = work_dir
        self.bandwidth_limit = bandwidth_limit
        self.active = 0
        self.completed = 0
        self.failed = 0
        self.bytes_transferred = 0
        self._last_cpu = _cpu_sample()
        self._last_time: float | None = None
        self._last_bytes = 0

    def transfer_started(self) -> None:
        self.active += 1

    def transfer_ended(self, *, ok: bool | None) -> None:
        """An attempt ended: completed (``True``), failed (``False``) or aborted (``None``)."""
        self.active = max(0, self.active - 1)
        if ok is True:
            self.completed += 1
        elif ok is False:
            self.failed += 1

    def bytes_moved(self, count: int) -> None:
        self.bytes_transferred += max(0, count)

    def sample(self, now: float, *, connected: bool) -> tuple[AgentMetrics, AgentHealth, bool]:
        """Metrics, health, and whether the agent should call itself unhealthy."""
        cpu = self._cpu_percent()
        load: tuple[float, ...]
        try:
            load = os.getloadavg()
        except OSError:
            load = ()
        memory = _meminfo()
        total_kb = memory.get("MemTotal", 0)
        available_kb = memory.get("MemAvailable", 0)
        used = 100.0 * (1 - available_kb / total_kb) if total_kb else 0.0
        utilisation = 0.0
        if self._last_time is not None and now > self._last_time and self.bandwidth_limit:
            rate = (self.bytes_transferred - self._last_bytes) / (now - self._last_time)
            capacity = self.bandwidth_limit * max(self.active, 1)
            utilisation = min(100.0, 100.0 * rate / capacity)
        self._last_time, self._last_bytes = now, self.bytes_transferred
        metrics = AgentMetrics(
            cpu=CpuMetrics(round(cpu, 1), tuple(round(x, 2) for x in load)),
            memory=MemoryMetrics(round(used, 1), available_kb // 1024),
            network=NetworkMetrics(round(utilisation, 1), self.bytes_transferred),
            transfers=TransferCounts(self.active, self.completed, self.failed),
        )
        disk = self._disk_health()
        health = AgentHealth(
            disk_space=disk,
            network_connectivity=HealthState.HEALTHY if connected else HealthState.DEGRADED,
            system_load=self._load_level(load),
        )
        return metrics, health, disk is HealthState.UNHEALTHY

    def _cpu_percent(self) -> float:
        now = _cpu_sample()
        before, self._last_cpu = self._last_cpu, now
        if now is None or before is None or now.total <= before.total:
            return 0.0
        return 100.0 * (now.busy - before.busy) / (now.total - before.total)

    def _disk_health(self) -> HealthState:
        try:
            disk = shutil.disk_usage(self.work_dir)
        except OSError:
            return HealthState.UNKNOWN
        if disk.free < DISK_UNHEALTHY_BYTES:
            return HealthState.UNHEALTHY
        if disk.total and disk.free / disk.total < DISK_DEGRADED_FRACTION:
            return HealthState.DEGRADED
        return HealthState.HEALTHY

    @staticmethod
    def _load_level(load: tuple[float, ...]) -> LoadLevel:
        cores = os.cpu_count() or 0
        if not load or not cores:
            return LoadLevel.UNKNOWN
        per_core = load[0] / cores
        if per_core < 1.0:
            return LoadLevel.NORMAL
        return LoadLevel.HIGH if per_core < 2.0 else LoadLevel.OVERLOADED


__all__ = [
    "DISK_DEGRADED_FRACTION",
    "DISK_UNHEALTHY_BYTES",
    "StatusMeter",
    "loadable_protocols",
    "measure_resources",
]
