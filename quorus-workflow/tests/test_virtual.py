"""Virtual runs: sizes from a stat or the declared size, durations from bandwidth on a
simulated clock, predicted concurrency within the limits, bytes per tenant and namespace,
and timeouts that fire in the simulation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from quorus.core.protocols.memory import memory_store
from quorus.core.testing.fixtures import anyio_backend
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import load_text
from quorus.workflow.prepare import prepare
from quorus.workflow.virtual import STARTUP, VirtualReport, virtual_run

__all__ = ["anyio_backend"]  # every async test runs under asyncio and trio

pytestmark = pytest.mark.anyio
MB = 1_000_000


def transfer(name: str, size: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "source": {"uri": f"https://files.example/{name}"},
                            "destination": {"path": f"/nowhere/{name}"}}
    if size is not None:
        spec["expectedSize"] = size
    spec.update(extra)
    return spec


async def simulate(groups: list[dict[str, Any]], *, rate: int = 10 * MB,
                   stat_sources: bool = False, check_remote: bool = True,
                   **execution: Any) -> VirtualReport:
    spec: dict[str, Any] = {"groups": groups}
    if execution:
        spec["execution"] = execution
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf"}, "spec": spec}, sort_keys=False)
    prepared = prepare(load_text(text, "wf.yaml"))
    binder = Binder(prepared.workflow, RunContext(started_at=time.time()))
    return await virtual_run(prepared.plan, binder, rate=rate, stat_sources=stat_sources,
                             check_remote=check_remote)


def group(name: str, *transfers: dict[str, Any], **settings: Any) -> dict[str, Any]:
    execution = {k: v for k, v in settings.items() if k in ("strategy", "maxConcurrency",
                                                            "timeout")}
    entry: dict[str, Any] = {k: v for k, v in settings.items() if k not in execution}
    entry.update(name=name, transferGroup={"spec": {"execution": execution,
                                                   "transfers": list(transfers)}})
    return entry


async def test_sizes_come_from_a_stat_or_the_declared_size(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"x" * 3000)
    local = {"name": "local", "source": {"path": str(tmp_path / "real.bin")},
             "destination": {"path": str(tmp_path / "out.bin")}, "expectedSize": "1MB"}
    report = await simulate([group("g", local, transfer("declared", "20MB"),
                                   transfer("bounded", validation={"expectedSize": {
                                       "min": "1MB", "max": "2MB"}}),
                                   transfer("unknown"), strategy="parallel",
                                   maxConcurrency=4)], stat_sources=True)
    sizes = {s.step: (s.size, s.size_source) for s in report.steps}
    assert sizes == {"g/local": (3000, "stat"), "g/declared": (20 * MB, "expectedSize"),
                     "g/bounded": (2 * MB, "validation.expectedSize.max"),
                     "g/unknown": (0, "unknown")}
    assert report.unknown_sizes == ["g/unknown"]
    assert (tmp_path / "out.bin").exists() is False


@pytest.mark.parametrize("check_remote", [True, False])
async def test_offline_stats_local_sources_only(tmp_path: Path, check_remote: bool) -> None:
    # --offline: a local file is still stat'ed, so a condition on its size sees its bytes; a
    # remote (non-file) source is not looked at and falls back to its declared size.
    (tmp_path / "real.bin").write_bytes(b"x" * 3000)
    store = f"virtual-offline-{str(check_remote).lower()}"
    memory_store(store).put("/remote.bin", b"y" * 5000)
    local = {"name": "local", "source": {"path": str(tmp_path / "real.bin")},
             "destination": {"path": str(tmp_path / "out.bin")}}
    remote = {"name": "remote", "source": {"uri": f"memory://{store}/remote.bin"},
              "destination": {"path": str(tmp_path / "remote.bin")}, "expectedSize": "1MB"}
    after = {"name": "after", "source": {"path": str(tmp_path / "real.bin")},
             "destination": {"path": str(tmp_path / "after.bin")}, "dependsOn": ["local"],
             "condition": "${local.bytes} > 0"}
    report = await simulate([group("g", local, remote, after, strategy="parallel")],
                            stat_sources=True, check_remote=check_remote)
    sizes = {s.step: (s.size, s.size_source) for s in report.steps}
    assert sizes["g/local"] == (3000, "stat")
    assert sizes["g/remote"] == ((5000, "stat") if check_remote else (MB, "expectedSize"))
    assert {s.step: s.status for s in report.steps}["g/after"] == "completed"
    assert not (tmp_path / "out.bin").exists()


async def test_duration_follows_bandwidth_and_the_assumed_rate() -> None:
    report = await simulate([group("g", transfer("a", "100MB", bandwidth="50MB/s"),
                                   transfer("b", "30MB"), strategy="sequential")])
    steps = {s.step: s for s in report.steps}
    assert steps["g/a"].end == pytest.approx(STARTUP + 2.0)
    assert steps["g/b"].start == pytest.approx(STARTUP + 2.0)
    assert steps["g/b"].end == pytest.approx(2 * STARTUP + 2.0 + 3.0)
    assert report.duration == pytest.approx(2 * STARTUP + 5.0)
    assert report.summary.status.value == "completed"


async def test_peak_concurrency_honours_group_and_workflow_limits() -> None:
    many = [transfer(f"t{i}", "10MB") for i in range(6)]
    grouped = await simulate([group("g", *many, strategy="parallel", maxConcurrency=3)])
    assert grouped.peak_concurrency == 3
    assert grouped.duration == pytest.approx(2 * (STARTUP + 1.0))
    limited = await simulate([group("a", *many[:3], strategy="parallel", maxConcurrency=3),
                              group("b", *many[3:], strategy="parallel", maxConcurrency=3)],
                             parallelism=2)
    assert limited.peak_concurrency == 2
    sequential = await simulate([group("g", *many, strategy="sequential", maxConcurrency=3)])
    assert sequential.peak_concurrency == 1


async def test_bytes_are_counted_per_tenant_and_namespace() -> None:
    report = await simulate([
        group("acme", transfer("a", "5MB"), transfer("b", "1MB"), tenant="acme-corp",
              namespace="finance"),
        group("partner", transfer("c", "2MB"), tenant="partner-corp", dependsOn=["acme"]),
    ])
    assert report.bytes_by_tenant == {"acme-corp/finance": 6 * MB,
                                      "partner-corp/default": 2 * MB}


async def test_a_step_timeout_fires_in_the_simulation() -> None:
    report = await simulate([group("g", transfer("big", "1GB", timeout="10s"),
                                   transfer("after", "1MB", dependsOn=["big"]),
                                   strategy="parallel")])
    steps = {s.step: s for s in report.steps}
    assert steps["g/big"].status == "failed"
    assert steps["g/big"].end == pytest.approx(10.0)
    big = report.summary.step("g/big")
    assert big is not None and big.error == "timed out after 10 s"
    assert steps["g/after"].status == "skipped"
    assert report.summary.status.value == "failed"
    assert report.to_json()["status"] == "failed"


async def test_conditions_see_simulated_results() -> None:
    report = await simulate([group("g", transfer("a", "3MB"),
                                   transfer("b", "1MB", dependsOn=["a"],
                                            condition="${a.bytes} > 5000000"),
                                   strategy="parallel")])
    assert {s.step: s.status for s in report.steps} == {"g/a": "completed",
                                                        "g/b": "skipped"}
