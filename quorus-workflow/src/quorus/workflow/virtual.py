"""Virtual run: the workflow's logic played out on a simulated clock, with no byte moved.

Each transfer's size comes from a stat of its source (when reachable; offline, only local
``file`` sources are stat'ed), else its declared ``expectedSize``, else the bounds of
``validation.expectedSize``; its duration is the size over its ``bandwidth`` (or the assumed
link rate) plus a fixed start-up cost. The same
:class:`~quorus.workflow.execution.Execution` as a real run decides what starts when, so
dependencies, strategies, concurrency limits, conditions (every simulated transfer succeeds)
and timeouts behave as they would. The report predicts the duration, the peak concurrency and
the bytes per tenant and namespace.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from quorus.core.engine import TransferEngine
from quorus.core.errors import QuorusError
from quorus.core.uri import parse_location
from quorus.workflow.binding import Binder
from quorus.workflow.bound import bind_step
from quorus.workflow.execution import Execution
from quorus.workflow.planner import Plan, PlannedStep
from quorus.workflow.summary import ExecutionSummary, StepStatus

#: The link rate assumed for a transfer that declares none: 1 Gbit/s.
DEFAULT_RATE = 125_000_000
#: Simulated start-up cost of one transfer (connection, stat, rename), in seconds.
STARTUP = 0.05
STAT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class VirtualStep:
    step: str
    size: int
    size_source: str
    start: float | None
    end: float | None
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "size": self.size, "size_from": self.size_source,
                "start": self.start, "end": self.end, "status": self.status}


@dataclass(slots=True)
class VirtualReport:
    """What the simulated run predicts."""

    duration: float
    peak_concurrency: int
    bytes_by_tenant: dict[str, int]
    steps: list[VirtualStep]
    summary: ExecutionSummary
    unknown_sizes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"duration": self.duration, "peak_concurrency": self.peak_concurrency,
                "bytes_by_tenant": self.bytes_by_tenant,
                "status": str(self.summary.status), "unknown_sizes": self.unknown_sizes,
                "steps": [s.to_json() for s in self.steps]}


async def virtual_run(plan: Plan, binder: Binder, *, rate: int = DEFAULT_RATE,
                      stat_sources: bool = True, check_remote: bool = True) -> VirtualReport:
    """Simulate ``plan`` (see the module docstring). ``stat_sources`` false stats no source;
    ``check_remote`` false (``--offline``) stats local sources only, contacting no server."""
    sizes = await _sizes(plan, binder, stat_sources, check_remote)
    started = binder.context.started_at
    # Conditions see the simulated results: every transfer succeeds with its size in bytes.
    execution = Execution("virtual", plan, binder.judge, started_at=started, mode="virtual")
    by_id = plan.by_id()
    now = started
    ends: list[tuple[float, str]] = []
    peak = 0
    while not execution.status.finished:
        decisions = execution.decide(now)
        for decision in decisions:
            execution.apply(decision, now)
            if decision.kind == "start":
                step = by_id[decision.target].step
                duration = STARTUP + sizes[decision.target][0] / (step.bandwidth or rate)
                heapq.heappush(ends, (now + duration, decision.target))
            elif decision.kind == "abort":
                execution.finish_step(decision.target, StepStatus.FAILED, now,
                                      error=decision.reason)
                ends = [(t, s) for t, s in ends if s != decision.target]
                heapq.heapify(ends)
        peak = max(peak, len(execution.running))
        if decisions:
            continue
        deadline = execution.next_deadline()
        if not ends and deadline is None:
            break  # nothing can happen any more (not expected: decide() finishes)
        upcoming = ends[0][0] if ends else float("inf")
        if deadline is not None and deadline < upcoming:
            now = deadline
            continue
        now, step_id = heapq.heappop(ends)
        execution.finish_step(step_id, StepStatus.COMPLETED, now, bytes=sizes[step_id][0])
        await anyio.lowlevel.checkpoint()
    summary = execution.summary()
    tenants: dict[str, int] = {}
    for outcome in summary.steps:
        group = plan.workflow.group(by_id[outcome.step].group)
        key = f"{group.tenant}/{group.namespace}"
        tenants[key] = tenants.get(key, 0) + outcome.bytes
    steps = [VirtualStep(o.step, sizes[o.step][0], sizes[o.step][1], _rel(o.started_at, started),
                         _rel(o.finished_at, started), str(o.status)) for o in summary.steps]
    return VirtualReport(
        duration=(execution.finished_at or now) - started, peak_concurrency=peak,
        bytes_by_tenant=tenants, steps=steps, summary=summary,
        unknown_sizes=[s for s, (_, origin) in sizes.items() if origin == "unknown"])


async def _sizes(plan: Plan, binder: Binder, stat_sources: bool, check_remote: bool
                 ) -> Mapping[str, tuple[int, str]]:
    sizes: dict[str, tuple[int, str]] = {}
    async with TransferEngine() as engine:
        for planned in plan.steps:
            sizes[planned.step_id] = await _size(planned, binder, engine, stat_sources,
                                                 check_remote)
    return sizes


async def _size(planned: PlannedStep, binder: Binder, engine: TransferEngine,
                stat_sources: bool, check_remote: bool) -> tuple[int, str]:
    step = planned.step
    if stat_sources:
        try:
            bound = bind_step(binder, step, binder.workflow.group(planned.group), None)
            location = parse_location(bound.source)
            if not bound.protocol_options and (check_remote or location.scheme == "file"):
                with anyio.fail_after(STAT_TIMEOUT):
                    info = await engine.protocol(location).stat(location)
                if info.size is not None:
                    return info.size, "stat"
        except (QuorusError, TimeoutError):
            pass
    if step.expected_size is not None:
        return step.expected_size, "expectedSize"
    if step.size_max is not None:
        return step.size_max, "validation.expectedSize.max"
    if step.size_min is not None:
        return step.size_min, "validation.expectedSize.min"
    return 0, "unknown"


def _rel(at: float | None, origin: float) -> float | None:
    return None if at is None else at - origin


__all__ = ["DEFAULT_RATE", "VirtualReport", "VirtualStep", "virtual_run"]
