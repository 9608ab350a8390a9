"""Progress tracking: bytes done, a smoothed rate and an ETA, reported at a bounded rate."""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
from quorus.core.engine.model import TransferProgress

ProgressCallback = Callable[[TransferProgress], None]


class ProgressTracker:
    """Accumulates bytes and emits :class:`TransferProgress` at most every ``interval`` s.

    The rate is an exponentially weighted moving average with time constant ``tau`` seconds,
    so it follows real changes within a few seconds without jumping on every chunk. Until
    ``tau`` seconds have passed it is the plain average since the start: a first chunk that
    arrives at once (a bandwidth limiter's initial burst, a buffered response) would otherwise
    set the rate far above what the transfer sustains, and the average would take many
    seconds to come down.
    """

    def __init__(
        self,
        total: int | None,
        emit: ProgressCallback,
        *,
        interval: float = 0.2,
        tau: float = 2.0,
        start_at: int = 0,
    ) -> None:
        self.total = total
        self.bytes_done = start_at
        self._emit = emit
        self._interval = interval
        self._tau = tau
        self._started = anyio.current_time()
        self._last_sample_time = self._started
        self._last_sample_bytes = start_at
        self._start_bytes = start_at
        self._last_emit = -math.inf
        self.rate = 0.0

    def reset(self, bytes_done: int, total: int | None) -> None:
        """Start counting again (a new attempt that starts over or resumes elsewhere)."""
        self.bytes_done = bytes_done
        self.total = total
        self._last_sample_bytes = self._start_bytes = bytes_done
        self._last_sample_time = self._started = anyio.current_time()
        self.rate = 0.0

    def advance(self, n: int) -> None:
        self.bytes_done += n
        now = anyio.current_time()
        if now - self._last_emit >= self._interval:
            self._sample(now)
            self._last_emit = now
            self._emit(self.snapshot(now))

    def finish(self) -> None:
        """Emit a final snapshot regardless of the interval."""
        now = anyio.current_time()
        self._sample(now)
        self._emit(self.snapshot(now))

    def _sample(self, now: float) -> None:
        dt = now - self._last_sample_time
        if dt <= 0:
            return
        instant = (self.bytes_done - self._last_sample_bytes) / dt
        elapsed = now - self._started
        if elapsed < self._tau:
            self.rate = (self.bytes_done - self._start_bytes) / elapsed
        else:
            alpha = 1.0 - math.exp(-dt / self._tau)
            self.rate += alpha * (instant - self.rate)
        self._last_sample_time = now
        self._last_sample_bytes = self.bytes_done

    def snapshot(self, now: float | None = None) -> TransferProgress:
        now = anyio.current_time() if now is None else now
        eta = None
        if self.total is not None and self.rate > 0:
            eta = max(0.0, (self.total - self.bytes_done) / self.rate)
        return TransferProgress(
            bytes_done=self.bytes_done,
            total=self.total,
            rate=self.rate,
            eta=eta,
            elapsed=now - self._started,
        )


__all__ = ["ProgressCallback", "ProgressTracker"]
