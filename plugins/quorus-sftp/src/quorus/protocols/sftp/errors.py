"""Translation of asyncssh and SFTP failures into Quorus's error family.

Every message names the operation and the redacted URI (never a credential) and says what to
do where there is something to do. Rejected credentials and host keys are permanent errors,
so the engine does not retry them; a lost or refused connection is transient.
"""

from __future__ import annotations

import asyncio

import asyncssh
from quorus.core.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
    TransientError,
)

#: SFTP status codes whose failure a later attempt may cure.
_TRANSIENT_SFTP = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)


def sftp_error(exc: asyncssh.SFTPError, action: str, what: str) -> TransferError:
    """The error for a status the SFTP server answered with."""
    reason = exc.reason or type(exc).__name__
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return NotFoundError(f"cannot {action} {what}: no such file or directory ({reason})")
    if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
        return PermissionDeniedError(
            f"cannot {action} {what}: permission denied by the server ({reason}); check the "
            "SSH user's rights on the path"
        )
    if isinstance(exc, asyncssh.SFTPFileAlreadyExists):
        return DestinationExistsError(f"cannot {action} {what}: the target exists ({reason})")
    if isinstance(exc, asyncssh.SFTPFileIsADirectory):
        return NotAFileError(f"cannot {action} {what}: it is a directory")
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded):
        return TransferError(f"cannot {action} {what}: no space left on the server ({reason})")
    if isinstance(exc, _TRANSIENT_SFTP):
        return TransientError(f"cannot {action} {what}: the SFTP session was lost ({reason})")
    if isinstance(exc, asyncssh.SFTPFailure) and action.startswith(("write", "upload")):
        # OpenSSH's sftp-server reports ENOSPC, EDQUOT and EIO alike as a bare "Failure".
        return TransferError(
            f"cannot {action} {what}: the server failed to write ({reason}); the usual cause "
            "is a full disk or an exhausted quota on the server"
        )
    return TransferError(f"cannot {action} {what}: {reason}")


def connection_error(exc: BaseException, what: str, *, known_hosts: str | None) -> TransferError:
    """The error for a failure to connect, log in, or keep a connection."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        where = f"the known_hosts file {known_hosts}" if known_hosts else "known_hosts"
        return AuthenticationError(
            f"cannot connect to {what}: the server's host key is not trusted ({exc.reason}); "
            f"it must be listed in {where} (option known_hosts; compare its fingerprint "
            "with the server's, e.g. ssh-keyscan, before adding it)"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationError(
            f"cannot log in to {what}: the server rejected the credentials ({exc.reason}); "
            "check the user name, password, private_key or agent"
        )
    if isinstance(exc, asyncssh.KeyExchangeFailed | asyncssh.ProtocolNotSupported):
        return TransferError(
            f"cannot connect to {what}: no SSH algorithms in common with the server "
            f"({exc.reason}); see option ciphers"
        )
    if isinstance(exc, asyncssh.IllegalUserName):
        return AuthenticationError(f"cannot log in to {what}: {exc.reason}")
    if isinstance(exc, asyncssh.ConnectionLost | asyncssh.ChannelOpenError):
        return TransientError(f"cannot reach {what}: the connection was lost ({exc.reason})")
    if isinstance(exc, asyncssh.DisconnectError):
        return TransientError(f"cannot reach {what}: the server disconnected ({exc.reason})")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransientError(f"cannot reach {what}: connecting timed out")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return TransientError(f"cannot reach {what}: {reason}")
    return TransferError(f"cannot reach {what}: {type(exc).__name__}: {exc}")


def io_error(exc: BaseException, action: str, what: str, *, known_hosts: str | None) -> TransferError:
    """The error for any failure of an operation on an open connection."""
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, asyncssh.SFTPError):
        return sftp_error(exc, action, what)
    if isinstance(exc, asyncssh.DisconnectError | OSError | asyncio.TimeoutError | TimeoutError):
        error = connection_error(exc, what, known_hosts=known_hosts)
        if isinstance(error, TransientError):
            return TransientError(f"cannot {action} {what}: the connection was lost "
                                  f"({_reason(exc)})")
        return error
    return TransferError(f"cannot {action} {what}: {type(exc).__name__}: {exc}")


#: What the operations of the protocol catch and translate.
TRANSLATED = (asyncssh.Error, OSError, asyncio.TimeoutError, TimeoutError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__ = ["TRANSLATED", "connection_error", "io_error", "sftp_error"]
