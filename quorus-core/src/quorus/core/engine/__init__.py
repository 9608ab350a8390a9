"""The streaming transfer engine and its request, policy and result types."""

from quorus.core.engine.engine import TransferEngine
from quorus.core.engine.model import (
    ExpectedChecksum,
    OverwritePolicy,
    RetryPolicy,
    SizeRange,
    TransferProgress,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.engine.progress import ProgressCallback
from quorus.core.engine.ratelimit import RateLimiter

__all__ = [
    "ExpectedChecksum",
    "OverwritePolicy",
    "ProgressCallback",
    "RateLimiter",
    "RetryPolicy",
    "SizeRange",
    "TransferEngine",
    "TransferProgress",
    "TransferRequest",
    "TransferResult",
    "TransferStatus",
]
