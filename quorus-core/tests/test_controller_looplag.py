"""The event-loop lag probe: buckets as Prometheus expects them, and a loop held up by
synchronous work is seen as late, under asyncio and trio."""

from __future__ import annotations

import time

import anyio
import pytest
from quorus.core.controller.looplag import BUCKETS, LoopLagProbe


def test_observations_fall_into_cumulative_buckets() -> None:
    probe = LoopLagProbe(0.05)
    for lag in (-0.001, 0.0, 0.0007, 0.003, 0.003, 0.2, 7.0):
        probe.observe(lag)
    cumulative = dict(probe.cumulative())
    assert list(cumulative) == [*map(repr, BUCKETS), "+Inf"]
    assert cumulative["0.001"] == 3  # late by nothing (or early), and 0.7 ms
    assert cumulative["0.005"] == 5
    assert cumulative["0.25"] == 6
    assert cumulative["2.5"] == 6
    assert cumulative["+Inf"] == probe.observations == 7
    assert probe.maximum == 7.0
    assert probe.total == pytest.approx(7.2067)


def test_an_observation_on_a_bound_counts_in_that_bucket() -> None:
    probe = LoopLagProbe()
    probe.observe(0.01)
    assert dict(probe.cumulative())["0.01"] == 1
    assert dict(probe.cumulative())["0.005"] == 0


def test_the_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopLagProbe(0)


@pytest.mark.anyio
async def test_a_loop_held_by_synchronous_work_is_seen_late() -> None:
    probe = LoopLagProbe(0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(probe.run)
        await anyio.sleep(0.05)
        time.sleep(0.2)  # a long stretch of work that never yields
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert probe.observations >= 3
    assert probe.maximum >= 0.15
    assert dict(probe.cumulative())["0.1"] < probe.observations
