"""Quorus core: the public Python API.

Move a file, verified and resumable::

    import anyio
    from quorus.core import transfer

    result = anyio.run(transfer, "https://host/data.bin", "/srv/in/data.bin")
    print(result.sha256)

Everything re-exported here is public; the modules behind it are not.
"""

from __future__ import annotations

from typing import Any

from quorus.core.engine import (
    ExpectedChecksum,
    OverwritePolicy,
    ProgressCallback,
    RateLimiter,
    RetryPolicy,
    SizeRange,
    TransferEngine,
    TransferProgress,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from quorus.core.errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConfigurationError,
    DestinationBusyError,
    DestinationExistsError,
    InvalidURIError,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    PluginNotFoundError,
    QuorusError,
    SizeMismatchError,
    SourceChangedError,
    TransferError,
    TransientError,
    UnsupportedOperationError,
    VerificationError,
)
from quorus.core.hooks import hookimpl
from quorus.core.protocol import (
    Capabilities,
    FileInfo,
    ProtocolOptions,
    ReadStream,
    TransferProtocol,
    WriteStream,
)
from quorus.core.secrets import Secret, resolve_secret
from quorus.core.uri import Location, parse_location

__version__ = "0.1.0"


class TransferFailedError(TransferError):
    """Raised by :func:`transfer` when the transfer did not complete; ``result`` says why."""

    def __init__(self, result: TransferResult) -> None:
        super().__init__(result.error or f"transfer {result.status}")
        self.result = result


async def transfer(
    source: str | Location,
    destination: str | Location,
    *,
    on_progress: ProgressCallback | None = None,
    protocol_options: dict[str, ProtocolOptions] | None = None,
    **request_options: Any,
) -> TransferResult:
    """Move one file and return its result; raise :class:`TransferFailedError` on failure.

    ``request_options`` are :class:`TransferRequest` fields (``checksum="sha256:..."``,
    ``size="10MB..5GB"``, ``retry=RetryPolicy(...)``, ``overwrite=...``, ``resume=...``,
    ``bandwidth_limit=...``).
    """
    request = TransferRequest.create(source, destination, **request_options)
    async with TransferEngine(protocol_options=protocol_options) as engine:
        result = await engine.transfer(request, on_progress=on_progress)
    if not result.ok:
        raise TransferFailedError(result)
    return result


__all__ = [
    "AuthenticationError",
    "Capabilities",
    "ChecksumMismatchError",
    "ConfigurationError",
    "DestinationBusyError",
    "DestinationExistsError",
    "ExpectedChecksum",
    "FileInfo",
    "InvalidURIError",
    "Location",
    "NotAFileError",
    "NotFoundError",
    "OverwritePolicy",
    "PermissionDeniedError",
    "PluginError",
    "PluginNotFoundError",
    "ProgressCallback",
    "ProtocolOptions",
    "QuorusError",
    "RateLimiter",
    "ReadStream",
    "RetryPolicy",
    "Secret",
    "SizeMismatchError",
    "SizeRange",
    "SourceChangedError",
    "TransferEngine",
    "TransferError",
    "TransferFailedError",
    "TransferProgress",
    "TransferProtocol",
    "TransferRequest",
    "TransferResult",
    "TransferStatus",
    "TransientError",
    "UnsupportedOperationError",
    "VerificationError",
    "WriteStream",
    "__version__",
    "hookimpl",
    "parse_location",
    "resolve_secret",
    "transfer",
]
