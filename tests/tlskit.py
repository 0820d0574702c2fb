"""Test certificates made with `cryptography`: a CA, leaves it signs, and self-signed leaves.

Import it from any test (`from tlskit import TestCA, self_signed, server_context`). Keys are
P-256 (fast); the extensions are the ones a strict verifier wants (key identifiers, key
usage, serverAuth), so a refusal in a test is always the one the test means.
"""
from __future__ import annotations

import ipaddress
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ONE_DAY = timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class TestCA:
    """A certificate authority that writes its certificate and the leaves it issues as PEM."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "Authserver Test CA") -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - ONE_DAY).not_valid_after(now + ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256()))
        slug = name.lower().replace(" ", "-")
        self.cafile = _write_pem(directory / f"{slug}.pem",
                                 self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, *hosts: str) -> tuple[Path, Path]:
        """A server certificate for `hosts` (DNS names or IP addresses): (certfile, keyfile)."""
        return _leaf(self.directory, hosts, self.key, self.cert)


def self_signed(directory: Path, *hosts: str) -> tuple[Path, Path]:
    """A certificate for `hosts` that signs itself, so no trust store vouches for it."""
    return _leaf(directory, hosts, None, None)


def server_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server-side TLS context presenting certfile."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _leaf(directory: Path, hosts: tuple[str, ...], ca_key, ca_cert) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ca_key or key
    issuer = ca_cert.subject if ca_cert else _name(hosts[0])
    issuer_public = ca_cert.public_key() if ca_cert else key.public_key()
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - ONE_DAY).not_valid_after(now + ONE_DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),
                       critical=False)
        .sign(signer, hashes.SHA256()))
    stem = f"{hosts[0]}-{cert.serial_number:x}"
    certfile = _write_pem(directory / f"{stem}.crt",
                          cert.public_bytes(serialization.Encoding.PEM))
    keyfile = _write_pem(directory / f"{stem}.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return certfile, keyfile
