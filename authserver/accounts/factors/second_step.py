"""The second step of a sign-in: one throttle for every second-step factor.

Each try is claimed before the code is looked at, by two conditional UPDATEs committed at
once: one on the sign-in (`otp_tries < 5`, not ended) and one on the account (not locked).
So with 4 wrong codes behind it, of 10 tries racing on any number of processes exactly one
is evaluated; the others find the sign-in over. Five wrong codes in a row end the sign-in,
lock the account's second step with a delay that doubles each time (like the password's),
and email the user that someone knew the password but not the code.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, update

from ... import clock
from ...audit import security_event
from ...errors import AuthserverError
from ...extensions import db
from ...mail import messages, outbox
from .. import signin
from ..models import SignIn, User
from . import recovery, totp


class SecondStepRejected(AuthserverError):
    """A wrong code; the sign-in goes on."""


class SecondStepLocked(AuthserverError):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many wrong codes. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


def _max() -> int:
    return int(current_app.config["MFA_MAX_FAILURES"])


def _claim(record: SignIn, user: User, now) -> int:
    """Claim one evaluation; returns the account's failures counting this try. Commits."""
    tried = db.session.execute(
        update(SignIn).where(SignIn.id == record.id, SignIn.ended_at.is_(None),
                             SignIn.otp_tries < _max(), SignIn.expires_at > now)
        .values(otp_tries=SignIn.otp_tries + 1).execution_options(synchronize_session=False)
    ).rowcount == 1
    if not tried:
        db.session.rollback()
        raise signin.SignInOver()
    row = db.session.execute(
        update(User).where(User.id == user.id, or_(User.mfa_locked_until.is_(None),
                                                   User.mfa_locked_until <= now))
        .values(mfa_failures=User.mfa_failures + 1)
        .returning(User.mfa_failures, User.mfa_locked_until)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        db.session.rollback()  # a locked account's try is not counted against the sign-in
        locked = db.session.get(User, user.id, populate_existing=True).mfa_locked_until
        raise SecondStepLocked(int((locked - now).total_seconds()) + 1)
    db.session.commit()
    return int(row.mfa_failures)


def verify(record: SignIn, user: User, code: str) -> str:
    """Check a one-time or recovery code for this sign-in; returns its amr value.

    Raises SecondStepRejected (wrong, the sign-in goes on), SecondStepLocked, or
    signin.SignInOver (5 wrong codes, or the sign-in ended meanwhile). Commits.
    """
    now = clock.now()
    failures = _claim(record, user, now)
    code = (code or "")[:recovery.MAX_INPUT]
    if totp.accept(user, code):
        method = "otp"
    elif recovery.spend(user, code):
        method = "otp"
        security_event("mfa_recovery_code_used", user_id=user.id)
    else:
        return _wrong(record, user, failures, now)
    db.session.execute(update(User).where(User.id == user.id)
                       .values(mfa_failures=0, mfa_locked_until=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    return method


def _wrong(record: SignIn, user: User, failures: int, now):
    over = failures - _max()
    if over >= 0:
        cfg = current_app.config
        delay = min(int(cfg["MFA_THROTTLE_BASE"]) * 2 ** over, int(cfg["MFA_THROTTLE_MAX"]))
        db.session.execute(update(User).where(User.id == user.id)
                           .values(mfa_locked_until=now + timedelta(seconds=delay))
                           .execution_options(synchronize_session=False))
    tries = db.session.get(SignIn, record.id, populate_existing=True).otp_tries
    security_event("mfa_failed", user_id=user.id, failures=failures)
    if over >= 0 or tries >= _max():
        signin.mark_ended(record.id, "mfa_failures")
        outbox.queue(messages.mfa_failed(user, max(tries, min(failures, _max()))))
        security_event("mfa_locked", user_id=user.id, failures=failures)
        db.session.commit()
        raise signin.SignInOver()
    db.session.commit()
    raise SecondStepRejected("That code is not right. Try the current code from your app.")
