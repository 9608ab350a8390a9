"""TLS for Quorus's TCP links (agents to controllers, Raft peers): contexts from PEM files,
handshakes that fail with a reason a person can act on, and the peer's verified certificate
as credentials for an auth method.

- :func:`server_context`: TLS 1.2+; given a CA, the peer must present a certificate that CA
  issued and that is within its validity period (mutual TLS).
- :func:`client_context`: TLS 1.2+; verifies the server against the CA (the system's when
  none is given), optionally its name, and presents this side's certificate when given.
- :func:`accept` and :func:`connect`: the handshake on an open TCP stream, within a timeout;
  :class:`TlsHandshakeError` says why it failed (:func:`explain`). The alert that tells the
  peer why is sent before the connection closes, so both sides log the reason.
- :func:`peer_credentials`: ``{"peer_certificate": ...}`` for
  :meth:`~quorus.core.auth.Authenticator.authenticate`: the certificate the handshake
  verified, as Python's ``ssl`` decodes it. Only the TLS layer fills this key.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream
from quorus.core.errors import ConfigurationError, QuorusError
from quorus.core.secrets import Secret

#: Seconds a TLS handshake may take before the connection is given up.
HANDSHAKE_TIMEOUT = 10.0
#: The credentials key :func:`peer_credentials` fills; never taken from what a peer sends.
PEER_CERTIFICATE = "peer_certificate"


class TlsHandshakeError(QuorusError):
    """The TLS handshake failed; the message says why (see :func:`explain`)."""


# -- contexts -------------------------------------------------------------------------------------


def _readable(path: str | Path, setting: str, what: str) -> str:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ConfigurationError(
            f"{setting}: {str(resolved)!r} is not a readable file; give the path of {what}"
        )
    return str(resolved)


def _load_own(ctx: ssl.SSLContext, cert: str | Path, key: str | Path | None,
              key_password: Secret | None, setting: str) -> None:
    cert_file = _readable(cert, f"{setting}_cert", "this side's certificate (PEM)")
    key_file = _readable(key, f"{setting}_key", "this side's private key (PEM)") if key else None
    try:
        ctx.load_cert_chain(cert_file, key_file,
                            key_password.reveal() if key_password is not None else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"{setting}_cert {cert_file!r} and {setting}_key {key_file!r} cannot be loaded "
            f"({exc}): check both are PEM, the key belongs to the certificate, and its "
            "password is right"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: str | Path, setting: str) -> None:
    ca_file = _readable(ca, f"{setting}_ca", "the CA certificate(s) in PEM")
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"{setting}_ca {ca_file!r} holds no usable PEM certificate ({exc})"
        ) from None


def server_context(cert: str | Path, key: str | Path | None = None, *,
                   ca: str | Path | None = None, key_password: Secret | None = None,
                   setting: str = "tls") -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``cert`` (with ``key``, unless the certificate
    file holds it); with ``ca``, clients must present a certificate ``ca`` issued.
    ``setting`` prefixes the option names in errors (``agent_tls`` → ``agent_tls_cert``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_own(ctx, cert, key, key_password, setting)
    if ca is not None:
        _load_ca(ctx, ca, setting)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: str | Path | None, cert: str | Path | None = None,
                   key: str | Path | None = None, *, key_password: Secret | None = None,
                   check_hostname: bool = True, setting: str = "tls") -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies servers against ``ca`` (the system's CAs when
    ``None``) and, with ``check_hostname``, that the certificate names the address dialled;
    it presents ``cert`` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if ca is not None:
        _load_ca(ctx, ca, setting)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert is not None:
        _load_own(ctx, cert, key, key_password, setting)
    return ctx


# -- why a handshake or a session failed ----------------------------------------------------------

_NOT_OUR_CA = {2, 18, 19, 20, 21}  # X509_V_ERR_* for an issuer that is not the configured CA
_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "refused our certificate: it was not issued by a CA {peer} trusts",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "refused our certificate: it has expired",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "requires a client certificate and we presented none",
    "SSLV3_ALERT_BAD_CERTIFICATE": "refused our certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "refused our certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "refused our certificate (wrong key usage?)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "refused our certificate: it is revoked",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "shares no TLS version or cipher with us",
    "TLSV1_ALERT_PROTOCOL_VERSION": "shares no TLS version with us",
}


def explain(exc: BaseException, *, peer: str = "the peer") -> str:
    """What a TLS failure means, naming ``peer`` (``"the agent"``, ``"the controller"``)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code, message = exc.verify_code, exc.verify_message
        if code == 10:
            return f"{peer}'s certificate has expired ({message})"
        if code == 9:
            return f"{peer}'s certificate is not valid yet ({message})"
        if code in _NOT_OUR_CA:
            return f"{peer}'s certificate was not issued by the configured CA ({message})"
        if code in (62, 64):
            return (f"{peer}'s certificate does not name the address dialled ({message}); "
                    "issue it for that name or IP, or turn the hostname check off")
        return f"{peer}'s certificate was refused: {message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _ALERTS:
            return f"{peer} {_ALERTS[reason].format(peer=peer)} ({exc.reason})"
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return f"{peer} presented no certificate; a client certificate is required"
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNSUPPORTED_PROTOCOL",
                      "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return f"{peer} does not speak TLS (a plain TCP client?) ({reason})"
        if isinstance(exc, ssl.SSLEOFError) or "EOF" in reason:
            return f"{peer} closed the connection during the TLS handshake"
        return f"TLS error with {peer}: {reason or exc}"
    if isinstance(exc, (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError)):
        return (f"{peer} closed the connection during the TLS handshake (does it serve TLS "
                "there, and does it trust our certificate?)")
    if isinstance(exc, TimeoutError):
        return f"{peer} did not complete the TLS handshake in time"
    return f"TLS handshake with {peer} failed: {type(exc).__name__}: {exc}"


# -- handshakes -----------------------------------------------------------------------------------


_Args = TypeVarTuple("_Args")
_Result = TypeVar("_Result")


class _AlertingTLSStream(TLSStream):
    """anyio's TLS stream, which also sends the alert saying why the handshake failed (anyio
    drops it, so the peer would only see the connection close)."""

    async def _call_sslobject_method(
        self, func: Callable[[Unpack[_Args]], _Result], *args: *_Args
    ) -> _Result:
        try:
            return await super()._call_sslobject_method(func, *args)
        except ssl.SSLError:
            bio = getattr(self, "_write_bio", None)
            pending = bio.read() if isinstance(bio, ssl.MemoryBIO) else b""
            if pending:
                with contextlib.suppress(Exception), anyio.move_on_after(1):
                    await self.transport_stream.send(pending)
            raise


async def _handshake(stream: ByteStream, context: ssl.SSLContext, *, server_side: bool,
                     hostname: str | None, handshake_timeout: float, peer: str) -> TLSStream:
    try:
        with anyio.fail_after(handshake_timeout):
            return await _AlertingTLSStream.wrap(
                stream, server_side=server_side, hostname=hostname, ssl_context=context,
                standard_compatible=False,
            )
    except (ssl.SSLError, OSError, TimeoutError, anyio.EndOfStream,
            anyio.BrokenResourceError) as exc:
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(stream)
        raise TlsHandshakeError(f"TLS handshake failed: {explain(exc, peer=peer)}") from None
    except BaseException:
        # Cancelled mid-handshake (the node or the link is stopping): the socket is ours to
        # close, or it is left to the garbage collector.
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(stream)
        raise


async def accept(stream: ByteStream, context: ssl.SSLContext, *,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 peer: str = "the client") -> TLSStream:
    """The server's side of the handshake on ``stream`` (closed if it fails)."""
    return await _handshake(stream, context, server_side=True, hostname=None,
                            handshake_timeout=handshake_timeout, peer=peer)


async def connect(stream: ByteStream, context: ssl.SSLContext, hostname: str, *,
                  handshake_timeout: float = HANDSHAKE_TIMEOUT,
                  peer: str = "the server") -> TLSStream:
    """The client's side of the handshake on ``stream`` with the server at ``hostname``
    (checked against its certificate when the context says so; closed if it fails)."""
    return await _handshake(stream, context, server_side=False, hostname=hostname,
                            handshake_timeout=handshake_timeout, peer=peer)


def peer_credentials(stream: Any) -> dict[str, Any]:
    """``{"peer_certificate": decoded}`` for a TLS stream whose peer presented a certificate
    the handshake verified; ``{}`` otherwise (plain TCP, or no client certificate)."""
    extra = getattr(stream, "extra", None)
    if extra is None:
        return {}
    decoded = extra(TLSAttribute.peer_certificate, None)
    return {PEER_CERTIFICATE: decoded} if decoded else {}


def peer_name(certificate: Any) -> str | None:
    """The common name of a decoded certificate, for logs."""
    if not isinstance(certificate, dict):
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "PEER_CERTIFICATE",
    "TlsHandshakeError",
    "accept",
    "client_context",
    "connect",
    "explain",
    "peer_credentials",
    "peer_name",
    "server_context",
]
