"""Test TLS: certificates made with `cryptography` (a CA, leaves it signs, self-signed
leaves) and an aiosmtpd server that requires TLS and AUTH and records what reached it.

Import it from any test (`from tlskit import TestCA, self_signed, SmtpServers`). Keys are
P-256 (fast); the extensions are the ones a strict verifier wants (key identifiers, key
usage, serverAuth), so a refusal in a test is always the one the test means. Validity is a
fixed 2000-2100 window, not "now", so certificates made under freezegun still verify
against OpenSSL's real clock.
"""
from __future__ import annotations

import functools
import ipaddress
import ssl
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FROM = datetime(2000, 1, 1, tzinfo=timezone.utc)
VALID_UNTIL = datetime(2100, 1, 1, tzinfo=timezone.utc)
SMTP_USER, SMTP_PASSWORD = "mailer", "s3cret-smtp-password"


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
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(VALID_FROM).not_valid_after(VALID_UNTIL)
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
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(VALID_FROM).not_valid_after(VALID_UNTIL)
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


class SmtpRecorder:
    """aiosmtpd handler: accepted envelopes, every AUTH command that reached the server, and
    the logins that succeeded (SMTP_USER with SMTP_PASSWORD)."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.auth_commands: list[str] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (auth_data.login == SMTP_USER.encode()
              and auth_data.password == SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(SMTP_USER)
        return AuthResult(success=ok)


class _RecordingSMTP(SMTP):
    @functools.wraps(SMTP.smtp_AUTH)
    async def smtp_AUTH(self, arg: str) -> None:  # noqa: N802 (aiosmtpd's naming)
        self.event_handler.auth_commands.append(arg)
        await super().smtp_AUTH(arg)


class _RecordingController(Controller):
    def factory(self):
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)


class SmtpServers:
    """aiosmtpd servers requiring AUTH, and TLS per mode: "starttls" (required before AUTH
    and MAIL), "implicit" (TLS from the first byte) or "plain"; stop_all() in teardown.

    Under implicit TLS aiosmtpd warns that AUTH does not require TLS (its flag only knows
    STARTTLS): filter "ignore:Requiring AUTH while not requiring TLS" in such tests.
    """

    def __init__(self) -> None:
        self.running: dict[int, Controller] = {}

    def start(self, mode: str, port: int, cert: tuple[Path, Path] | None = None,
              host: str = "127.0.0.1") -> SmtpRecorder:
        recorder = SmtpRecorder()
        options = dict(hostname=host, port=port, auth_required=True,
                       authenticator=recorder.authenticate)
        if mode == "starttls":
            options.update(tls_context=server_context(*cert), require_starttls=True)
        elif mode == "implicit":
            options.update(ssl_context=server_context(*cert), auth_require_tls=False)
        else:
            options.update(auth_require_tls=False)
        controller = _RecordingController(recorder, **options)
        controller.start()
        self.running[id(recorder)] = controller
        return recorder

    def stop(self, recorder: SmtpRecorder) -> None:
        self.running.pop(id(recorder)).stop()

    def stop_all(self) -> None:
        while self.running:
            self.running.popitem()[1].stop()
