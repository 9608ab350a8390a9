"""The ``mtls`` auth method: options, principals from certificates, and real TLS handshakes on
127.0.0.1 where only a certificate from the configured CA gets through."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from anyio.abc import SocketStream
from anyio.streams.tls import TLSStream
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from quorus.core.auth import Authenticator, Principal
from quorus.core.errors import ConfigurationError
from quorus.core.testing.fixtures import anyio_backend
from quorus.tenant.mtls import (
    MtlsAuth,
    MtlsOptions,
    client_ssl_context,
    peer_credentials,
    server_ssl_context,
)

__all__ = ["anyio_backend"]  # the fixture runs every async test under asyncio and trio


class Pki:
    """A CA, the server's certificate, and files for the options."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server = self.leaf("server", "127.0.0.1", common_name="controller-1")

    def leaf(self, stem: str, *identities: str, **names: Any) -> dict[str, str]:
        cert = self.ca.issue_cert(*identities, **names)
        path = self.directory / f"{stem}.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(path))
        return {"ca": str(self.ca_file), "cert": str(path)}

    def der(self, *identities: str, **names: Any) -> bytes:
        cert = self.ca.issue_cert(*identities, **names)
        return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())

    def der_with_uri(self, common_name: str, dns: str, uri: str) -> bytes:
        """A leaf with a URI name, which trustme does not issue, signed by this CA."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(dns), x509.UniformResourceIdentifier(uri)]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


# -- options ------------------------------------------------------------------------------------


def test_options_need_a_readable_ca(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="needs a 'ca' option"):
        MtlsAuth.from_options({})
    with pytest.raises(ConfigurationError, match=r"'ca' option names .*missing\.pem"):
        MtlsAuth.from_options({"ca": str(tmp_path / "missing.pem")})


def test_unknown_options_and_sources_are_named(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option.*cafile"):
        MtlsOptions.from_options({"ca": str(pki.ca_file), "cafile": "x"})
    with pytest.raises(ConfigurationError, match="principal_from is 'email'"):
        MtlsOptions.from_options({"ca": str(pki.ca_file), "principal_from": "email"})
    with pytest.raises(ConfigurationError, match="check_hostname must be true or false"):
        MtlsOptions.from_options({"ca": str(pki.ca_file), "check_hostname": "no"})


def test_contexts_need_this_sides_certificate(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="needs a 'cert' option"):
        server_ssl_context({"ca": str(pki.ca_file)})
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        client_ssl_context({"ca": str(pki.ca_file), "cert": str(pki.ca_file)})


def test_contexts_require_peer_certificates_and_tls_1_2(pki: Pki) -> None:
    server = server_ssl_context(pki.server)
    client = client_ssl_context(pki.leaf("alice", common_name="alice"))
    for ctx in (server, client):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client.check_hostname
    relaxed = {**pki.leaf("bob", common_name="bob"), "check_hostname": False}
    assert not client_ssl_context(relaxed).check_hostname


def test_it_is_an_authenticator_of_method_mtls(pki: Pki) -> None:
    auth: Authenticator = MtlsAuth.from_options({"ca": str(pki.ca_file)})
    assert auth.method == "mtls"


# -- principals ---------------------------------------------------------------------------------

DECODED = {
    "subject": ((("organizationName", "Acme"),), (("commonName", "agent-7"),)),
    "subjectAltName": (("DNS", "agent-7.acme.example"), ("URI", "spiffe://acme/agent-7")),
}


@pytest.mark.parametrize(
    ("source", "name"),
    [("cn", "agent-7"), ("san-dns", "agent-7.acme.example"), ("san-uri", "spiffe://acme/agent-7")],
)
def test_the_principal_is_named_by_the_configured_field(pki: Pki, source: str, name: str) -> None:
    auth = MtlsAuth.from_options({"ca": str(pki.ca_file), "principal_from": source})
    assert auth.authenticate({"peer_certificate": DECODED}) == Principal(name, "mtls")
    der = pki.der_with_uri("agent-7", "agent-7.acme.example", "spiffe://acme/agent-7")
    assert auth.authenticate({"peer_certificate": der}) == Principal(name, "mtls")


def test_no_certificate_or_no_such_name_proves_nothing(pki: Pki) -> None:
    auth = MtlsAuth.from_options({"ca": str(pki.ca_file), "principal_from": "san-uri"})
    assert auth.authenticate({}) is None
    assert auth.authenticate({"token": "qrs_x"}) is None
    assert auth.authenticate({"peer_certificate": {"subject": ()}}) is None
    assert auth.authenticate({"peer_certificate": pki.der("host.example")}) is None
    assert auth.authenticate({"peer_certificate": b"not DER"}) is None


def test_der_from_another_ca_or_out_of_date_proves_nothing(pki: Pki, tmp_path: Path) -> None:
    auth = MtlsAuth.from_options({"ca": str(pki.ca_file)})
    (tmp_path / "other").mkdir()
    stranger = Pki(tmp_path / "other")
    assert auth.authenticate({"peer_certificate": stranger.der(common_name="mallory")}) is None
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    expired = pki.der(common_name="old", not_before=past, not_after=past + datetime.timedelta(1))
    assert auth.authenticate({"peer_certificate": expired}) is None
    assert auth.authenticate({"peer_certificate": pki.der(common_name="ok")}) == Principal(
        "ok", "mtls"
    )


def test_a_decoded_certificate_past_its_validity_proves_nothing_and_says_why(pki: Pki) -> None:
    # The handshake checked the dates once; a controller judging a connected agent again
    # must see that the certificate has expired since.
    auth = MtlsAuth.from_options({"ca": str(pki.ca_file)})
    current = {**DECODED, "notBefore": "Jan  1 00:00:00 2001 GMT",
               "notAfter": "Jan  1 00:00:00 2999 GMT"}
    assert auth.authenticate({"peer_certificate": current}) == Principal("agent-7", "mtls")
    assert auth.why_refused({"peer_certificate": current}) is None
    lapsed = {**current, "notAfter": "Jan  1 00:00:00 2002 GMT"}
    assert auth.authenticate({"peer_certificate": lapsed}) is None
    assert auth.why_refused({"peer_certificate": lapsed}) == (
        "the certificate for 'agent-7' expired at Jan  1 00:00:00 2002 GMT: issue a new one "
        "from the CA and restart the agent with it")
    early = {**current, "notBefore": "Jan  1 00:00:00 2999 GMT"}
    assert auth.authenticate({"peer_certificate": early}) is None
    assert "is not valid before Jan  1 00:00:00 2999 GMT" in str(
        auth.why_refused({"peer_certificate": early}))
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    expired = pki.der(common_name="old", not_before=past, not_after=past + datetime.timedelta(1))
    assert "the certificate for 'old' expired at 2001-01-02 00:00:00 UTC" in str(
        auth.why_refused({"peer_certificate": expired}))
    assert auth.why_refused({"peer_certificate": pki.der(common_name="ok")}) is None
    assert auth.why_refused({}) is None


# -- handshakes ---------------------------------------------------------------------------------


async def handshake(
    server_options: Mapping[str, Any], client_ctx: ssl.SSLContext
) -> tuple[Principal | None, str | None, bytes]:
    """One connection: what the server authenticated (or why the handshake failed) and what
    the client received (the principal's name, or nothing)."""
    auth = MtlsAuth.from_options({"ca": server_options["ca"]})
    server_ctx = server_ssl_context(server_options)
    outcome: dict[str, Any] = {"principal": None, "error": None}
    done = anyio.Event()

    async def serve(stream: SocketStream) -> None:
        try:
            tls = await TLSStream.wrap(
                stream, server_side=True, ssl_context=server_ctx, standard_compatible=False
            )
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            outcome["error"] = repr(exc)
            await stream.aclose()
            done.set()
            return
        principal = auth.authenticate(peer_credentials(tls))
        outcome["principal"] = principal
        await tls.send(principal.name.encode() if principal else b"-")
        await tls.aclose()
        done.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    received = b""
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        with anyio.fail_after(10):
            try:
                client = await anyio.connect_tcp(
                    "127.0.0.1", port, ssl_context=client_ctx, tls_standard_compatible=False
                )
                async with client:
                    received = await client.receive()
            except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                received = b""
            await done.wait()
        tg.cancel_scope.cancel()
    return outcome["principal"], outcome["error"], received


@pytest.mark.anyio
async def test_a_good_client_certificate_yields_its_cn(pki: Pki) -> None:
    client = client_ssl_context(pki.leaf("alice", common_name="alice"))
    principal, error, received = await handshake(pki.server, client)
    assert error is None
    assert principal == Principal("alice", "mtls")
    assert received == b"alice"


@pytest.mark.anyio
async def test_a_client_without_a_certificate_is_refused(pki: Pki) -> None:
    client = ssl.create_default_context(cafile=str(pki.ca_file))
    principal, error, received = await handshake(pki.server, client)
    assert principal is None and received == b""
    assert error is not None and "CERTIFICATE" in error.upper()


@pytest.mark.anyio
async def test_a_client_certificate_from_another_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    stranger = Pki(tmp_path / "other")
    # Trusts the real server, but presents a certificate the server's CA never issued.
    options = {**stranger.leaf("mallory", common_name="alice"), "ca": str(pki.ca_file)}
    principal, error, received = await handshake(pki.server, client_ssl_context(options))
    assert principal is None and received == b""
    assert error is not None and "CERTIFICATE" in error.upper()
