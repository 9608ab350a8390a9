"""What a transfer is asked to do and what it reports: requests, policies, progress, results.

All are frozen dataclasses; :meth:`TransferResult.as_dict` is the one place a result becomes
JSON-ready (the CLI's ``--json`` output and hook payloads use it).
"""

from __future__ import annotations

import enum
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from quorus.core.errors import ConfigurationError, SizeMismatchError
from quorus.core.units import parse_duration, parse_size
from quorus.core.uri import Location, parse_location

_CHECKSUM = re.compile(r"^(?P<algo>[A-Za-z0-9-]+):(?P<hex>[0-9A-Fa-f]+)$")


class OverwritePolicy(enum.StrEnum):
    """What to do when the destination already exists."""

    FAIL = "fail"
    OVERWRITE = "overwrite"
    #: Skip when the destination already holds the same SHA-256, otherwise overwrite.
    SKIP_SAME = "skip-same"


class TransferStatus(enum.StrEnum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ExpectedChecksum:
    """An expected digest, written ``sha256:HEX``."""

    algorithm: str
    hexdigest: str

    @classmethod
    def parse(cls, text: str) -> ExpectedChecksum:
        match = _CHECKSUM.match(text.strip())
        if not match:
            raise ConfigurationError(
                f"invalid checksum {text!r}: expected 'sha256:' followed by 64 hex digits"
            )
        algorithm = match.group("algo").lower().replace("-", "")
        if algorithm != "sha256":
            raise ConfigurationError(
                f"invalid checksum {text!r}: unsupported algorithm {match.group('algo')!r} "
                "(only sha256 is supported)"
            )
        digest = match.group("hex").lower()
        if len(digest) != 64:
            raise ConfigurationError(
                f"invalid checksum {text!r}: a SHA-256 digest has 64 hex digits, not {len(digest)}"
            )
        return cls(algorithm, digest)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(frozen=True)
class SizeRange:
    """An expected size: exact (``min == max``) or a range with either end open."""

    min: int | None = None
    max: int | None = None

    @classmethod
    def parse(cls, text: str | int) -> SizeRange:
        """``1048576``, ``10MB`` (exact), ``10MB..5GB``, ``..5GB`` or ``10MB..``."""
        if isinstance(text, int) or ".." not in str(text):
            exact = parse_size(text, what="expected size")
            return cls(exact, exact)
        low, high = str(text).split("..", 1)
        result = cls(
            parse_size(low, what="expected size") if low.strip() else None,
            parse_size(high, what="expected size") if high.strip() else None,
        )
        if result.min is not None and result.max is not None and result.min > result.max:
            raise ConfigurationError(f"invalid expected size {text!r}: minimum exceeds maximum")
        return result

    def check(self, size: int, what: str) -> None:
        """Raise :class:`SizeMismatchError` when ``size`` is outside the range."""
        if self.min is not None and self.min == self.max and size != self.min:
            raise SizeMismatchError(f"{what} is {size} bytes, expected exactly {self.min}")
        if self.min is not None and size < self.min:
            raise SizeMismatchError(f"{what} is {size} bytes, below the minimum of {self.min}")
        if self.max is not None and size > self.max:
            raise SizeMismatchError(f"{what} is {size} bytes, above the maximum of {self.max}")


BACKOFFS = ("exponential", "linear", "fixed")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with jitter, as the design's ``retry`` block configures it: ``exponential``
    (``initial_delay * multiplier ** (n - 1)``), ``linear`` (``initial_delay * n``) or
    ``fixed`` (``initial_delay``) before retry ``n``, never above ``max_delay``."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    #: A server's Retry-After is honoured up to this many seconds.
    max_retry_after: float = 300.0
    backoff: str = "exponential"

    def __post_init__(self) -> None:
        if self.backoff not in BACKOFFS:
            raise ConfigurationError(
                f"retry backoff {self.backoff!r}: expected {', '.join(BACKOFFS)}")
        if self.max_attempts < 1:
            raise ConfigurationError("retry maxAttempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("retry jitter must be between 0 and 1")

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> RetryPolicy:
        """Build from a design-style block: ``maxAttempts``, ``initialDelay``, ``maxDelay``."""
        known = {"maxAttempts", "initialDelay", "maxDelay", "backoff", "multiplier", "jitter"}
        unknown = set(block) - known
        if unknown:
            raise ConfigurationError(f"unknown retry settings: {', '.join(sorted(unknown))}")
        backoff = block.get("backoff", "exponential")
        if backoff not in BACKOFFS:
            raise ConfigurationError(
                f"retry backoff {backoff!r}: expected {', '.join(BACKOFFS)}")
        return cls(
            backoff=backoff,
            max_attempts=int(block.get("maxAttempts", cls.max_attempts)),
            initial_delay=parse_duration(block.get("initialDelay", cls.initial_delay)),
            max_delay=parse_duration(block.get("maxDelay", cls.max_delay)),
            multiplier=1.0 if backoff == "fixed" else float(block.get("multiplier", 2.0)),
            jitter=float(block.get("jitter", cls.jitter)),
        )

    def delay(self, failed_attempt: int, retry_after: float | None = None, *,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        if self.backoff == "fixed":
            base = self.initial_delay
        elif self.backoff == "linear":
            base = self.initial_delay * failed_attempt
        else:
            base = self.initial_delay * self.multiplier ** (failed_attempt - 1)
        base = min(self.max_delay, base)
        spread = base * self.jitter
        delay = base - spread + (rng or random).random() * 2 * spread
        delay = min(max(delay, 0.0), self.max_delay)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


@dataclass(frozen=True)
class TransferRequest:
    """One file to move from ``source`` to ``destination``."""

    source: Location
    destination: Location
    checksum: ExpectedChecksum | None = None
    size: SizeRange | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    overwrite: OverwritePolicy = OverwritePolicy.OVERWRITE
    resume: bool = True
    create_directories: bool = True
    mode: int | None = None
    #: Bytes per second; ``None`` for no limit.
    bandwidth_limit: int | None = None
    #: Seconds one attempt may take; ``None`` for no limit.
    attempt_timeout: float | None = None
    #: Parallel ranged streams to read a large source with; ``None``: the protocol's choice.
    streams: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def create(
        cls,
        source: str | Location,
        destination: str | Location,
        *,
        checksum: str | ExpectedChecksum | None = None,
        size: str | int | SizeRange | None = None,
        **kwargs: Any,
    ) -> TransferRequest:
        """Build a request from texts (URIs, ``sha256:HEX``, ``10MB..5GB``)."""
        return cls(
            source=source if isinstance(source, Location) else parse_location(source),
            destination=(
                destination if isinstance(destination, Location) else parse_location(destination)
            ),
            checksum=ExpectedChecksum.parse(checksum) if isinstance(checksum, str) else checksum,
            size=SizeRange.parse(size) if isinstance(size, str | int) else size,
            **kwargs,
        )


@dataclass(frozen=True)
class TransferProgress:
    """A snapshot of a running transfer. ``rate`` is smoothed, in bytes per second."""

    bytes_done: int
    total: int | None
    rate: float
    eta: float | None
    elapsed: float

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.bytes_done / self.total)


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended."""

    request_id: str
    status: TransferStatus
    source: str
    destination: str
    bytes: int
    bytes_transferred: int
    sha256: str | None
    seconds: float
    attempts: int
    resumed_from: int = 0
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (TransferStatus.COMPLETED, TransferStatus.SKIPPED)

    @property
    def rate(self) -> float:
        """Average bytes per second over the bytes moved in this run."""
        return self.bytes_transferred / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "status": str(self.status),
            "source": self.source,
            "destination": self.destination,
            "bytes": self.bytes,
            "bytes_transferred": self.bytes_transferred,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
            "resumed_from": self.resumed_from,
            "error": self.error,
            "error_type": self.error_type,
        }


__all__ = [
    "ExpectedChecksum",
    "OverwritePolicy",
    "RetryPolicy",
    "SizeRange",
    "TransferProgress",
    "TransferRequest",
    "TransferResult",
    "TransferStatus",
]
