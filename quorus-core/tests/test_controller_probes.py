"""The event-loop lag probe: buckets as Prometheus expects them, and a loop held up by
synchronous work is seen as late, under asyncio and trio; the collector's pauses recorded by
generation; the start-up frozen out of later collections."""

from __future__ import annotations

import gc
import subprocess
import sys
import time

import anyio
import pytest
from quorus.core.controller.probes import BUCKETS, GcPauses, GenerationalFreeze, LoopLagProbe


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


def test_collections_are_recorded_by_generation_while_installed() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # once only
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert pauses._callback not in gc.callbacks
    assert pauses.generations[0].observations >= 1
    assert pauses.generations[2].observations >= 1
    before = [h.observations for h in pauses.generations]
    gc.collect()
    assert [h.observations for h in pauses.generations] == before


def test_freezing_the_start_up_keeps_it_out_of_later_collections() -> None:
    # In a child process: freezing is for good, and this test process must stay collectable.
    code = (
        "import gc\n"
        "from quorus.core.controller.probes import freeze_startup\n"
        "kept = [[i] for i in range(50_000)]\n"
        "frozen = freeze_startup()\n"
        "assert frozen >= 50_000, frozen\n"
        "assert len(gc.get_objects()) < frozen / 10\n"
        "cycle = []; cycle.append(cycle); del cycle\n"
        "assert gc.collect() >= 1  # what is made later is still collected\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_generational_freezing_keeps_full_collections_to_what_is_new_and_thaws_on_growth(
) -> None:
    # In a child process: freezing is process-wide.
    code = '''
import gc, weakref
from quorus.core.controller.probes import GenerationalFreeze

class Node:
    pass

now = [0.0]
policy = GenerationalFreeze(growth=2.0, minimum=1_000, interval=60.0, clock=lambda: now[0])
policy.install()
policy.step()
assert gc.get_freeze_count() == 0  # no full collection yet: nothing to do

kept = [[i] for i in range(5_000)]
gc.collect()
policy.step()  # survivors frozen; above the minimum from nothing, but too soon after the last
assert policy.complete == 0
now[0] = 61.0
gc.collect()
policy.step()  # a minute later: one complete collection
assert policy.complete == 1
base = gc.get_freeze_count()
assert base >= 5_000

node = Node()
node.me = node  # a cycle, alive when the next full collection's survivors are frozen
ref = weakref.ref(node)
gc.collect()
policy.step()
assert policy.complete == 1 and gc.get_freeze_count() > base
del node
gc.collect()
assert ref() is not None  # frozen garbage cycle: no collection looks at it for now

more = [[i] for i in range(3 * base)]
gc.collect()
policy.step()  # more than doubled, but within the interval: not yet
assert policy.complete == 1 and ref() is not None
now[0] = 122.0
gc.collect()
policy.step()  # the frozen objects have more than doubled: thaw and collect everything
assert policy.complete == 2
assert ref() is None
assert gc.get_freeze_count() >= 4 * base

acyclic = [Node() for _ in range(10)]
refs = [weakref.ref(n) for n in acyclic]
gc.collect()
policy.step()
del acyclic
assert all(r() is None for r in refs)  # frozen or not, freed once unreferenced
policy.uninstall()
print("ok")
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_growth_must_be_above_one() -> None:
    with pytest.raises(ValueError, match="growth"):
        GenerationalFreeze(growth=1.0)
