"""Certificates for tests of TLS links: a CA that issues server and client certificates into
PEM files, expired ones included.

Built with the ``cryptography`` library (a test dependency): each :class:`TestCa` has its own
EC P-256 key, so a second instance is a rogue CA whose certificates the first one's trust
store refuses::

    ca = TestCa(tmp_path / "pki")
    controller = ca.issue("controller", "controller-1")       # also names 127.0.0.1, localhost
    agent = ca.issue("agent", "agent-1")
    expired = ca.issue("old", "agent-1", expired=True)
    brief = ca.issue("brief", "agent-1", valid_for=3)          # expires in 3 s
    rogue = TestCa(tmp_path / "rogue", "Rogue CA").issue("rogue", "agent-1")
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What a certificate names besides its common name unless told otherwise.
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """One issued certificate: its PEM files, and the DER bytes of the certificate."""

    common_name: str
    cert: Path
    key: Path
    der: bytes


def _alternative_name(name: str) -> Any:
    from cryptography import x509

    if "://" in name:
        return x509.UniformResourceIdentifier(name)
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class TestCa:
    """A certificate authority writing its certificate (``ca_file``) and what it issues
    under ``directory``."""

    __test__ = False  # not a test class, whatever pytest's name pattern says

    def __init__(self, directory: Path, name: str = "Quorus Test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        names: tuple[str, ...] = LOOPBACK_NAMES,
        expired: bool = False,
        key_password: str | None = None,
        valid_for: float | None = None,
    ) -> IssuedCertificate:
        """A certificate for ``common_name`` (also naming ``names``: IPs, DNS names or URIs),
        usable by servers and clients, written to ``STEM.pem`` and ``STEM.key``. ``expired``:
        its validity ended an hour ago. ``valid_for``: it expires that many seconds from now
        (a day by default). ``key_password``: the key file is encrypted."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            start, end = now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)
        else:
            lifetime = (datetime.timedelta(days=1) if valid_for is None
                        else datetime.timedelta(seconds=valid_for))
            start, end = now - datetime.timedelta(hours=1), now + lifetime
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_alternative_name(n) for n in names]),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.encode())
            if key_password else serialization.NoEncryption()
        )
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ))
        key_path.chmod(0o600)
        return IssuedCertificate(
            common_name, cert_path, key_path,
            certificate.public_bytes(serialization.Encoding.DER),
        )


__all__ = ["LOOPBACK_NAMES", "IssuedCertificate", "TestCa"]
