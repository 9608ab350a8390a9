"""The ``mtls`` auth method: peers prove who they are with a certificate from a configured CA.

Configured like every ``quorus.auth`` method, by options: ``ca`` (PEM file of the CA
certificates that issue client certificates), ``cert``/``key``/``key_password`` (this side's
own certificate, for the TLS contexts), ``principal_from`` (``cn``, the default: the subject's
common name; ``san-uri`` or ``san-dns``: the first subject alternative name of that kind) and
``check_hostname`` (clients; default true). :func:`server_ssl_context` and
:func:`client_ssl_context` build TLS 1.2+ contexts that require the peer's certificate.

:meth:`MtlsAuth.authenticate` reads ``{"peer_certificate": ...}`` as the TLS layer filled it
(:func:`peer_credentials`): the decoded form Python's ``ssl`` gives for a verified peer, whose
validity period is checked again (a controller judging a connected agent again refuses a
certificate that expired since the handshake, and :meth:`MtlsAuth.why_refused` says so), or
the DER bytes, which are checked again against the CA (signature and validity period). Only
the TLS layer may fill it: never take it from what a client sends inside the connection.

A controller authenticates agents with it when configured with ``agent_auth: mtls`` (found
through the ``quorus.auth`` group; core never imports this package): the agent port is served
over TLS requiring certificates from ``agent_tls_ca`` (:mod:`quorus.core.tls`), ``ca``
defaults to that file, and the principal the certificate names must be the agent's id.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from anyio import TypedAttributeProvider
from anyio.streams.tls import TLSAttribute
from quorus.core import tls
from quorus.core.auth import Principal
from quorus.core.errors import ConfigurationError
from quorus.core.secrets import Secret, resolve_secret

PrincipalSource = Literal["cn", "san-uri", "san-dns"]
PRINCIPAL_SOURCES: tuple[PrincipalSource, ...] = ("cn", "san-uri", "san-dns")
_SAN_KIND = {"san-uri": "URI", "san-dns": "DNS"}
_OPTIONS = frozenset({"ca", "cert", "key", "key_password", "principal_from", "check_hostname"})


def _readable_file(options: Mapping[str, Any], name: str, what: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigurationError(
            f"the 'mtls' auth method's {name!r} option names {str(path)!r}, which is not a "
            f"readable file: give the path of {what}"
        )
    return str(path)


@dataclass(frozen=True, slots=True)
class MtlsOptions:
    """The ``mtls`` options, checked (see the module docstring)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    key_password: Secret | None = None
    principal_from: PrincipalSource = "cn"
    check_hostname: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MtlsOptions:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)} for the 'mtls' auth method: "
                f"it takes {', '.join(sorted(_OPTIONS))}"
            )
        ca = _readable_file(options, "ca", "the CA certificate(s) in PEM")
        if ca is None:
            raise ConfigurationError(
                "the 'mtls' auth method needs a 'ca' option: the PEM file of the CA that "
                "issues the peers' certificates"
            )
        source = str(options.get("principal_from", "cn"))
        if source not in PRINCIPAL_SOURCES:
            raise ConfigurationError(
                f"the 'mtls' option principal_from is {source!r}: use one of "
                f"{', '.join(PRINCIPAL_SOURCES)}"
            )
        password = options.get("key_password")
        check_hostname = options.get("check_hostname", True)
        if not isinstance(check_hostname, bool):
            raise ConfigurationError(
                f"the 'mtls' option check_hostname must be true or false, not {check_hostname!r}"
            )
        return cls(
            ca=ca,
            cert=_readable_file(options, "cert", "this side's certificate in PEM"),
            key=_readable_file(options, "key", "this side's private key in PEM"),
            key_password=resolve_secret(password) if isinstance(password, str) else None,
            principal_from=source,
            check_hostname=check_hostname,
        )


def _checked(options: Mapping[str, Any] | MtlsOptions) -> MtlsOptions:
    return options if isinstance(options, MtlsOptions) else MtlsOptions.from_options(options)


def _own_certificate(settings: MtlsOptions) -> str:
    if settings.cert is None:
        raise ConfigurationError(
            "the 'mtls' auth method needs a 'cert' option (and 'key', unless the certificate "
            "file holds it) for this side's own certificate"
        )
    return settings.cert


def server_ssl_context(options: Mapping[str, Any] | MtlsOptions) -> ssl.SSLContext:
    """A TLS 1.2+ server context that requires a client certificate issued by ``ca`` (built
    by :func:`quorus.core.tls.server_context`, as the controller's agent port is)."""
    settings = _checked(options)
    return tls.server_context(_own_certificate(settings), settings.key, ca=settings.ca,
                              key_password=settings.key_password, setting="mtls")


def client_ssl_context(options: Mapping[str, Any] | MtlsOptions) -> ssl.SSLContext:
    """A TLS 1.2+ client context presenting ``cert`` and trusting servers issued by ``ca``."""
    settings = _checked(options)
    # Peers on private networks are often addressed by IP without a matching SAN; the
    # operator can say so, the CA still vouches for the peer.
    return tls.client_context(settings.ca, _own_certificate(settings), settings.key,
                              key_password=settings.key_password,
                              check_hostname=settings.check_hostname, setting="mtls")


def peer_credentials(stream: TypedAttributeProvider) -> dict[str, Any]:
    """``{"peer_certificate": ...}`` from a TLS stream (anyio), for :meth:`MtlsAuth.authenticate`;
    empty when the peer presented no certificate."""
    verified = tls.peer_credentials(stream)
    if verified:
        return verified
    binary = stream.extra(TLSAttribute.peer_certificate_binary, None)
    return {tls.PEER_CERTIFICATE: binary} if binary else {}


def _name_from_decoded(certificate: Mapping[str, Any], source: PrincipalSource) -> str | None:
    if source == "cn":
        for rdn in certificate.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None
    kind = _SAN_KIND[source]
    for key, value in certificate.get("subjectAltName", ()):
        if key == kind:
            return str(value)
    return None


def _outside_validity(certificate: Mapping[str, Any], now: float) -> str | None:
    """How a decoded certificate (Python's ``ssl`` form) is out of its validity period at
    ``now``, or ``None`` (also when it carries no dates: the TLS layer checked it)."""
    try:
        after = certificate.get("notAfter")
        if isinstance(after, str) and now > ssl.cert_time_to_seconds(after):
            return f"expired at {after}"
        before = certificate.get("notBefore")
        if isinstance(before, str) and now < ssl.cert_time_to_seconds(before):
            return f"is not valid before {before}"
    except ValueError:
        return "carries dates that cannot be read"
    return None


class MtlsAuth:
    """The ``mtls`` method: the principal is named by the peer's certificate."""

    method = "mtls"

    def __init__(self, options: MtlsOptions) -> None:
        self.options = options
        self._authorities: list[Any] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MtlsAuth:
        return cls(MtlsOptions.from_options(options))

    def authenticate(self, credentials: Mapping[str, Any]) -> Principal | None:
        """The principal the peer's certificate names, or ``None`` (no certificate, one this
        CA did not issue or out of its validity period, or no name of the configured kind)."""
        certificate = credentials.get("peer_certificate")
        if isinstance(certificate, Mapping):
            if _outside_validity(certificate, time.time()) is not None:
                return None
            name = _name_from_decoded(certificate, self.options.principal_from)
        elif isinstance(certificate, (bytes, bytearray, memoryview)):
            name = self._name_from_der(bytes(certificate))
        else:
            return None
        return Principal(name, self.method) if name else None

    def why_refused(self, credentials: Mapping[str, Any]) -> str | None:
        """Why a certificate of the TLS layer proves nothing when it is out of its validity
        period (the handshake checked it once; a controller judging a connected agent again
        asks here once it has expired). ``None`` otherwise."""
        certificate = credentials.get("peer_certificate")
        if isinstance(certificate, Mapping):
            name = _name_from_decoded(certificate, self.options.principal_from) or \
                _name_from_decoded(certificate, "cn") or "?"
            problem = _outside_validity(certificate, time.time())
        elif isinstance(certificate, (bytes, bytearray, memoryview)):
            from cryptography import x509
            from cryptography.x509.oid import NameOID

            try:
                leaf = x509.load_der_x509_certificate(bytes(certificate))
            except ValueError:
                return None
            names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            name = str(names[0].value) if names else "?"
            now = datetime.now(UTC)
            problem = (f"expired at {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
                       if now > leaf.not_valid_after_utc else
                       f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
                       if now < leaf.not_valid_before_utc else None)
        else:
            return None
        if problem is None:
            return None
        return (f"the certificate for {name!r} {problem}: issue a new one from the CA and "
                "restart the agent with it")

    def _load_authorities(self) -> list[Any]:
        from cryptography import x509

        if self._authorities is None:
            try:
                self._authorities = x509.load_pem_x509_certificates(
                    Path(self.options.ca).read_bytes()
                )
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"the CA file {self.options.ca!r} cannot be read as PEM certificates: {exc}"
                ) from None
        return self._authorities

    def _name_from_der(self, der: bytes) -> str | None:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.x509.oid import NameOID

        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        now = datetime.now(UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return None
        for authority in self._load_authorities():
            try:
                leaf.verify_directly_issued_by(authority)
            except (ValueError, TypeError, InvalidSignature):
                continue
            break
        else:
            return None
        if self.options.principal_from == "cn":
            names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            return str(names[0].value) if names else None
        try:
            alternatives = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return None
        kind = (
            x509.UniformResourceIdentifier
            if self.options.principal_from == "san-uri"
            else x509.DNSName
        )
        values = alternatives.value.get_values_for_type(kind)
        return str(values[0]) if values else None


__all__ = [
    "PRINCIPAL_SOURCES",
    "MtlsAuth",
    "MtlsOptions",
    "PrincipalSource",
    "client_ssl_context",
    "peer_credentials",
    "server_ssl_context",
]
