"""The one way to send mail: queue a Draft in the caller's transaction.

The row commits with the code it carries, or not at all; the sender thread
delivers it afterwards. A commit that included queued mail wakes the sender
of the committing app, so mail leaves at once instead of at the next poll.
"""
from __future__ import annotations

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db
from .messages import Draft
from .models import OutboxMessage

PENDING_KEY = "authserver.mail_pending"
WAKE_EXT = "authserver.mail_wake"


def queue(draft: Draft) -> OutboxMessage:
    """Add the message to the current session; the caller's service commits it."""
    msg = OutboxMessage(kind=draft.kind, to=draft.to, subject=draft.subject,
                        text=draft.text, html=draft.html, attempts=0)
    db.session.add(msg)
    db.session.info[PENDING_KEY] = True
    return msg


def _wake_sender(session: Session) -> None:
    if not session.info.pop(PENDING_KEY, False) or not has_app_context():
        return
    wake = current_app.extensions.get(WAKE_EXT)
    if wake is not None:
        wake.set()


def _forget_pending(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


# Listening on the scoped session registers on Flask-SQLAlchemy's Session class,
# so every session db.session hands out, in any app, carries the hook.
event.listen(db.session, "after_commit", _wake_sender)
event.listen(db.session, "after_rollback", _forget_pending)
