"""TLS to the mail server is verified (chain and host name) before the password or a message
is sent, with STARTTLS and with implicit TLS; a refused certificate leaves the mail queued,
says why, is counted, and delivery resumes once the certificate is fixed (SPEC §5)."""
from __future__ import annotations

import logging
import socket
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from authserver.commands.mail import mail_cli
from authserver.extensions import db
from authserver.mail import outbox, sender
from authserver.mail.messages import Draft
from authserver.mail.models import OutboxMessage
from authserver.observability import REGISTRY
from authserver.outbound import is_loopback
from tlskit import SMTP_PASSWORD, SMTP_USER, SmtpServers, TestCA, self_signed

# aiosmtpd's own TLS flag only knows STARTTLS; under implicit TLS the AUTH is encrypted too.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MODES = ("starttls", "implicit")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
DRAFT = Draft(to="alice@example.com", subject="Your verification code",
              text="Your code:\n\n042917\n", html="<p>Your code: <b>042917</b></p>",
              kind="reset_code")


@pytest.fixture
def servers():
    running = SmtpServers()
    yield running
    running.stop_all()


@pytest.fixture
def ca(tmp_path):
    return TestCA(tmp_path)


def tls_app(make_mail_app, mode, port, cafile=None, server="localhost"):
    tls = {"MAIL_USE_TLS": True} if mode == "starttls" else {"MAIL_USE_SSL": True}
    return make_mail_app(MAIL_TRANSPORT="smtp", MAIL_SERVER=server, MAIL_PORT=port,
                         MAIL_USERNAME=SMTP_USER, MAIL_PASSWORD=SMTP_PASSWORD,
                         MAIL_CA_FILE=str(cafile) if cafile else None,
                         MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT=5,
                         **(tls if mode in MODES else {}))


def queue_and_try(app) -> int:
    with app.app_context():
        outbox.queue(DRAFT)
        db.session.commit()
    return sender.deliver_due(app, app.extensions[sender.TRANSPORT_EXT])


def stored(app) -> OutboxMessage:
    with app.app_context():
        return db.session.scalars(select(OutboxMessage)).one()


def rejected_count() -> float:
    return REGISTRY.get_sample_value("authserver_outbound_tls_rejected_total",
                                     {"protocol": "smtp"}) or 0.0


def assert_refused_and_queued(app, recorder, reason: str) -> None:
    """Nothing reached the server after the handshake; the row waits; status names why."""
    assert recorder.auth_commands == [] and recorder.logins == []
    assert recorder.envelopes == []
    row = stored(app)
    assert row.sent_at is None and row.failed_at is None and row.attempts == 1
    assert row.last_error == f"CertificateRejected: {reason}"
    status = app.test_cli_runner().invoke(mail_cli, ["status"]).output
    assert "queued: 1" in status
    assert f"last error: CertificateRejected: {reason}\n" in status


@pytest.mark.parametrize("trust", ["system CAs", "private CA file"])
@pytest.mark.parametrize("mode", MODES)
def test_a_self_signed_certificate_is_refused_before_auth_and_the_mail_stays_queued(
        make_mail_app, servers, free_port, tmp_path, ca, caplog, mode, trust):
    recorder = servers.start(mode, free_port, self_signed(tmp_path, "localhost", "127.0.0.1"))
    app = tls_app(make_mail_app, mode, free_port, ca.cafile if trust != "system CAs" else None)
    before = rejected_count()
    assert queue_and_try(app) == 0
    reason = f"certificate verify failed: self-signed certificate for localhost:{free_port}"
    assert_refused_and_queued(app, recorder, reason)
    assert rejected_count() == before + 1
    assert f"mail #1 (reset_code) attempt 1 failed: CertificateRejected: {reason}" in [
        r.getMessage() for r in caplog.records if r.name == "authserver.mail"]


@pytest.mark.parametrize("mode", MODES)
def test_a_certificate_for_another_host_name_from_the_trusted_ca_is_refused(
        make_mail_app, servers, free_port, ca, mode):
    recorder = servers.start(mode, free_port, ca.issue("smtp.example.net"))
    app = tls_app(make_mail_app, mode, free_port, ca.cafile)
    before = rejected_count()
    assert queue_and_try(app) == 0
    assert_refused_and_queued(
        app, recorder, "certificate verify failed: Hostname mismatch, certificate is not "
                       f"valid for 'localhost'. for localhost:{free_port}")
    assert rejected_count() == before + 1


@pytest.mark.parametrize("mode", MODES)
def test_a_certificate_for_the_configured_host_from_the_ca_file_is_delivered(
        make_mail_app, servers, free_port, ca, mode):
    recorder = servers.start(mode, free_port, ca.issue("localhost"))
    app = tls_app(make_mail_app, mode, free_port, ca.cafile)
    assert queue_and_try(app) == 1
    assert recorder.logins == [SMTP_USER]
    (envelope,) = recorder.envelopes
    assert envelope.rcpt_tos == ["alice@example.com"] and b"042917" in envelope.content
    assert stored(app).sent_at is not None


def test_an_ip_address_as_mail_server_is_checked_against_the_ip_san(
        make_mail_app, servers, free_port, ca):
    recorder = servers.start("starttls", free_port, ca.issue("127.0.0.1"))
    app = tls_app(make_mail_app, "starttls", free_port, ca.cafile, server="127.0.0.1")
    assert queue_and_try(app) == 1
    assert recorder.logins == [SMTP_USER]


@pytest.mark.parametrize("mode", MODES)
def test_delivery_resumes_on_the_next_try_once_the_certificate_is_fixed(
        make_mail_app, servers, free_port, tmp_path, ca, mode):
    app = tls_app(make_mail_app, mode, free_port, ca.cafile)
    transport = app.extensions[sender.TRANSPORT_EXT]
    bad = servers.start(mode, free_port, self_signed(tmp_path, "localhost"))
    assert queue_and_try(app) == 0
    retry_at = stored(app).next_attempt_at
    servers.stop(bad)
    good = servers.start(mode, free_port, ca.issue("localhost"))  # the fixed certificate
    assert sender.deliver_due(app, transport, now=retry_at - timedelta(seconds=1)) == 0
    assert sender.deliver_due(app, transport, now=retry_at) == 1
    assert len(good.envelopes) == 1 and good.logins == [SMTP_USER]
    row = stored(app)
    assert row.sent_at == retry_at and row.attempts == 2
    with app.app_context():
        assert sender.status(db.session)["queued"] == 0


def test_a_server_that_does_not_offer_starttls_gets_neither_the_login_nor_the_mail(
        make_mail_app, servers, free_port, ca):
    """STARTTLS stripping: with MAIL_USE_TLS there is no fallback to plain text."""
    stripped = servers.start("plain", free_port)
    app = tls_app(make_mail_app, "starttls", free_port, ca.cafile)
    assert queue_and_try(app) == 0
    assert stripped.auth_commands == [] and stripped.envelopes == []
    assert stored(app).last_error == ("SMTPNotSupportedError: STARTTLS extension not "
                                      "supported by server.")


def test_without_tls_the_password_goes_to_a_loopback_server(make_mail_app, servers, free_port):
    recorder = servers.start("plain", free_port)
    app = tls_app(make_mail_app, "plain", free_port, server="127.0.0.1")
    assert queue_and_try(app) == 1
    assert recorder.logins == [SMTP_USER] and len(recorder.envelopes) == 1


def outside_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the route, sends nothing
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if is_loopback(address) else address


def test_without_tls_the_password_is_withheld_from_a_server_off_loopback(
        make_mail_app, servers, free_port):
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to listen on")
    recorder = servers.start("plain", free_port, host=address)
    app = tls_app(make_mail_app, "plain", free_port, server=address)
    assert queue_and_try(app) == 0
    assert recorder.auth_commands == [] and recorder.envelopes == []
    row = stored(app)
    assert row.sent_at is None and row.failed_at is None
    assert row.last_error == (f"SmtpPasswordWithheld: not sending MAIL_PASSWORD unencrypted to "
                              f"{address}:{free_port}; set MAIL_USE_TLS or MAIL_USE_SSL")


@pytest.mark.parametrize("settings, warning", [
    (dict(MAIL_SERVER="smtp.example.com"),
     "will not send the password unencrypted to smtp.example.com"),
    (dict(MAIL_SERVER="smtp.example.com", MAIL_USE_TLS=True), None),
    (dict(MAIL_SERVER="smtp.example.com", MAIL_USE_SSL=True), None),
    (dict(MAIL_SERVER="localhost"), None),
    (dict(MAIL_SERVER="smtp.example.com", MAIL_PASSWORD=None), None),
    (dict(MAIL_SERVER="smtp.example.com", MAIL_USE_TLS=True, MAIL_USE_SSL=True),
     "MAIL_USE_TLS and MAIL_USE_SSL are both set"),
])
def test_start_up_warns_when_the_smtp_settings_would_keep_mail_queued(
        make_mail_app, caplog, settings, warning):
    caplog.set_level(logging.WARNING, logger="authserver.mail")
    make_mail_app(**{"MAIL_TRANSPORT": "smtp", "MAIL_USERNAME": SMTP_USER,
                     "MAIL_PASSWORD": SMTP_PASSWORD, **settings})
    warned = [r.getMessage() for r in caplog.records if r.name == "authserver.mail"]
    if warning is None:
        assert warned == []
    else:
        assert len(warned) == 1 and warning in warned[0]


def test_send_pending_now_retries_at_once_after_the_certificate_is_fixed(
        make_mail_app, servers, free_port, tmp_path, ca):
    app = tls_app(make_mail_app, "starttls", free_port, ca.cafile)
    cli = app.test_cli_runner()
    with freeze_time(T0):  # the 5 s retry delay stays ahead of us however slow the machine
        bad = servers.start("starttls", free_port, self_signed(tmp_path, "localhost"))
        assert queue_and_try(app) == 0
        servers.stop(bad)
        relay = servers.start("starttls", free_port, ca.issue("localhost"))
        waiting = cli.invoke(mail_cli, ["send-pending"])
        assert waiting.exit_code == 0 and "sent: 0" in waiting.output
        result = cli.invoke(mail_cli, ["send-pending", "--now"])
    assert result.exit_code == 0 and "sent: 1" in result.output
    assert len(relay.envelopes) == 1 and relay.logins == [SMTP_USER]
