"""Delivers the outbox: claim due rows with a lease, deliver, mark sent or retry later.

Any number of processes may run deliver_due() against one database: a row is
claimed by a conditional UPDATE that only one of them can win, and a claim
whose sender died lapses after `lease` seconds, so another sender picks the
row up. Delivery is therefore at-least-once, and exactly once unless a
sender dies between handing a message to SMTP and recording it as sent.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import clock
from ..extensions import db
from .models import OutboxMessage
from .outbox import WAKE_EXT
from .transports import Transport, make_transport, transport_for

log = logging.getLogger("authserver.mail")

TRANSPORT_EXT = "authserver.mail_transport"
SENDER_EXT = "authserver.mail_sender"
LOCK_EXT = "authserver.mail_sender_lock"
MAX_ATTEMPTS = 20
BASE_DELAY = 5


def deliver_due(app: Flask, transport: Transport, *, now: datetime | None = None,
                batch: int = 20, lease: int = 60) -> int:
    """Deliver up to `batch` due messages in a fresh app context; return how many were sent.

    `now` pins the clock for every step (tests); without it each claim, success
    or failure reads clock.now(), so a slow batch never hands out stale leases.
    """
    return _deliver_batch(app, transport, now, batch, lease)[1]


def send_pending(app: Flask, transport: Transport, *, batch: int = 20,
                 lease: int = 60) -> tuple[int, int]:
    """Run batches until one comes back short; return (attempted, sent). For cron and CLI."""
    attempted = sent = 0
    while True:
        tried, delivered = _deliver_batch(app, transport, None, batch, lease)
        attempted, sent = attempted + tried, sent + delivered
        if tried < batch:
            return attempted, sent


def make_due_now(app: Flask) -> int:
    """Make every queued message that is backing off due now; return how many.

    For the operator who just fixed the mail server (a certificate, a password): the
    backoff may otherwise hold a message for up to MAIL_RETRY_MAX seconds.
    """
    with app.app_context():
        now = clock.now()
        stmt = (update(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None),
                       OutboxMessage.next_attempt_at > now)
                .values(next_attempt_at=now).execution_options(synchronize_session=False))
        count = db.session.execute(stmt).rowcount
        db.session.commit()
        return count


def retry_delay(attempts: int, cap: int) -> timedelta:
    """Wait before the next try after `attempts` failures: 5 s, 10 s, 20 s ... up to cap."""
    return timedelta(seconds=min(BASE_DELAY * 2 ** (attempts - 1), cap))


def _deliver_batch(app: Flask, transport: Transport, now: datetime | None, batch: int,
                   lease: int) -> tuple[int, int]:
    attempted = sent = 0
    with app.app_context():
        for msg_id in _due_ids(now or clock.now(), batch):
            claim = _claim(msg_id, now or clock.now(), lease)
            if claim is None:
                continue  # another sender won it
            attempted += 1
            sent += _attempt(transport, *claim, now)
    return attempted, sent


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.failed_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    ]


def _due_ids(now: datetime, batch: int) -> list[int]:
    stmt = (select(OutboxMessage.id).where(*_due(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(batch))
    ids = list(db.session.scalars(stmt))
    db.session.rollback()  # end the read transaction before anything slow
    return ids


def _claim(msg_id: int, now: datetime, lease: int) -> tuple[OutboxMessage, str] | None:
    """Win the row with a conditional UPDATE; only one concurrent sender sees rowcount 1."""
    token = secrets.token_hex(16)
    stmt = (update(OutboxMessage).where(OutboxMessage.id == msg_id, *_due(now))
            .values(claimed_until=now + timedelta(seconds=lease), claim_token=token)
            .execution_options(synchronize_session=False))
    if db.session.execute(stmt).rowcount != 1:
        db.session.rollback()
        return None
    msg = db.session.get(OutboxMessage, msg_id)
    db.session.expunge(msg)  # keep its loaded values for the transport after the commit
    db.session.commit()
    return msg, token


def _attempt(transport: Transport, msg: OutboxMessage, token: str,
             now: datetime | None) -> int:
    try:
        transport_for(current_app, msg.kind, transport).deliver(msg)
    except Exception as exc:  # any transport error is a failed try, never a dead sender
        _record_failure(msg, token, exc, now or clock.now())
        return 0
    _record_sent(msg, token, now or clock.now())
    return 1


REDACTED = "[delivered; the body is not kept]"


def _record_sent(msg: OutboxMessage, token: str, now: datetime) -> None:
    """Mark sent and drop the body: codes and temporary passwords do not stay at rest."""
    values = dict(sent_at=now, attempts=msg.attempts + 1, claimed_until=None, claim_token=None,
                  text=REDACTED, html=REDACTED)
    if not _update_claimed(msg.id, token, values):
        log.warning("mail #%s was delivered after its lease ran out; it may arrive twice", msg.id)


def _record_failure(msg: OutboxMessage, token: str, exc: Exception, now: datetime) -> None:
    """Bump attempts and back off; give up after MAIL_MAX_ATTEMPTS. The error keeps no secrets."""
    config = current_app.config
    attempts = msg.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:1000]
    delay = retry_delay(attempts, int(config.get("MAIL_RETRY_MAX", 3600)))
    values = dict(attempts=attempts, last_error=error, claimed_until=None, claim_token=None,
                  next_attempt_at=now + delay)
    if attempts >= int(config.get("MAIL_MAX_ATTEMPTS", MAX_ATTEMPTS)):
        values["failed_at"] = now
        gave_up = getattr(transport_for(current_app, msg.kind, None), "gave_up", None)
        if gave_up is not None:  # a kind with its own record of final failures
            gave_up(msg, attempts, error)
        log.error("mail #%s (%s) failed for good after %d attempts: %s",
                  msg.id, msg.kind, attempts, error)
    else:
        log.warning("mail #%s (%s) attempt %d failed: %s", msg.id, msg.kind, attempts, error)
    _update_claimed(msg.id, token, values)


def _update_claimed(msg_id: int, token: str, values: dict) -> bool:
    """Write `values` only while our claim stands (the lease may have passed to another sender)."""
    stmt = (update(OutboxMessage)
            .where(OutboxMessage.id == msg_id, OutboxMessage.claim_token == token)
            .values(**values).execution_options(synchronize_session=False))
    won = db.session.execute(stmt).rowcount == 1
    db.session.commit()
    return won


class Sender(threading.Thread):
    """A daemon per process: deliver_due, then sleep until woken by a commit or `poll` s."""

    def __init__(self, app: Flask, transport: Transport, wake: threading.Event, *,
                 poll: float = 1.0, batch: int = 20, lease: int = 60) -> None:
        super().__init__(name="authserver-mail-sender", daemon=True)
        self.app, self.transport, self.wake = app, transport, wake
        self.poll, self.batch, self.lease = poll, batch, lease
        self.pid = os.getpid()
        self._stopping = threading.Event()

    def run(self) -> None:
        """Loop until stop(); a full batch goes straight on to the next one."""
        while not self._stopping.is_set():
            self.wake.clear()  # a commit during the pass below sets it again: no lost wake
            if not self._pass():
                self.wake.wait(self.poll)

    def _pass(self) -> bool:
        try:
            attempted, _ = _deliver_batch(self.app, self.transport, None, self.batch, self.lease)
        except DBAPIError as exc:  # the database may be down for a while: one line, keep polling
            log.warning("mail sender: database unavailable (%s); retrying", type(exc).__name__)
            return False
        except Exception:
            log.exception("mail sender pass failed")
            return False
        return attempted >= self.batch

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait for it."""
        self._stopping.set()
        self.wake.set()
        self.join(timeout)


def init_app(app: Flask) -> None:
    """Build the transport; start a sender lazily in each serving process (not under tests).

    Lazily, at the first request, so gunicorn starts it in every worker after
    the fork rather than once in the master, where the thread would not survive.
    """
    app.extensions[TRANSPORT_EXT] = make_transport(app)
    app.extensions[WAKE_EXT] = threading.Event()
    app.extensions[LOCK_EXT] = threading.Lock()
    if app.config.get("MAIL_SENDER_THREAD", True) and not app.testing:
        app.before_request(_ensure_sender)


def _ensure_sender() -> None:
    app = current_app._get_current_object()
    if _running(app):
        return
    with app.extensions[LOCK_EXT]:
        if not _running(app):
            start_sender(app)


def _running(app: Flask) -> bool:
    sender = app.extensions.get(SENDER_EXT)
    return sender is not None and sender.pid == os.getpid() and sender.is_alive()


def start_sender(app: Flask, *, poll: float = 1.0) -> Sender:
    """Start this process's sender thread for `app` (init_app must have run)."""
    sender = Sender(app, app.extensions[TRANSPORT_EXT], app.extensions[WAKE_EXT], poll=poll)
    app.extensions[SENDER_EXT] = sender
    sender.start()
    return sender


def stop_sender(app: Flask, timeout: float = 5.0) -> None:
    """Stop the app's sender thread, if this process started one."""
    sender = app.extensions.pop(SENDER_EXT, None)
    if sender is not None and sender.pid == os.getpid():
        sender.stop(timeout)


def status(session: Session) -> dict:
    """Counts of queued, sent and failed mail, the oldest queued age (s) and the last error."""
    queued = (OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
    oldest = session.scalar(select(OutboxMessage.created_at).where(*queued)
                            .order_by(OutboxMessage.created_at).limit(1))
    last_error = session.scalar(
        select(OutboxMessage.last_error)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.last_error.is_not(None))
        .order_by(OutboxMessage.id.desc()).limit(1))
    return {
        "queued": _count(session, *queued),
        "sent": _count(session, OutboxMessage.sent_at.is_not(None)),
        "failed": _count(session, OutboxMessage.failed_at.is_not(None)),
        "oldest_queued_age": (clock.now() - oldest).total_seconds() if oldest else None,
        "last_error": last_error,
    }


def _count(session: Session, *where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count(OutboxMessage.id)).where(*where)) or 0
