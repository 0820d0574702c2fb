"""Issue #18 end to end, mail configured as deploy/authserver.env shows (STARTTLS, a login).

Someone on the path to the mail server answers with a certificate that the CA file does not
vouch for: it gets neither the SMTP login nor the reset code, the code waits in the outbox,
`authserver mail status` says why; once the real server answers, the code arrives and works.
"""
from __future__ import annotations

import email
import email.policy

import pytest

from authserver.mail import sender
from reset_steps import ResetActions, deliver, goes_to_confirm, queued
from smtp_sink import code_in, use_smtp
from support import free_port, make_user
from tlskit import SMTP_PASSWORD, SMTP_USER, SmtpServers, TestCA, self_signed


@pytest.fixture
def servers():
    running = SmtpServers()
    yield running
    running.stop_all()


@pytest.fixture
def ca(tmp_path):
    return TestCA(tmp_path)


@pytest.fixture
def smtp_port(settings, ca):
    """Mail to smtp at localhost:PORT with STARTTLS and a login; the CA file is `ca`'s."""
    port = free_port()
    use_smtp(settings, port)
    settings.update(MAIL_SERVER="localhost", MAIL_USE_TLS=True, MAIL_USERNAME=SMTP_USER,
                    MAIL_PASSWORD=SMTP_PASSWORD, MAIL_CA_FILE=str(ca.cafile))
    return port


def test_a_server_with_an_untrusted_certificate_gets_neither_the_login_nor_the_code(
        smtp_port, ca, app, client, runner, servers, tmp_path):
    make_user(app)
    interceptor = servers.start("starttls", smtp_port, self_signed(tmp_path, "attacker.invalid"))
    assert goes_to_confirm(ResetActions(client).send_code("alice"), "alice")
    assert deliver(app) == 0
    assert interceptor.auth_commands == [] and interceptor.envelopes == []
    (row,) = queued(app)
    assert row.sent_at is None and row.failed_at is None
    status = runner.invoke(args=["mail", "status"]).output
    assert ("last error: CertificateRejected: certificate verify failed: self-signed "
            f"certificate for localhost:{smtp_port}\n") in status

    servers.stop(interceptor)
    relay = servers.start("starttls", smtp_port, ca.issue("localhost"))
    transport = app.extensions[sender.TRANSPORT_EXT]
    assert sender.deliver_due(app, transport, now=row.next_attempt_at) == 1
    assert relay.logins == [SMTP_USER]
    (envelope,) = relay.envelopes
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert ResetActions(client).confirm("alice", code_in(message)).status_code == 303
