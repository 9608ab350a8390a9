"""Probes for operators: how late the controller's event loop runs what is due, and why.

Everything a controller does — agent frames, REST requests, applying committed commands,
scheduling — shares one event loop, so a long stretch of work anywhere delays everything
else. :class:`LoopLagProbe` sleeps for a short period again and again and records by how much
each wake-up came late; ``/metrics`` shows the distribution as the histogram
``quorus_event_loop_lag_seconds``. A p99 in tens of milliseconds means assignments, heartbeat
acknowledgements and API answers wait that long, whatever their own cost.

One common cause is the garbage collector: a full collection stops the process for as long as
it takes to look at every container object it tracks. :class:`GcPauses` records each
collection's duration by generation (``quorus_gc_pause_seconds``), and :func:`freeze_startup`
takes what the process built to start (modules, the API's routes and models: objects that live
as long as the process) out of every later collection.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable
from typing import Any

import anyio

#: Upper bounds (seconds) of the histogram's buckets; the last bucket is everything above.
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)


class Histogram:
    """Durations counted in the buckets of :data:`BUCKETS`, with their sum and maximum."""

    def __init__(self) -> None:
        #: Observations per bucket of :data:`BUCKETS`, then those above the last bound.
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.maximum = 0.0

    @property
    def observations(self) -> int:
        return sum(self.counts)

    def observe(self, lag: float) -> None:
        """Record one duration (a wake-up ``lag`` seconds late; negative counts as 0)."""
        lag = max(lag, 0.0)
        self.counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self.total += lag
        if lag > self.maximum:
            self.maximum = lag

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations at or below it)`` per bucket, ``+Inf`` last: the
        form of a Prometheus histogram."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class LoopLagProbe(Histogram):
    """Wakes every ``period`` seconds and records how late it woke."""

    def __init__(self, period: float = 0.05, *,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if period <= 0:
            raise ValueError("the probe's period must be positive")
        super().__init__()
        self.period = period
        self._clock = clock

    async def run(self) -> None:
        """Probe until cancelled."""
        clock = self._clock
        while True:
            started = clock()
            await anyio.sleep(self.period)
            self.observe(clock() - started - self.period)


class GcPauses:
    """The garbage collector's pauses, a :class:`Histogram` per generation, recorded through
    :data:`gc.callbacks` between :meth:`install` and :meth:`uninstall`."""

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.generations = [Histogram() for _ in range(3)]
        self._clock = clock
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
        else:
            generation = min(int(info.get("generation", 2)), 2)
            self.generations[generation].observe(self._clock() - self._started)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        while self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


#: The process's collector pauses (one collector per process, so one record of it).
GC_PAUSES = GcPauses()


class GenerationalFreeze:
    """Keep full collections proportional to what is new, not to all that is alive.

    A controller keeps its state in memory, and it grows with every job; CPython's full
    collection goes through every container object it tracks and stops the process meanwhile
    (about 100-200 ms once ten thousand jobs are held, longer as more are). After each full
    collection the collector found, :meth:`step` freezes what survived (:func:`gc.freeze`), so
    the next one only goes through objects made since. What is frozen is freed as usual when
    nothing refers to it; only garbage *cycles* among frozen objects would stay. So whenever
    the frozen objects have grown ``growth`` times since the last complete collection (and
    number at least ``minimum``), and at least ``interval`` seconds have passed since it (or
    since :meth:`install`), :meth:`step` thaws everything and collects it all once. That
    pause is as long as a full collection was before, but it comes at most once per
    ``interval`` and once per doubling of the state, rather than every few seconds; frozen
    garbage is bounded by what ``interval`` and ``growth`` allow.

    :meth:`step` runs on the event loop (the collector's callback only notes that a full
    collection happened: nothing is done inside the collector).
    """

    def __init__(self, *, growth: float = 2.0, minimum: int = 200_000,
                 interval: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if growth <= 1:
            raise ValueError("growth must be above 1")
        self.growth = growth
        self.minimum = minimum
        self.interval = interval
        self._clock = clock
        self._last_complete = clock()
        self._collected = False
        # Counted once per complete collection: gc.get_freeze_count() walks every frozen
        # object, hundreds of thousands of them, so it is not called at every step.
        self._base = self._frozen = 0
        #: Complete collections made by :meth:`step` (for measurements and tests).
        self.complete = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._collected = True

    def install(self) -> None:
        self._base = self._frozen = gc.get_freeze_count()
        self._last_complete = self._clock()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        while self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def step(self) -> None:
        """Freeze the survivors of a full collection made since the last step; thaw and
        collect everything when the frozen objects have grown enough."""
        if not self._collected:
            return
        self._collected = False
        # What is about to be frozen: right after a full collection, the survivors since the
        # last freeze (the collector's generations hold nothing else).
        self._frozen += sum(len(gc.get_objects(generation)) for generation in range(3))
        gc.freeze()
        if self._frozen > max(self.minimum, self.growth * self._base) and (
                self._clock() - self._last_complete >= self.interval):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._base = self._frozen = gc.get_freeze_count()
            self._last_complete = self._clock()
            self.complete += 1

    async def run(self, period: float = 0.1) -> None:
        """:meth:`step` every ``period`` seconds until cancelled."""
        while True:
            await anyio.sleep(period)
            self.step()


def freeze_startup() -> int:
    """Collect once, then move every object alive now out of the collector's sight
    (:func:`gc.freeze`; only :class:`GenerationalFreeze`'s rare complete collection looks at
    them again): what a process builds to start lives as long as it does, and a controller
    builds some hundreds of thousands of such objects (modules, the API's routes and models),
    which every full collection would otherwise go through again. Returns how many objects
    are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


__all__ = [
    "BUCKETS",
    "GC_PAUSES",
    "GcPauses",
    "GenerationalFreeze",
    "Histogram",
    "LoopLagProbe",
    "freeze_startup",
]
