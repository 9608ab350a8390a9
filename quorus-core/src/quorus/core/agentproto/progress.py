"""Coalescing of an agent's progress reports: at most one ``Progress`` per attempt every
``interval`` seconds, always carrying the latest values.

A report arriving sooner than ``interval`` after the last one sent for its attempt is held
(replacing any held before) and released by :meth:`ProgressCoalescer.due` once the interval
has passed. The final report before ``Completed`` is not coalesced (:meth:`final`).
"""

from __future__ import annotations

from quorus.core.agentproto.messages import Completed, Progress
from quorus.core.agentproto.records import JobAttempt


class ProgressCoalescer:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last_sent: dict[JobAttempt, float] = {}
        self._latest: dict[JobAttempt, Progress] = {}
        self._held: dict[JobAttempt, Progress] = {}

    def offer(self, progress: Progress, now: float) -> Progress | None:
        """``progress`` if it may be sent now (then it counts as sent), else ``None`` (held)."""
        key = JobAttempt(progress.job_id, progress.attempt)
        self._latest[key] = progress
        last = self._last_sent.get(key)
        if last is None or now - last >= self.interval:
            self._held.pop(key, None)
            self._last_sent[key] = now
            return progress
        self._held[key] = progress
        return None

    def hold(self, progress: Progress) -> None:
        """Keep ``progress`` to send as soon as the agent is registered again (no connection
        now); it does not count as sent."""
        key = JobAttempt(progress.job_id, progress.attempt)
        self._latest[key] = progress
        self._held[key] = progress
        self._last_sent.setdefault(key, float("-inf"))

    def due(self, now: float) -> list[Progress]:
        """Held reports whose interval has passed; they count as sent."""
        ready = [
            key for key in self._held if now - self._last_sent.get(key, now) >= self.interval
        ]
        for key in ready:
            self._last_sent[key] = now
        return [self._held.pop(key) for key in ready]

    def next_due(self) -> float | None:
        """When the next held report becomes due, if any is held."""
        if not self._held:
            return None
        return min(self._last_sent[key] for key in self._held) + self.interval

    def final(self, completed: Completed) -> Progress:
        """The last report of a finished attempt: every byte done, at the attempt's overall
        rate. Forgets the attempt."""
        key = JobAttempt(completed.job_id, completed.attempt)
        latest = self._latest.get(key)
        self.forget(key)
        total = latest.total_bytes if latest is not None else None
        if completed.duration > 0:
            rate = completed.bytes_transferred / completed.duration
        else:
            rate = latest.rate if latest is not None else 0.0
        return Progress(
            completed.job_id,
            completed.attempt,
            completed.bytes_transferred,
            completed.bytes_transferred if total is None else total,
            rate,
        )

    def forget(self, key: JobAttempt) -> None:
        self._last_sent.pop(key, None)
        self._latest.pop(key, None)
        self._held.pop(key, None)

    def release_all_as_unsent(self) -> None:
        """The connection changed: the next report of each attempt goes out at once."""
        self._held.update(
            {key: progress for key, progress in self._latest.items() if key not in self._held}
        )
        self._last_sent = {key: float("-inf") for key in self._held}


__all__ = ["ProgressCoalescer"]
