"""A real SMTP server for end-to-end tests: aiosmtpd on 127.0.0.1 at a free port.

Import the fixtures into a test module (`from smtp_sink import smtp_server  # noqa: F401`).
They live here rather than in tests/e2e/conftest.py because a second conftest.py would
shadow tests/conftest.py for every `from support import ...` in this folder.
"""
from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

from support import free_port

CODE_LINE = re.compile(r"^(\d{6})$", re.MULTILINE)


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def to(self, address: str, subject: str = "") -> list[EmailMessage]:
        """Messages for one recipient whose subject contains `subject`."""
        return [m for m in self.messages
                if m["X-Envelope-To"] == address and subject in str(m["Subject"])]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least `count` messages arrived (a started sender delivers them)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.messages)} of {count} messages arrived"
                self._arrived.wait(left)
        return list(self.messages)


class SmtpSink:
    """One running server: its port and its inbox."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def parts(message: EmailMessage) -> dict[str, str]:
    """{content type: decoded text, line ends as in Python} of every leaf part."""
    return {part.get_content_type(): part.get_content().replace("\r\n", "\n")
            for part in message.walk() if not part.is_multipart()}


def code_in(message: EmailMessage) -> str:
    """The verification code: the 6 digits on a line of their own in the text part."""
    match = CODE_LINE.search(parts(message)["text/plain"])
    assert match, "no code on a line of its own"
    return match.group(1)


@pytest.fixture
def start_smtp():
    """Start an SMTP sink on a given port (or a free one); every one is stopped afterwards."""
    sinks: list[SmtpSink] = []

    def start(port: int | None = None) -> SmtpSink:
        sinks.append(SmtpSink(port or free_port()).start())
        return sinks[-1]

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture
def smtp_server(start_smtp, settings):
    """A running SMTP sink, and `settings` pointed at it (real Flask-Mail, nothing suppressed)."""
    sink = start_smtp()
    use_smtp(settings, sink.port)
    return sink


def use_smtp(settings: dict, port: int) -> dict:
    settings.update(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port,
                    MAIL_SUPPRESS_SEND=False, MAIL_TIMEOUT=5,
                    MAIL_DEFAULT_SENDER="Authserver <no-reply@example.com>")
    return settings
