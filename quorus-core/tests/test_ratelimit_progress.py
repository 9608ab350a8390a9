"""The bandwidth limiter and the progress tracker, on a fake clock (no wall-clock asserts)."""

from __future__ import annotations

import pytest
from quorus.core.engine import RateLimiter, TransferProgress
from quorus.core.engine import progress as progress_module
from quorus.core.engine import ratelimit as ratelimit_module
from quorus.core.engine.progress import ProgressTracker

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def current_time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit_module.anyio, "current_time", fake.current_time)
    monkeypatch.setattr(ratelimit_module.anyio, "sleep", fake.sleep)
    return fake


async def test_average_rate_is_held_for_any_chunk_size(clock: FakeClock) -> None:
    rate = 10 * 1024 * 1024
    for chunk in (4096, 1024 * 1024, 8 * 1024 * 1024):
        clock.slept = 0.0
        limiter = RateLimiter(rate)
        total = 0
        while total < 64 * 1024 * 1024:
            await limiter.consume(chunk)
            total += chunk
        # Everything beyond the initial burst is paced at `rate`.
        assert clock.slept == pytest.approx((total - limiter.capacity) / rate, rel=1e-6)


async def test_idle_time_refills_only_up_to_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(1_000_000, burst=100_000)
    await limiter.consume(100_000)
    assert clock.slept == 0
    clock.now += 3600  # a long idle period must not bank an hour of bandwidth
    await limiter.consume(300_000)
    assert clock.slept == pytest.approx(0.2)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_progress_is_smoothed_bounded_and_has_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClock()
    monkeypatch.setattr(progress_module.anyio, "current_time", fake.current_time)
    seen: list[TransferProgress] = []
    tracker = ProgressTracker(100_000_000, seen.append, interval=0.2, tau=2.0)
    for _ in range(100):  # 1 MB every 10 ms: 100 MB/s steady
        fake.now += 0.01
        tracker.advance(1_000_000)
    assert 4 <= len(seen) <= 6  # one snapshot per 0.2 s of the 1 s, not one per chunk
    last = seen[-1]
    assert last.rate == pytest.approx(100_000_000, rel=0.01)
    assert last.eta == pytest.approx((100_000_000 - last.bytes_done) / last.rate)
    for _ in range(100):  # the rate halves: the average follows within a few seconds
        fake.now += 0.02
        tracker.advance(1_000_000)
    tracker.finish()
    assert seen[-1].bytes_done == 200_000_000
    assert 50_000_000 < seen[-1].rate < 75_000_000
    assert seen[-1].elapsed == pytest.approx(3.0)


async def test_an_initial_burst_does_not_inflate_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeClock()
    monkeypatch.setattr(progress_module.anyio, "current_time", fake.current_time)
    seen: list[TransferProgress] = []
    tracker = ProgressTracker(10_000_000, seen.append, interval=0.2, tau=2.0)
    fake.now += 0.001
    tracker.advance(1_048_576)  # a limiter's first chunk passes at once
    for _ in range(30):  # then 300 KB/s, as the limit allows
        fake.now += 0.1
        tracker.advance(30_000)
    rates = [p.rate for p in seen[1:]]
    # Never the burst's ~1 GB/s; by the end close to the sustained rate.
    assert max(rates) < 6_000_000
    assert seen[-1].rate < 900_000
