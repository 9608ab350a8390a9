"""The exceptions Quorus raises, one family rooted at :class:`QuorusError`.

Every error carries a message a person can act on. Transfer errors say whether a retry
can help (:attr:`TransferError.retryable`); the retry loop and the CLI's exit codes rely on it.
"""

from __future__ import annotations


class QuorusError(Exception):
    """Base of every error Quorus raises on purpose."""


class ConfigurationError(QuorusError):
    """A setting, option or argument is invalid."""


class InvalidURIError(ConfigurationError):
    """A URI or path cannot be parsed or is not acceptable."""


class StoragePathError(InvalidURIError):
    """A path or location is not acceptable for the storage it must stay inside
    (:mod:`quorus.core.confine`)."""


class UnsafePathError(StoragePathError):
    """A path is refused whatever the roots: NUL bytes, too long, not absolute, a name that
    could turn into ``..`` in another layer."""


class PathOutsideRootsError(StoragePathError):
    """A path resolves outside every allowed root (by ``..``, by a symbolic link, or plainly)."""


class PluginError(QuorusError):
    """A plugin could not be found or loaded."""


class PluginNotFoundError(PluginError):
    """No plugin is installed under the requested name."""

    def __init__(self, group: str, name: str, hint: str) -> None:
        super().__init__(hint)
        self.group = group
        self.name = name


class TransferError(QuorusError):
    """A transfer failed.

    ``retryable`` is true for failures a later attempt may cure (connection reset, timeout,
    server busy). ``retry_after`` is the delay in seconds a server asked for, if any.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after


class TransientError(TransferError):
    """A failure that may not recur: connection lost, timeout, server overloaded."""

    retryable = True


class NotFoundError(TransferError):
    """The source, or the destination's parent, does not exist."""


class PermissionDeniedError(TransferError):
    """The operating system or the server refused access."""


class AuthenticationError(TransferError):
    """Credentials are missing or were rejected."""


class DestinationExistsError(TransferError):
    """The destination exists and the overwrite policy is ``fail``."""


class NotAFileError(TransferError):
    """A path names a directory (or another non-file) where a regular file is needed."""


class VerificationError(TransferError):
    """The data moved does not match what was expected (checksum, size)."""


class ChecksumMismatchError(VerificationError):
    """The SHA-256 of the data differs from the expected checksum."""


class SizeMismatchError(VerificationError):
    """The size of the data is not the expected size or outside the expected range."""


class SourceChangedError(TransientError):
    """The source changed while it was being read; the transfer must start over."""


class DestinationBusyError(TransientError):
    """Another transfer is writing to the same destination right now."""


class UnsupportedOperationError(TransferError):
    """The protocol cannot do what was asked (e.g. list over plain HTTP)."""


__all__ = [
    "AuthenticationError",
    "ChecksumMismatchError",
    "ConfigurationError",
    "DestinationBusyError",
    "DestinationExistsError",
    "InvalidURIError",
    "NotAFileError",
    "NotFoundError",
    "PathOutsideRootsError",
    "PermissionDeniedError",
    "PluginError",
    "PluginNotFoundError",
    "QuorusError",
    "SizeMismatchError",
    "SourceChangedError",
    "StoragePathError",
    "TransferError",
    "TransientError",
    "UnsafePathError",
    "UnsupportedOperationError",
    "VerificationError",
]
