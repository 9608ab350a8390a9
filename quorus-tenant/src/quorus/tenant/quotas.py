"""Quota admission and usage: reservations per job, usage per tenant per UTC day and month,
rolled up the hierarchy (a team's job counts for its department and its company).

The rules, applied to the submitting tenant and every ancestor, nearest first:

- ``maxConcurrentTransfers``: a job holds a slot from its admission until it completes, fails
  or is cancelled (retries keep the slot).
- ``maxDailyTransfers``: admitted submissions in the UTC day of the submission's time.
- ``maxFileSize``: a job declaring ``expected_size`` above it is refused; a job that declares
  no size is checked when it completes and, if larger, counted as ``oversize`` in the usage
  (the bytes are already written by then).
- ``maxMonthlyDataTransfer``: bytes of the jobs completed in the UTC month plus the expected
  sizes reserved by unfinished jobs. A job with an ``expected_size`` is admitted only if it
  fits; a job without one only while the month's quota is not spent. At completion the
  reservation is dropped and the bytes actually written are counted, in the month the job
  completed.
- ``maxStorageUsage``: the same rule over every byte the tenant's jobs have written (Quorus
  deletes nothing, so this is an upper bound of what the tenant stores through it).
- ``maxBandwidthMbps`` is not an admission rule: it caps each job's transfer on the agent
  (the lowest cap up the hierarchy, and the job's own ``bandwidth_mbps`` if lower), through
  the ``tenant`` module's ``job_constraints``.

Everything is deterministic (times come from the commands); :class:`QuotaLedger` is driven by
the ``tenant`` state module.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quorus.core.controller.codec import RecordFormatError, from_plain, to_plain
from quorus.core.controller.model import JobRecord, JobState
from quorus.tenant.model import Quotas

#: Daily usage kept (older days are dropped as new ones begin); months are kept longer.
RETAIN_DAYS = 400
RETAIN_MONTHS = 36


@dataclass(frozen=True, slots=True)
class Usage:
    """What a tenant and its descendants did in one day or month."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    bytes: int = 0
    oversize: int = 0

    def plus(self, other: Usage) -> Usage:
        # Field by field: this runs for every job event, and dataclasses.astuple deep-copies.
        return Usage(self.submitted + other.submitted, self.completed + other.completed,
                     self.failed + other.failed, self.cancelled + other.cancelled,
                     self.bytes + other.bytes, self.oversize + other.oversize)

    def as_json(self) -> dict[str, int]:
        plain: dict[str, int] = to_plain(self)
        return plain


@dataclass(frozen=True, slots=True)
class Reservation:
    """What an unfinished job holds: a slot and ``bytes`` of expected data in each tenant of
    ``chain`` (its tenant, then the ancestors it had when admitted)."""

    job_id: str
    chain: tuple[str, ...]
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a submission does not fit: the quota, its limit, the usage it counts against and
    the tenant whose quota it is."""

    quota: str
    limit: int | float
    usage: int | float | None
    tenant: str
    message: str

    def details(self) -> dict[str, Any]:
        return {"quota": self.quota, "limit": self.limit, "usage": self.usage,
                "tenant": self.tenant}


@functools.lru_cache(maxsize=64)
def _periods(day_number: int) -> tuple[str, str]:
    day = time.strftime("%Y-%m-%d", time.gmtime(day_number * 86400))
    return day, day[:7]


def periods(at: float) -> tuple[str, str]:
    """The UTC day (``2025-03-31``) and month (``2025-03``) of the time ``at``."""
    return _periods(int(at // 86400))


class QuotaLedger:
    """Reservations of unfinished jobs and usage per period, all rolled up the hierarchy."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.open: dict[str, Reservation] = {}
        self.running: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.stored: dict[str, int] = {}
        self.days: dict[str, dict[str, Usage]] = {}
        self.months: dict[str, dict[str, Usage]] = {}

    # -- admission ------------------------------------------------------------------------------

    def refusal(self, chain: Iterable[tuple[str, Quotas]], at: float,
                expected_size: int | None) -> Refusal | None:
        """Why a job submitted at ``at`` does not fit the quotas of ``chain`` (each tenant
        and its quotas, nearest first), or ``None``."""
        day, month = periods(at)
        for tenant, quotas in chain:
            refused = self._check(tenant, quotas, day, month, expected_size)
            if refused is not None:
                return refused
        return None

    def _check(self, tenant: str, q: Quotas, day: str, month: str, expected: int | None
               ) -> Refusal | None:
        limit: int | float | None = q.max_concurrent_transfers
        if limit is not None:
            used = self.running.get(tenant, 0)
            if used + 1 > limit:
                return Refusal("maxConcurrentTransfers", limit, used, tenant,
                               f"tenant {tenant} runs {used} of its {limit} concurrent "
                               "transfers: submit again when one has ended")
        limit = q.max_daily_transfers
        if limit is not None:
            used = self._usage(self.days, day, tenant).submitted
            if used + 1 > limit:
                return Refusal("maxDailyTransfers", limit, used, tenant,
                               f"tenant {tenant} submitted {used} of its {limit} daily "
                               f"transfers on {day} (UTC)")
        limit = q.max_file_size
        if limit is not None and expected is not None and expected > limit:
            return Refusal("maxFileSize", limit, expected, tenant,
                           f"the file is {expected} bytes, above tenant {tenant}'s "
                           f"maxFileSize of {limit} bytes")
        need = expected or 0
        limit = q.max_monthly_data_transfer
        if limit is not None:
            used = self._usage(self.months, month, tenant).bytes + self.reserved.get(tenant, 0)
            if used + need > limit or used >= limit:
                return Refusal("maxMonthlyDataTransfer", limit, used, tenant,
                               f"tenant {tenant} used or reserved {used} of its {limit} bytes "
                               f"for {month}; this job needs {need}")
        limit = q.max_storage_usage
        if limit is not None:
            used = self.stored.get(tenant, 0) + self.reserved.get(tenant, 0)
            if used + need > limit or used >= limit:
                return Refusal("maxStorageUsage", limit, used, tenant,
                               f"tenant {tenant} wrote or reserved {used} of its {limit} "
                               f"bytes of storage; this job needs {need}")
        return None

    @staticmethod
    def _usage(table: Mapping[str, Mapping[str, Usage]], period: str, tenant: str) -> Usage:
        return table.get(period, {}).get(tenant, _NONE)

    # -- bookkeeping ----------------------------------------------------------------------------

    def reserve(self, job: JobRecord, chain: tuple[str, ...]) -> None:
        """Record an admitted job: a slot, its expected bytes and a submission per tenant."""
        size = job.options.expected_size or 0
        self.open[job.id] = Reservation(job.id, chain, size)
        day, month = periods(job.submitted_at)
        for tenant in chain:
            self.running[tenant] = self.running.get(tenant, 0) + 1
            if size:
                self.reserved[tenant] = self.reserved.get(tenant, 0) + size
        self._add(day, month, chain, _SUBMITTED)

    def release(self, job: JobRecord, max_file_size: Callable[[str], int | None]) -> None:
        """A job with a reservation ended: free its slot and bytes, count how it ended (and
        the bytes it wrote, in the period it ended)."""
        held = self.open.pop(job.id)
        for tenant in held.chain:
            _take(self.running, tenant, 1)
            if held.bytes:
                _take(self.reserved, tenant, held.bytes)
        day, month = periods(job.finished_at if job.finished_at is not None
                             else job.submitted_at)
        if job.state is JobState.COMPLETED:
            written = job.bytes_transferred
            self._add(day, month, held.chain, Usage(completed=1, bytes=written))
            for tenant in held.chain:
                self.stored[tenant] = self.stored.get(tenant, 0) + written
                limit = max_file_size(tenant)
                if limit is not None and written > limit:
                    self._add(day, month, (tenant,), _OVERSIZE)
        elif job.state is JobState.FAILED:
            self._add(day, month, held.chain, _FAILED)
        else:
            self._add(day, month, held.chain, _CANCELLED)

    def _add(self, day: str, month: str, chain: Iterable[str], usage: Usage) -> None:
        for table, period, keep in ((self.days, day, RETAIN_DAYS),
                                    (self.months, month, RETAIN_MONTHS)):
            rows = table.get(period)
            if rows is None:
                rows = table[period] = {}
                _forget_old(table, keep)
            for tenant in chain:
                rows[tenant] = rows.get(tenant, _NONE).plus(usage)

    def usage(self, tenant: str, period: str) -> Usage:
        """Usage of ``tenant`` (with its descendants) in a day ``YYYY-MM-DD`` or a month
        ``YYYY-MM``."""
        return self._usage(self.days if len(period) == 10 else self.months, period, tenant)

    def daily(self, first: str, last: str) -> list[tuple[str, str, Usage]]:
        """``(day, tenant, usage)`` for every day from ``first`` to ``last`` (inclusive) that
        has any, in day then tenant order."""
        return [(day, tenant, self.days[day][tenant])
                for day in sorted(d for d in self.days if first <= d <= last)
                for tenant in sorted(self.days[day])]

    # -- snapshot -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": [to_plain(r) for r in self.open.values()],
            "stored": dict(self.stored),
            "days": {p: {t: to_plain(u) for t, u in rows.items()} for p, rows in
                     self.days.items()},
            "months": {p: {t: to_plain(u) for t, u in rows.items()} for p, rows in
                       self.months.items()},
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace everything with a :meth:`snapshot`; the counters of unfinished jobs are
        rebuilt from their reservations. Raises :class:`RecordFormatError`."""
        try:
            opened = [from_plain(Reservation, r) for r in data.get("open", [])]
            stored = {str(t): int(n) for t, n in data.get("stored", {}).items()}
            tables = [{str(p): {str(t): from_plain(Usage, u) for t, u in rows.items()}
                       for p, rows in data.get(key, {}).items()} for key in ("days", "months")]
        except (AttributeError, TypeError, ValueError) as exc:
            raise RecordFormatError(f"tenant usage in the snapshot is malformed: {exc}") from None
        self._clear()
        self.stored = stored
        self.days, self.months = tables
        for held in opened:
            self.open[held.job_id] = held
            for tenant in held.chain:
                self.running[tenant] = self.running.get(tenant, 0) + 1
                if held.bytes:
                    self.reserved[tenant] = self.reserved.get(tenant, 0) + held.bytes


def _take(counts: dict[str, int], tenant: str, amount: int) -> None:
    left = counts.get(tenant, 0) - amount
    if left > 0:
        counts[tenant] = left
    else:
        counts.pop(tenant, None)


def _forget_old(table: dict[str, dict[str, Usage]], keep: int) -> None:
    if len(table) > keep:
        for period in sorted(table)[:len(table) - keep]:
            del table[period]


_NONE = Usage()
_SUBMITTED = Usage(submitted=1)
_FAILED = Usage(failed=1)
_CANCELLED = Usage(cancelled=1)
_OVERSIZE = Usage(oversize=1)

__all__ = ["RETAIN_DAYS", "RETAIN_MONTHS", "QuotaLedger", "Refusal", "Reservation", "Usage",
           "periods"]
