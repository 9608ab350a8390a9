"""How late the controller's event loop runs what is due: a probe for operators.

Everything a controller does — agent frames, REST requests, applying committed commands,
scheduling — shares one event loop, so a long stretch of work anywhere delays everything
else. :class:`LoopLagProbe` sleeps for a short period again and again and records by how much
each wake-up came late; ``/metrics`` shows the distribution as the histogram
``quorus_event_loop_lag_seconds``. A p99 in tens of milliseconds means assignments, heartbeat
acknowledgements and API answers wait that long, whatever their own cost.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

import anyio

#: Upper bounds (seconds) of the histogram's buckets; the last bucket is everything above.
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)


class LoopLagProbe:
    """Wakes every ``period`` seconds and records how late it woke."""

    def __init__(self, period: float = 0.05, *,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if period <= 0:
            raise ValueError("the probe's period must be positive")
        self.period = period
        self._clock = clock
        #: Observations per bucket of :data:`BUCKETS`, then those above the last bound.
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.maximum = 0.0

    @property
    def observations(self) -> int:
        return sum(self.counts)

    def observe(self, lag: float) -> None:
        """Record one wake-up ``lag`` seconds late (negative counts as on time)."""
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

    async def run(self) -> None:
        """Probe until cancelled."""
        clock = self._clock
        while True:
            started = clock()
            await anyio.sleep(self.period)
            self.observe(clock() - started - self.period)


__all__ = ["BUCKETS", "LoopLagProbe"]
