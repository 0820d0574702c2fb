"""Mail is never lost and never blocks a request (SPEC 5): SMTP down or hanging while a code is
asked for, and a sender that dies in the middle of a batch."""
from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from authserver import clock, create_app
from authserver.extensions import db
from authserver.mail import sender
from authserver.mail.models import OutboxMessage
from support import _empty_tables, free_port, make_user
from reset_steps import ResetActions, deliver, goes_to_confirm, queued
from smtp_sink import code_in, start_smtp, use_smtp  # noqa: F401  (fixture)


class SenderKilled(BaseException):
    """Like SIGKILL or KeyboardInterrupt in the middle of a batch: no handler runs after it."""


class DiesOnSecondMessage:
    """Delivers the first message for real, then takes the whole sender down."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def deliver(self, msg) -> None:
        self.calls += 1
        if self.calls == 2:
            raise SenderKilled()
        self.inner.deliver(msg)


@pytest.fixture
def smtp_port(settings):
    """A port nothing listens on (yet), with the app's mail pointed at it."""
    port = free_port()
    use_smtp(settings, port)
    return port


def test_send_code_succeeds_while_smtp_is_down_and_the_code_arrives_once_it_is_back(
        smtp_port, app, client, start_smtp, frozen):
    make_user(app)
    assert goes_to_confirm(ResetActions(client).send_code("alice"), "alice")
    assert deliver(app) == 0
    (row,) = queued(app)
    assert row.sent_at is None and row.attempts == 1
    assert row.last_error.startswith("ConnectionRefusedError")

    sink = start_smtp(smtp_port)
    assert deliver(app) == 0  # still backing off: the retry is not due yet
    frozen.tick(row.next_attempt_at - row.created_at + timedelta(seconds=1))
    assert deliver(app) == 1
    frozen.tick(timedelta(minutes=10))
    assert deliver(app) == 0
    (message,) = sink.inbox.messages
    assert queued(app)[0].sent_at is not None
    assert ResetActions(client).confirm("alice", code_in(message)).status_code == 303


def test_send_code_does_not_wait_for_an_smtp_server_that_never_answers(smtp_port, settings,
                                                                       client, app):
    make_user(app)
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", smtp_port))
        silent.listen(5)
        sender.start_sender(app, poll=0.05)  # a live sender is stuck on SMTP meanwhile
        try:
            steps = ResetActions(client)
            started = time.perf_counter()
            resp = steps.send_code("alice")
            elapsed = time.perf_counter() - started
        finally:
            sender.stop_sender(app, timeout=10)
    assert goes_to_confirm(resp, "alice")
    # The bound is the SMTP timeout itself, not a guess at request speed: a request that
    # waited on the silent server could not answer before that timeout ran out.
    assert elapsed < settings["MAIL_TIMEOUT"], elapsed
    (row,) = queued(app)
    assert row.sent_at is None


@pytest.fixture
def processes(settings, start_smtp):
    """Two apps on one database and one SMTP sink, as two server processes would be."""
    sink = start_smtp()
    use_smtp(settings, sink.port)
    apps = [create_app(settings), create_app(settings)]
    yield sink, apps
    for app in apps:
        sender.stop_sender(app)
    with apps[0].app_context():
        db.session.remove()
        _empty_tables()
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def queue_codes(app, names) -> None:
    for name in names:
        make_user(app, name)
        ResetActions(app.test_client()).send_code(name)


def test_a_sender_killed_mid_batch_loses_nothing_and_sends_nothing_twice(processes, frozen):
    sink, (first, second) = processes
    queue_codes(first, ["ann", "ben", "cat"])
    smtp = first.extensions[sender.TRANSPORT_EXT]

    with pytest.raises(SenderKilled):
        sender.deliver_due(first, DiesOnSecondMessage(smtp), lease=60)
    assert [m["X-Envelope-To"] for m in sink.inbox.messages] == ["ann@example.com"]
    claimed = [r for r in queued(first) if r.claimed_until is not None]
    assert len(claimed) == 1 and claimed[0].to == "ben@example.com" and not claimed[0].sent_at

    other = second.extensions[sender.TRANSPORT_EXT]
    assert sender.deliver_due(second, other, lease=60) == 1  # cat; ben is still leased
    frozen.tick(timedelta(seconds=59))
    assert sender.deliver_due(second, other, lease=60) == 0
    frozen.tick(timedelta(seconds=2))
    assert sender.deliver_due(second, other, lease=60) == 1  # the dead sender's lease ran out
    frozen.tick(timedelta(hours=1))
    assert sender.deliver_due(second, other) == 0
    delivered = sorted(m["X-Envelope-To"] for m in sink.inbox.messages)
    assert delivered == ["ann@example.com", "ben@example.com", "cat@example.com"]
    assert all(r.sent_at is not None for r in queued(first))


def test_a_row_claimed_by_a_vanished_sender_is_delivered_once_after_its_lease(
        smtp_port, app, start_smtp, frozen):
    sink = start_smtp(smtp_port)
    queue_codes(app, ["alice"])
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(
            claimed_until=clock.now() + timedelta(seconds=60), claim_token="vanished"))
        db.session.commit()
    assert deliver(app) == 0
    frozen.tick(timedelta(seconds=61))
    assert deliver(app) == 1
    assert deliver(app) == 0
    assert len(sink.inbox.messages) == 1


def test_a_second_sender_thread_takes_over_from_a_dead_one(processes, frozen):
    """The production shape: each process runs a Sender thread; one dies, another delivers."""
    sink, (first, second) = processes
    queue_codes(first, ["ann", "ben"])
    with pytest.raises(SenderKilled):
        sender.deliver_due(first, DiesOnSecondMessage(first.extensions[sender.TRANSPORT_EXT]))
    frozen.tick(timedelta(seconds=61))
    thread = sender.start_sender(second, poll=0.05)
    try:
        messages = sink.inbox.wait_for(2, timeout=10)
    finally:
        sender.stop_sender(second)
    assert not thread.is_alive()
    assert sorted(m["X-Envelope-To"] for m in messages) == ["ann@example.com",
                                                             "ben@example.com"]
