"""Translation of HTTP statuses and httpx failures into Quorus's error family.

Every message names the operation and the redacted URI, and says what to do where there is
something to do. Credentials never reach these messages: request URLs are built without
userinfo and credentials travel in ``Authorization`` headers, which httpx never puts into
exception text.
"""

from __future__ import annotations

import email.utils
import ssl
import time

import httpx
from quorus.core.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransferError,
    TransientError,
)

#: Statuses besides 5xx after which a later attempt may succeed.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP-date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def status_error(response: httpx.Response, action: str, what: str) -> TransferError:
    """The error for a response whose status means failure.

    ``action`` is the verb ("read", "upload to", ...), ``what`` the redacted URI.
    """
    status = response.status_code
    reason = f"{status} {response.reason_phrase}".strip()
    if status in (404, 410):
        return NotFoundError(f"cannot {action} {what}: {reason} (no such file on the server)")
    if status == 401:
        return AuthenticationError(
            f"cannot {action} {what}: {reason}; the server rejected the credentials or needs "
            "some (options bearer_token, or username and password)"
        )
    if status == 403:
        return PermissionDeniedError(f"cannot {action} {what}: {reason} (access denied)")
    if status == 407:
        return AuthenticationError(f"cannot {action} {what}: {reason} (proxy authentication)")
    if status in RETRYABLE_STATUSES or 500 <= status < 600:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        later = f"; the server asks to retry in {retry_after:g} s" if retry_after is not None else ""
        return TransientError(f"cannot {action} {what}: {reason}{later}", retry_after=retry_after)
    if 300 <= status < 400:
        target = response.headers.get("Location", "?")
        return TransferError(
            f"cannot {action} {what}: the server redirects to {target}; use that URL instead"
        )
    return TransferError(f"cannot {action} {what}: {reason}")


def transport_error(exc: httpx.HTTPError, action: str, what: str) -> TransferError:
    """The error for a request that got no usable response (connection, TLS, timeouts)."""
    if isinstance(exc, httpx.TooManyRedirects):
        return TransferError(
            f"cannot {action} {what}: too many redirects (a redirect loop, or more than the "
            "max_redirects option allows)"
        )
    verify_error = _certificate_error(exc)
    if verify_error is not None:
        return TransferError(
            f"cannot {action} {what}: the server's TLS certificate could not be verified "
            f"({verify_error.verify_message or verify_error.reason}); pass the CA bundle that "
            "signed it as option ca_bundle (-o https.ca_bundle=/path/to/ca.pem)",
            retryable=False,
        )
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting timed out",
            httpx.ReadTimeout: "the server stopped sending (read timeout)",
            httpx.WriteTimeout: "the server stopped receiving (write timeout)",
            httpx.PoolTimeout: "no free connection in the pool (pool timeout)",
        }.get(type(exc), "timed out")
        return TransientError(f"cannot {action} {what}: {kind}")
    if isinstance(exc, httpx.ConnectError):
        return TransientError(f"cannot {action} {what}: cannot connect ({_reason(exc)})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientError(
            f"cannot {action} {what}: the server broke off the exchange ({_reason(exc)})"
        )
    if isinstance(exc, httpx.TransportError):
        # ReadError, WriteError, CloseError, ProxyError, ...: the connection failed.
        return TransientError(f"cannot {action} {what}: connection failed ({_reason(exc)})")
    return TransferError(f"cannot {action} {what}: {_reason(exc)}")


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind ``exc``, if that is what it is.

    Under asyncio it is the direct cause; under trio it sits one level deeper (behind
    ``trio.BrokenResourceError``), so the whole chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["RETRYABLE_STATUSES", "parse_retry_after", "status_error", "transport_error"]
