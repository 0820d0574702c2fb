"""deliver_due: leases, retries with backoff, no double delivery; the Sender thread; status."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from sqlalchemy import select, update

from authserver.extensions import db
from authserver.mail import outbox, sender
from authserver.mail.messages import Draft
from authserver.mail.models import OutboxMessage
from authserver.mail.transports import MemoryTransport

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


class FailingTransport:
    def __init__(self):
        self.calls = 0

    def deliver(self, msg):
        self.calls += 1
        raise ConnectionRefusedError(111, "Connection refused")


class SenderDied(BaseException):
    """Not an Exception: deliver_due cannot catch it, like a process killed mid-delivery."""


class DyingTransport:
    def deliver(self, msg):
        raise SenderDied()


def queue_mail(app, count=1):
    with app.app_context():
        for i in range(count):
            outbox.queue(Draft(to=f"user{i}@example.com", subject=f"Subject {i}",
                               text="text", html="<p>html</p>", kind="reset_code"))
        db.session.commit()


def rows(app):
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_deliver_due_sends_and_marks_sent(mail_app):
    queue_mail(mail_app, 3)
    transport = MemoryTransport()
    assert sender.deliver_due(mail_app, transport) == 3
    assert [m.to for m in transport.messages] == [f"user{i}@example.com" for i in range(3)]
    assert all(r.sent_at is not None and r.claim_token is None for r in rows(mail_app))
    assert sender.deliver_due(mail_app, transport) == 0
    assert len(transport.messages) == 3


def test_deliver_due_respects_batch_size(mail_app):
    queue_mail(mail_app, 5)
    transport = MemoryTransport()
    assert sender.deliver_due(mail_app, transport, batch=2) == 2
    assert sender.deliver_due(mail_app, transport, batch=10) == 3


def test_failure_backs_off_and_a_later_run_delivers(mail_app):
    with freeze_time(T0) as frozen:
        queue_mail(mail_app)
        failing = FailingTransport()
        assert sender.deliver_due(mail_app, failing) == 0
        (row,) = rows(mail_app)
        assert row.attempts == 1 and row.sent_at is None and row.failed_at is None
        assert row.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert row.next_attempt_at == T0 + timedelta(seconds=5)
        assert row.claimed_until is None
        frozen.tick(timedelta(seconds=4))
        assert sender.deliver_due(mail_app, failing) == 0 and failing.calls == 1
        frozen.tick(timedelta(seconds=1))
        assert sender.deliver_due(mail_app, failing) == 0 and failing.calls == 2
        assert rows(mail_app)[0].next_attempt_at == T0 + timedelta(seconds=15)
        frozen.tick(timedelta(seconds=10))
        transport = MemoryTransport()
        assert sender.deliver_due(mail_app, transport) == 1
    (row,) = rows(mail_app)
    assert row.sent_at == T0 + timedelta(seconds=15) and row.attempts == 3


def test_retry_delay_doubles_up_to_the_cap():
    delays = [sender.retry_delay(n, 3600).total_seconds() for n in (1, 2, 3, 10, 11, 19)]
    assert delays == [5, 10, 20, 2560, 3600, 3600]


def test_gives_up_after_max_attempts(make_mail_app):
    app = make_mail_app(MAIL_MAX_ATTEMPTS=3, MAIL_RETRY_MAX=60)
    queue_mail(app)
    failing, now = FailingTransport(), T0 + timedelta(minutes=1)
    for _ in range(5):
        sender.deliver_due(app, failing, now=now)
        now += timedelta(hours=1)
    (row,) = rows(app)
    assert failing.calls == 3 and row.attempts == 3
    assert row.failed_at is not None and row.sent_at is None


def test_a_row_claimed_by_another_sender_is_skipped_until_its_lease_ends(mail_app):
    queue_mail(mail_app)
    now = T0 + timedelta(minutes=1)
    with mail_app.app_context():
        db.session.execute(update(OutboxMessage).values(
            claimed_until=now + timedelta(seconds=30), claim_token="other"))
        db.session.commit()
    transport = MemoryTransport()
    assert sender.deliver_due(mail_app, transport, now=now) == 0
    assert sender.deliver_due(mail_app, transport, now=now + timedelta(seconds=31)) == 1


def test_sender_dying_after_its_claim_is_replaced_once_the_lease_expires(mail_app):
    queue_mail(mail_app)
    now = T0 + timedelta(minutes=1)
    with pytest.raises(SenderDied):
        sender.deliver_due(mail_app, DyingTransport(), now=now, lease=60)
    (row,) = rows(mail_app)
    assert row.claimed_until == now + timedelta(seconds=60) and row.sent_at is None
    transport = MemoryTransport()
    assert sender.deliver_due(mail_app, transport, now=now + timedelta(seconds=59)) == 0
    assert sender.deliver_due(mail_app, transport, now=now + timedelta(seconds=61)) == 1
    assert sender.deliver_due(mail_app, transport, now=now + timedelta(seconds=200)) == 0
    assert len(transport.messages) == 1


def test_two_processes_racing_never_deliver_a_row_twice(make_mail_app):
    first, second = make_mail_app(), make_mail_app()  # two apps, two engines, one database
    queue_mail(first, 30)
    delivered = []
    barrier = threading.Barrier(4)

    def run(app):
        barrier.wait()
        sender.deliver_due(app, MemoryTransport(delivered), batch=30)

    threads = [threading.Thread(target=run, args=(app,)) for app in (first, second) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ids = [m.id for m in delivered]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 30
    assert all(r.sent_at is not None for r in rows(first))


def test_sender_thread_is_woken_by_the_commit(mail_app):
    thread = sender.start_sender(mail_app, poll=60)  # only the wake-up can deliver in time
    transport = mail_app.extensions[sender.TRANSPORT_EXT]
    time.sleep(0.2)  # let its first (empty) pass finish and start waiting
    queue_mail(mail_app)
    deadline = time.monotonic() + 5
    while not transport.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(transport.messages) == 1
    sender.stop_sender(mail_app)
    assert not thread.is_alive()


def test_init_app_starts_no_thread_under_testing(mail_app):
    with mail_app.test_request_context():
        mail_app.preprocess_request()
    assert sender.SENDER_EXT not in mail_app.extensions


def test_first_request_starts_one_sender_per_process(make_mail_app):
    app = make_mail_app(TESTING=False, MAIL_SENDER_THREAD=True)
    assert sender.SENDER_EXT not in app.extensions  # lazily: not at init, so not before a fork
    app.add_url_rule("/ping", "ping", lambda: "pong")
    client = app.test_client()
    client.get("/ping")
    first = app.extensions[sender.SENDER_EXT]
    client.get("/ping")
    assert app.extensions[sender.SENDER_EXT] is first and first.is_alive()
    sender.stop_sender(app)


def test_status_counts_queued_sent_failed_age_and_last_error(make_mail_app):
    app = make_mail_app(MAIL_MAX_ATTEMPTS=1)
    with freeze_time(T0) as frozen:
        queue_mail(app, 3)
        sender.deliver_due(app, MemoryTransport(), batch=1)
        sender.deliver_due(app, FailingTransport(), batch=1)
        frozen.tick(timedelta(seconds=90))
        with app.app_context():
            info = sender.status(db.session)
    assert info == {"queued": 1, "sent": 1, "failed": 1, "oldest_queued_age": 90.0,
                    "last_error": "ConnectionRefusedError: [Errno 111] Connection refused"}
