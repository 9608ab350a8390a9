"""How FTP replies and connection failures become Quorus errors.

Reply codes (RFC 959, RFC 3659): 4xx replies are transient except those that report a full
disk (452, and vsftpd's 451 "Failure writing to local file"); 530 is a rejected login; 550
and 553 are ambiguous between "absent" and "refused", so the caller probes and passes
``exists``. Lost or timed-out connections are :class:`~quorus.core.errors.TransientError`;
an unverifiable certificate is permanent. Messages name the location as
:meth:`~quorus.core.uri.Location.redacted` shows it, never a credential.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import aioftp
from quorus.core.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
    TransientError,
)
from quorus.core.uri import Location


def reply_of(exc: aioftp.StatusCodeError) -> tuple[str, str]:
    """The code and text of the reply that ``exc`` reports."""
    code = str(exc.received_codes[-1]) if exc.received_codes else "000"
    info = exc.info if isinstance(exc.info, list) else [exc.info]
    text = " ".join(line.strip(" -") for line in info if line.strip(" -")).strip()
    return code, text


def for_reply(
    code: str,
    text: str,
    location: Location,
    action: str,
    *,
    exists: bool | None = None,
) -> TransferError:
    """The error for reply ``code`` ``text`` to ``action`` on ``location``.

    ``exists`` settles 550/553 after a probe: ``False`` → not found, ``True`` → refused.
    """
    where = location.redacted()
    said = f"{code} {text}".strip()
    if code in ("530", "532"):
        hint = ""
        if "encrypt" in text.lower() or "ssl" in text.lower() or "tls" in text.lower():
            hint = "; the server requires TLS: use ftps://"
        return AuthenticationError(f"{where}: login refused ({said}){hint}")
    if code == "452" or code == "552" or (code == "451" and "local file" in text.lower()):
        return TransferError(
            f"{where}: the server could not store the data during {action} ({said}); "
            "its disk is probably full",
            retryable=False,
        )
    if code.startswith("4"):
        return TransientError(f"{where}: {action} failed for now ({said})")
    if code in ("550", "553", "450"):
        if exists is False:
            return NotFoundError(f"{where}: not found ({action}: {said})")
        if exists is True:
            return PermissionDeniedError(f"{where}: permission denied ({action}: {said})")
    if code == "550":
        return NotFoundError(f"{where}: {action} failed ({said})")
    return TransferError(f"{where}: {action} failed ({said})")


def for_exception(exc: BaseException, location: Location, action: str) -> TransferError | None:
    """The Quorus error for an exception raised by aioftp or the network, or ``None``."""
    where = location.redacted()
    if isinstance(exc, TransferError):
        return exc
    if isinstance(exc, aioftp.StatusCodeError):
        code, text = reply_of(exc)
        return for_reply(code, text, location, action)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransferError(
            f"{where}: the server's TLS certificate could not be verified "
            f"({exc.verify_message or exc.reason}); pass ca_bundle=PATH with the CA that "
            "signed it (or, knowingly, verify=false)",
            retryable=False,
        )
    if isinstance(exc, TimeoutError):
        return TransientError(f"{where}: timed out during {action}")
    if isinstance(exc, OSError | EOFError):
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return TransientError(f"{where}: connection lost during {action} ({reason})")
    if isinstance(exc, aioftp.AIOFTPException):
        return TransferError(f"{where}: {action} failed ({exc})")
    return None


@contextlib.contextmanager
def mapped(location: Location, action: str) -> Iterator[None]:
    """Turn aioftp, TLS and network exceptions raised inside into Quorus errors."""
    try:
        yield
    except Exception as exc:
        error = for_exception(exc, location, action)
        if error is None or error is exc:
            raise
        raise error from None


__all__ = ["for_exception", "for_reply", "mapped", "reply_of"]
