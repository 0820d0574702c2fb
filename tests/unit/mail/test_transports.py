"""Transports: console + .eml files, real SMTP through aiosmtpd, and SMTP being down."""
from __future__ import annotations

import email
import email.policy
import io
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from authserver.extensions import db
from authserver.mail import outbox, sender
from authserver.mail.messages import Draft
from authserver.mail.models import OutboxMessage
from authserver.mail.transports import (ConsoleFileTransport, MemoryTransport, SmtpTransport,
                                        make_transport)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
DRAFT = Draft(to="alice@example.com", subject="Your verification code",
              text="Your code:\n\n042917\n", html="<p>Your code: <b>042917</b></p>",
              kind="reset_code")


class Inbox:
    """An aiosmtpd handler that keeps every envelope."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def start_smtp():
    controllers = []

    def start(port):
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return inbox

    yield start
    for controller in controllers:
        controller.stop()


def smtp_app(make_mail_app, port):
    return make_mail_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port,
                         MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT=5)


def queue_one(app):
    with app.app_context():
        outbox.queue(DRAFT)
        db.session.commit()


def parts_of(raw: bytes) -> dict:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return {part.get_content_type(): part.get_content() for part in message.walk()
            if not part.is_multipart()}


def stored(app):
    with app.app_context():
        return db.session.scalars(select(OutboxMessage)).one()


def test_make_transport_follows_the_setting(make_mail_app):
    assert isinstance(make_transport(make_mail_app(MAIL_TRANSPORT="memory")), MemoryTransport)
    assert isinstance(make_transport(make_mail_app(MAIL_TRANSPORT="console")),
                      ConsoleFileTransport)
    smtp = make_transport(make_mail_app(MAIL_TRANSPORT="smtp", MAIL_TIMEOUT=3))
    assert isinstance(smtp, SmtpTransport) and smtp.timeout == 3
    assert isinstance(make_transport(make_mail_app(MAIL_TRANSPORT=None)), ConsoleFileTransport)
    with pytest.raises(ValueError):
        make_transport(make_mail_app(MAIL_TRANSPORT="carrier-pigeon"))


def test_console_transport_prints_and_writes_an_eml_with_both_parts(make_mail_app):
    app = make_mail_app(MAIL_TRANSPORT="console")
    stream = io.StringIO()
    transport = ConsoleFileTransport(Path(app.instance_path, "mail"),
                                     "Authserver <a@example.com>", stream=stream)
    queue_one(app)
    assert sender.deliver_due(app, transport, now=T0 + timedelta(days=1)) == 1
    printed = stream.getvalue()
    assert "To: alice@example.com" in printed and "Subject: Your verification code" in printed
    assert "042917" in printed
    (path,) = Path(app.instance_path, "mail").glob("*.eml")
    assert path.name.endswith(f"-{stored(app).id}-reset_code.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "alice@example.com" and message["Subject"] == DRAFT.subject
    parts = parts_of(path.read_bytes())
    assert "042917" in parts["text/plain"] and "<b>042917</b>" in parts["text/html"]


def test_smtp_transport_delivers_text_and_html_to_a_real_server(make_mail_app, free_port,
                                                                  start_smtp):
    inbox = start_smtp(free_port)
    app = smtp_app(make_mail_app, free_port)
    queue_one(app)
    assert sender.deliver_due(app, app.extensions[sender.TRANSPORT_EXT]) == 1
    (envelope,) = inbox.envelopes
    assert envelope.rcpt_tos == ["alice@example.com"]
    assert envelope.mail_from == "no-reply@example.com"
    parts = parts_of(envelope.content)
    assert "042917" in parts["text/plain"] and "<b>042917</b>" in parts["text/html"]
    assert stored(app).sent_at is not None


def test_smtp_down_fails_fast_then_delivers_once_the_server_is_up(make_mail_app, free_port,
                                                                   start_smtp):
    app = smtp_app(make_mail_app, free_port)
    transport = app.extensions[sender.TRANSPORT_EXT]
    queue_one(app)
    started = time.monotonic()
    assert sender.deliver_due(app, transport) == 0
    assert time.monotonic() - started < 3
    row = stored(app)
    assert row.attempts == 1 and row.last_error.startswith("ConnectionRefusedError")
    inbox = start_smtp(free_port)
    later = row.next_attempt_at + timedelta(seconds=1)
    assert sender.deliver_due(app, transport, now=later) == 1
    assert sender.deliver_due(app, transport, now=later + timedelta(hours=1)) == 0
    assert len(inbox.envelopes) == 1
    assert stored(app).sent_at == later


def test_smtp_server_that_never_answers_times_out(make_mail_app, free_port):
    app = make_mail_app(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port,
                        MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT=0.5)
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", free_port))
        silent.listen(5)
        queue_one(app)
        started = time.monotonic()
        assert sender.deliver_due(app, app.extensions[sender.TRANSPORT_EXT]) == 0
        assert time.monotonic() - started < 3
    assert stored(app).last_error.endswith("timed out")


def test_console_never_prints_a_temporary_password_but_the_file_has_it(make_mail_app):
    app = make_mail_app(MAIL_TRANSPORT="console")
    stream = io.StringIO()
    transport = ConsoleFileTransport(Path(app.instance_path, "mail"), "a@example.com",
                                     stream=stream)
    with app.app_context():
        outbox.queue(Draft(to="bob@example.com", subject="Your temporary password",
                           text="Password:\n\nS3cret-Temp-Pw\n", html="<p>S3cret-Temp-Pw</p>",
                           kind="temporary_password"))
        db.session.commit()
    assert sender.deliver_due(app, transport) == 1
    assert "S3cret-Temp-Pw" not in stream.getvalue()
    assert "Subject: Your temporary password" in stream.getvalue()
    (path,) = Path(app.instance_path, "mail").glob("*-temporary_password.eml")
    assert "S3cret-Temp-Pw" in parts_of(path.read_bytes())["text/plain"]
    assert path.stat().st_mode & 0o777 == 0o600
