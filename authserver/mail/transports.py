"""Where delivered mail goes: an SMTP server, the console and files, or a list.

A transport raises on failure; the sender records the error and retries.
"""
from __future__ import annotations

import logging
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Callable, Mapping, Protocol, TextIO

import flask_mail
from flask import Flask, current_app

from .. import clock, outbound
from .models import OutboxMessage

log = logging.getLogger("authserver.mail")

TRANSPORT_NAMES = ("smtp", "console", "memory")


class Transport(Protocol):
    def deliver(self, msg: OutboxMessage) -> None:
        """Hand one message over, or raise."""


class SmtpPasswordWithheld(ConnectionError):
    """MAIL_PASSWORD would have crossed the network unencrypted; the login was not sent."""


class _VerifiedConnection(flask_mail.Connection):
    """Flask-Mail's connection with verified TLS, a socket timeout, and a login that is only
    sent over verified TLS or to a loopback server (ASVS 5 V12.3)."""

    def __init__(self, state, timeout: float, cafile: str | None) -> None:
        super().__init__(state)
        self.timeout = timeout
        self.cafile = cafile

    def configure_host(self) -> smtplib.SMTP:
        """Connect (implicit TLS or STARTTLS, both verified), then log in if allowed."""
        mail = self.mail
        context = outbound.ssl_context(self.cafile) if mail.use_ssl or mail.use_tls else None
        with outbound.verified_tls("smtp", mail.server, mail.port):
            if mail.use_ssl:
                host = smtplib.SMTP_SSL(mail.server, mail.port, timeout=self.timeout,
                                        context=context)
            else:
                host = smtplib.SMTP(mail.server, mail.port, timeout=self.timeout)
        # No set_debuglevel(MAIL_DEBUG): smtplib's debug output prints the AUTH line, password
        # included, to stderr, which ends up in the log.
        try:
            if mail.use_tls:  # no STARTTLS offered: smtplib raises, there is no fallback
                with outbound.verified_tls("smtp", mail.server, mail.port):
                    host.starttls(context=context)
            if mail.username and mail.password:
                self._check_login_allowed(host)
                host.login(mail.username, mail.password)
        except BaseException:
            host.close()
            raise
        return host

    def _check_login_allowed(self, host: smtplib.SMTP) -> None:
        """Verified TLS (the only TLS this class makes), or a peer on this machine."""
        encrypted = isinstance(host.sock, ssl.SSLSocket)
        if encrypted or outbound.is_loopback(host.sock.getpeername()[0]):
            return
        raise SmtpPasswordWithheld(
            f"not sending MAIL_PASSWORD unencrypted to {self.mail.server}:{self.mail.port}; "
            "set MAIL_USE_TLS or MAIL_USE_SSL")


class SmtpTransport:
    """Flask-Mail over SMTP; needs an app context (the sender pushes one)."""

    def __init__(self, timeout: float = 10.0, cafile: str | None = None) -> None:
        self.timeout = timeout
        self.cafile = cafile

    def deliver(self, msg: OutboxMessage) -> None:
        """Send the text and HTML parts through MAIL_SERVER, raising on any SMTP or TLS error."""
        sender = current_app.config.get("MAIL_DEFAULT_SENDER")
        message = flask_mail.Message(subject=msg.subject, recipients=[msg.to], body=msg.text,
                                     html=msg.html, sender=sender)
        message.msgId = message_id(sender)
        # Honour MAIL_SUPPRESS_SEND and record_messages() like mail.send() would.
        state = current_app.extensions["mail"]
        with _VerifiedConnection(state, self.timeout, self.cafile) as connection:
            message.send(connection)


def smtp_warnings(config: Mapping) -> list[str]:
    """What in the SMTP settings will keep mail queued, said once at start-up."""
    server = str(config.get("MAIL_SERVER") or "")
    starttls, implicit = bool(config.get("MAIL_USE_TLS")), bool(config.get("MAIL_USE_SSL"))
    warnings = []
    if starttls and implicit:
        warnings.append("MAIL_USE_TLS and MAIL_USE_SSL are both set: use MAIL_USE_TLS for "
                        "STARTTLS (port 587) or MAIL_USE_SSL for implicit TLS (port 465)")
    login = config.get("MAIL_USERNAME") and config.get("MAIL_PASSWORD")
    if login and not (starttls or implicit or outbound.is_loopback(server)):
        warnings.append(
            "MAIL_USERNAME and MAIL_PASSWORD are set but neither MAIL_USE_TLS nor MAIL_USE_SSL: "
            f"Authserver will not send the password unencrypted to {server}, so mail stays "
            "queued. Set MAIL_USE_TLS=true (port 587) or MAIL_USE_SSL=true (port 465).")
    return warnings


class ConsoleFileTransport:
    """The default without MAIL_SERVER: a summary on stdout and a .eml file per message.

    The body of a kind in WITHHELD_KINDS is not printed: the SPEC says a temporary
    password is never shown to anyone but its user, and a console is read by others.
    """

    WITHHELD_KINDS = frozenset({"temporary_password"})
    # Kinds carrying a verification code: shown only when show_codes() says so (an explicit
    # MAIL_TRANSPORT=console, or `authserver run --demo`).
    CODE_KINDS = frozenset({"reset_code", "admin_reset"})

    def __init__(self, directory: str | Path, sender: str, stream: TextIO | None = None,
                 show_codes: Callable[[], bool] = lambda: True) -> None:
        self.directory = Path(directory)
        self.sender = sender
        self.stream = stream
        self.show_codes = show_codes

    def deliver(self, msg: OutboxMessage) -> None:
        """Write instance/mail/<utc-time>-<id>-<kind>.eml, then print to, subject and text."""
        path = self._write(msg)
        body = msg.text
        if msg.kind in self.WITHHELD_KINDS or (msg.kind in self.CODE_KINDS
                                               and not self.show_codes()):
            body = f"(body not shown on the console; it is in {path})"
        print(f"--- mail #{msg.id} ({msg.kind}) -> {path.name}\nTo: {msg.to}\n"
              f"Subject: {msg.subject}\n\n{body.rstrip()}\n---",
              file=self.stream or sys.stdout, flush=True)

    def _write(self, msg: OutboxMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
        path = self.directory / f"{stamp}-{msg.id}-{msg.kind}.eml"
        tmp = path.with_name(path.name + ".tmp")
        # 0600: the file holds codes and passwords, like the mailbox it stands in for.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
            fh.write(bytes(to_email_message(msg, self.sender)))
        tmp.replace(path)
        log.info("mail #%s (%s) written to %s", msg.id, msg.kind, path)
        return path


class MemoryTransport:
    """Appends every message to a list; for tests."""

    def __init__(self, messages: list | None = None) -> None:
        self.messages = messages if messages is not None else []

    def deliver(self, msg: OutboxMessage) -> None:
        """Keep the message."""
        self.messages.append(msg)


def to_email_message(msg: OutboxMessage, sender: str) -> EmailMessage:
    """A full MIME message: multipart/alternative with text/plain and text/html."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = msg.to
    message["Subject"] = msg.subject
    message["Date"] = format_datetime(clock.now())
    message["Message-ID"] = message_id(sender)
    message.set_content(msg.text)
    message.add_alternative(msg.html, subtype="html")
    return message


def message_id(sender: str | tuple | None) -> str:
    """A Message-ID in the sender's domain (make_msgid's default does a DNS lookup)."""
    address = sender[1] if isinstance(sender, tuple) else parseaddr(sender or "")[1]
    domain = address.rpartition("@")[2] or "authserver.invalid"
    return make_msgid(domain=domain)


def make_transport(app: Flask) -> Transport:
    """The transport MAIL_TRANSPORT names; smtp when MAIL_SERVER is set, else console."""
    config = app.config
    name = config.get("MAIL_TRANSPORT") or ("smtp" if config.get("MAIL_SERVER") else "console")
    if name == "smtp":
        for warning in smtp_warnings(config):
            log.warning(warning)
        return SmtpTransport(timeout=float(config.get("MAIL_TIMEOUT", 10)),
                             cafile=config.get("MAIL_CA_FILE"))
    if name == "console":
        return ConsoleFileTransport(Path(app.instance_path) / "mail",
                                    sender=config.get("MAIL_DEFAULT_SENDER") or "authserver",
                                    show_codes=lambda: bool(
                                        config.get("MAIL_CONSOLE_SHOWS_CODES")))
    if name == "memory":
        return MemoryTransport()
    raise ValueError(f"MAIL_TRANSPORT must be one of {', '.join(TRANSPORT_NAMES)}, not {name!r}")


KIND_TRANSPORTS_EXT = "authserver.outbox_kind_transports"


def register_kind(app: Flask, kind: str, transport: Transport) -> None:
    """Deliver outbox rows of `kind` with `transport` instead of the mail transport: the
    outbox (leases, retries, backoff) also carries back-channel logout POSTs."""
    app.extensions.setdefault(KIND_TRANSPORTS_EXT, {})[kind] = transport


def transport_for(app: Flask, kind: str, default: Transport) -> Transport:
    return app.extensions.get(KIND_TRANSPORTS_EXT, {}).get(kind, default)
