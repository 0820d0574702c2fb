"""queue() only adds to the caller's transaction; a commit that carried mail wakes the sender."""
from __future__ import annotations

from sqlalchemy import func, select

from authserver.extensions import db
from authserver.mail import outbox
from authserver.mail.messages import Draft
from authserver.mail.models import OutboxMessage

DRAFT = Draft(to="alice@example.com", subject="Hi", text="hello", html="<p>hello</p>",
              kind="reset_code")


def count_rows() -> int:
    return db.session.scalar(select(func.count(OutboxMessage.id)))


def test_queue_adds_without_committing_so_a_rollback_leaves_no_row(mail_app):
    with mail_app.app_context():
        msg = outbox.queue(DRAFT)
        assert msg in db.session.new
        db.session.rollback()
        assert count_rows() == 0


def test_queued_row_commits_with_the_callers_transaction(mail_app):
    with mail_app.app_context():
        outbox.queue(DRAFT)
        db.session.commit()
        row = db.session.scalars(select(OutboxMessage)).one()
    assert (row.to, row.subject, row.text, row.html, row.kind) == (
        "alice@example.com", "Hi", "hello", "<p>hello</p>", "reset_code")
    assert row.attempts == 0 and row.sent_at is None and row.next_attempt_at is not None


def test_commit_with_queued_mail_wakes_the_sender(mail_app):
    wake = mail_app.extensions[outbox.WAKE_EXT]
    with mail_app.app_context():
        outbox.queue(DRAFT)
        assert not wake.is_set()
        db.session.commit()
    assert wake.is_set()


def test_commit_without_mail_or_after_rollback_does_not_wake(mail_app):
    wake = mail_app.extensions[outbox.WAKE_EXT]
    with mail_app.app_context():
        outbox.queue(DRAFT)
        db.session.rollback()
        db.session.commit()
    assert not wake.is_set()
