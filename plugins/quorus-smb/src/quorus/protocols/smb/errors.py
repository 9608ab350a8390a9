"""How SMB failures become Quorus errors: NT status codes and lost connections.

Every error names the location (through :meth:`~quorus.core.uri.Location.redacted`, so never
a password) and says what a person can do. Only lost connections, timeouts and the server
running short of resources are transient; a rejected logon, a missing path, a refused access
or a full disk are not retried.
"""

from __future__ import annotations

import socket

from quorus.core.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotAFileError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
    TransientError,
)
from smbprotocol.exceptions import (
    SMBAuthenticationError,
    SMBConnectionClosed,
    SMBException,
    SMBResponseException,
)
from smbprotocol.header import NtStatus

STATUS_DISK_FULL = NtStatus.STATUS_DISK_FULL
#: STATUS_QUOTA_EXCEEDED: the user's quota on the share is used up.
STATUS_QUOTA_EXCEEDED = 0xC0000044
#: STATUS_NETWORK_SESSION_EXPIRED: the session must be set up again.
STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C

_NOT_FOUND = frozenset({
    NtStatus.STATUS_OBJECT_NAME_NOT_FOUND,
    NtStatus.STATUS_OBJECT_PATH_NOT_FOUND,
    NtStatus.STATUS_NO_SUCH_FILE,
    NtStatus.STATUS_DELETE_PENDING,
})
_DENIED = frozenset({NtStatus.STATUS_ACCESS_DENIED, NtStatus.STATUS_SHARING_VIOLATION})
_LOGON = frozenset({
    NtStatus.STATUS_LOGON_FAILURE,
    NtStatus.STATUS_WRONG_PASSWORD,
    NtStatus.STATUS_PASSWORD_EXPIRED,
    0xC0000072,  # STATUS_ACCOUNT_DISABLED
    0xC0000234,  # STATUS_ACCOUNT_LOCKED_OUT
    0xC000006E,  # STATUS_ACCOUNT_RESTRICTION
    0xC0000224,  # STATUS_PASSWORD_MUST_CHANGE
})
_TRANSIENT = frozenset({
    NtStatus.STATUS_NETWORK_NAME_DELETED,
    NtStatus.STATUS_USER_SESSION_DELETED,
    NtStatus.STATUS_INSUFFICIENT_RESOURCES,
    STATUS_NETWORK_SESSION_EXPIRED,
    0xC00000B5,  # STATUS_IO_TIMEOUT
    0xC000020C,  # STATUS_CONNECTION_DISCONNECTED
    0xC000013B,  # STATUS_LOCAL_DISCONNECT
    0xC000013C,  # STATUS_REMOTE_DISCONNECT
    0x80000005,  # STATUS_BUFFER_OVERFLOW (server-side transient on some NAS firmware)
})


def status_of(exc: BaseException) -> int | None:
    """The NT status code a server answered with, if ``exc`` carries one."""
    if isinstance(exc, SMBResponseException):
        return int(exc.status)
    return None


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the connection (and so every request on it) is gone."""
    if isinstance(exc, SMBConnectionClosed | ConnectionError | socket.timeout | TimeoutError):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, SMBException):
        return True
    if isinstance(exc, SMBException) and not isinstance(exc, SMBResponseException):
        text = str(exc)
        return "timeout" in text.lower() or "closed" in text.lower()
    return status_of(exc) in _TRANSIENT


def translate(exc: BaseException, what: str) -> TransferError:
    """The Quorus error for ``exc``, raised while doing ``what`` (which names the location)."""
    if isinstance(exc, TransferError):
        return exc
    status = status_of(exc)
    if isinstance(exc, SMBAuthenticationError) or status in _LOGON:
        return AuthenticationError(
            f"{what}: the server rejected the logon (wrong user name, password or domain); "
            "check the smb.username, smb.password and smb.domain options"
        )
    if status in _NOT_FOUND:
        return NotFoundError(f"{what}: no such file or directory")
    if status == NtStatus.STATUS_BAD_NETWORK_NAME:
        return NotFoundError(f"{what}: the server has no share of that name")
    if status in _DENIED:
        reason = "the file is open elsewhere without sharing" if (
            status == NtStatus.STATUS_SHARING_VIOLATION) else "access denied by the server"
        return PermissionDeniedError(f"{what}: {reason}")
    if status == NtStatus.STATUS_OBJECT_NAME_COLLISION:
        return DestinationExistsError(f"{what}: the target already exists")
    if status in (NtStatus.STATUS_FILE_IS_A_DIRECTORY, NtStatus.STATUS_NOT_A_DIRECTORY):
        return NotAFileError(f"{what}: a directory stands where a file is needed, or the "
                             "other way round")
    if status in (STATUS_DISK_FULL, STATUS_QUOTA_EXCEEDED):
        return TransferError(f"{what}: no space left on the share (disk full or quota "
                             "exceeded); free space on the server and run the transfer again")
    if connection_lost(exc):
        return TransientError(f"{what}: connection to the SMB server lost ({_describe(exc)})")
    if status is not None:
        return TransferError(f"{what}: the server refused the request ({_describe(exc)})")
    return TransferError(f"{what}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    status = status_of(exc)
    if status is not None:
        name = next((key for key, value in vars(NtStatus).items()
                     if key.startswith("STATUS_") and value == status), None)
        return name or f"NT status 0x{status:08X}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["connection_lost", "status_of", "translate"]
