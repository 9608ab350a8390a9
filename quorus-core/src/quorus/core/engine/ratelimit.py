"""A token-bucket bandwidth limiter for one transfer (or several sharing one instance)."""

from __future__ import annotations

import anyio


class RateLimiter:
    """Lets bytes through at ``rate`` bytes per second on average.

    Consumers take tokens for each chunk; a chunk larger than the bucket runs the bucket into
    debt, which the next call sleeps off, so the average holds for any chunk size. ``burst``
    bounds how much may pass at once after an idle period.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.capacity = float(burst) if burst is not None else max(self.rate / 10, 64 * 1024)
        self._tokens = self.capacity
        self._last: float | None = None
        self._lock = anyio.Lock()

    async def consume(self, n: int) -> None:
        async with self._lock:
            now = anyio.current_time()
            if self._last is not None:
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            if self._tokens < 0:
                await anyio.sleep(-self._tokens / self.rate)


__all__ = ["RateLimiter"]
