"""Password use cases: request/resend a code, confirm a reset, change, admin reset, temporary."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, text

from .. import clock, security
from ..accounts import services as accounts
from ..accounts.models import User
from ..accounts import states, upstreams
from ..accounts.states import Action, can_self_reset
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from ..urls import external
from ..mail import messages, outbox
from ..tokens import services as tokens
from . import codes
from .codes import CodeDead, CodeRejected
from .models import CodeSend
from .policy import PasswordRejected, check_password

__all__ = ["CodeDead", "CodeRejected", "PasswordRejected", "SendThrottled", "request_code",
           "confirm_reset", "change_password", "admin_reset", "send_temporary_password"]


class SendThrottled(AuthserverError):
    def __init__(self, message: str, wait: int):
        super().__init__(message)
        self.wait = wait


def check_send_allowed(login: str) -> None:
    """Resend 60 s after the last send, at most 5 sends an hour, keyed on the typed name."""
    throttled = _send_throttle(codes.send_key(login), clock.now())
    if throttled is not None:
        raise throttled


def _account_may_send(user: User, now) -> bool:
    """The same limits per account, silently: a user name and an email address of one
    account share one budget, and the page never shows this answer (SPEC 7)."""
    return _send_throttle(codes.account_send_key(user), now) is None


def _send_throttle(key: str, now) -> SendThrottled | None:
    """The limit a send under this key would break (locked until the transaction ends)."""
    cfg = current_app.config
    _lock_key(key)
    hour_ago = now - timedelta(hours=1)
    last, count, oldest = db.session.execute(
        select(func.max(CodeSend.sent_at), func.count(CodeSend.id), func.min(CodeSend.sent_at))
        .where(CodeSend.key_hash == key, CodeSend.sent_at > hour_ago)).one()
    interval = int(cfg["RESEND_INTERVAL"])
    if last is not None and (now - last).total_seconds() < interval:
        wait = interval - int((now - last).total_seconds())
        return SendThrottled(f"A code was sent moments ago. You can ask for a new one in "
                             f"{_count(wait, 'second')}.", wait)
    if count >= int(cfg["RESEND_MAX_PER_HOUR"]):
        wait = int((oldest + timedelta(hours=1) - now).total_seconds()) + 1
        return SendThrottled(f"Too many codes were asked for this name. Try again in "
                             f"{_count((wait + 59) // 60, 'minute')}.", wait)
    return None


def _lock_key(key: str) -> None:
    """Serialise sends for one typed name until this transaction ends (PostgreSQL).

    Without it two *Resend code* clicks in the same instant could both pass the 60 s check.
    On SQLite (one machine; development) check and insert are not atomic: at worst two
    clicks in the same instant both send.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                           {"k": int(key[:15], 16)})


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def request_code(login: str) -> None:
    """Send a code, or the "cannot be reset" notice; the caller sees the same either way.

    Raises SendThrottled before doing anything when the typed name is over its limits.
    """
    login = (login or "").strip()[:320]
    check_send_allowed(login)
    now = clock.now()
    db.session.add(CodeSend(key_hash=codes.send_key(login), sent_at=now))
    user = accounts.find_by_login(login)
    if user is None:
        security_event("reset_requested_unknown")
    elif not _account_may_send(user, now):
        security_event("reset_send_suppressed", user_id=user.id)
    else:
        _log_account_send(user, now)
        _mail_code_or_notice(user, now)
    db.session.commit()


def _mail_code_or_notice(user: User, now) -> None:
    if user.password_hash is None:  # signs in only upstream (SPEC section 10)
        outbox.queue(messages.upstream_only(user, upstreams.passwordless_labels(user),
                                            external("/login")))
        security_event("reset_refused_no_password", user_id=user.id)
    elif can_self_reset(user):
        code = codes.issue_code(user, now)
        outbox.queue(messages.reset_code(user, code, _confirm_url(user)))
        security_event("reset_requested", user_id=user.id)
    else:
        outbox.queue(messages.cannot_reset(user))
        security_event("reset_refused_state", user_id=user.id, state=user.state)


def _log_account_send(user: User, now) -> None:
    db.session.add(CodeSend(key_hash=codes.account_send_key(user), sent_at=now))


def _confirm_url(user: User) -> str:
    return external("/forgot-password/confirm", username=user.username)


def confirm_reset(login: str, code: str, new_password: str) -> User:
    """Check the code and set the new password; ends every session and refresh token.

    Raises PasswordRejected, CodeRejected or CodeDead, with the same answers for a name
    without an account (or with one that may not reset): until the code is right, the
    password is judged only against what was typed, never against the account's own
    name or email, and wrong tries count the same way (codes.check_typed_code).
    """
    login = (login or "").strip()[:320]
    check_password(new_password, username=login)
    user = accounts.find_by_login(login)
    now = clock.now()
    try:
        may_reset = can_self_reset(user) and user.password_hash is not None
        codes.check_typed_code(login, user if may_reset else None, code, now)
    except CodeDead:
        security_event("reset_code_dead", user_id=user.id if user else None)
        db.session.commit()
        raise
    except CodeRejected:
        security_event("reset_code_wrong", user_id=user.id if user else None)
        db.session.commit()
        raise
    try:
        check_password(new_password, username=user.username, email=user.email)
    except PasswordRejected:
        db.session.rollback()  # the code stays unspent for a better password
        raise
    _set_new_password(user, new_password, "password_reset", Action.SELF_RESET)
    security_event("password_reset", user_id=user.id)
    db.session.commit()
    return user


def _set_new_password(user: User, new_password: str, reason: str, action: Action) -> None:
    states.apply(user, action)
    accounts.set_password(user, new_password)
    codes.void_codes(user, clock.now())  # a code asked for before the change dies with it
    tokens.revoke_user_sessions(user.id, reason)
    outbox.queue(messages.password_changed(user))


def change_password(user: User, new_password: str, *, current: str | None = None) -> None:
    """A signed-in change (current password required) or the forced one after a temporary.

    The state table decides who may: the forced change only from force_change_password,
    the signed-in one only from active (states.TABLE). The current password is checked
    like a sign-in of the account (counted, throttled, within the hashing cap).
    """
    action = Action.FORCED_CHANGE if current is None else Action.PASSWORD_CHANGE
    states.target(user, action)
    if current is not None:
        try:
            right = accounts.check_current_password(user, current)
        except accounts.LoginThrottled as exc:
            raise PasswordRejected(exc.message) from exc
        if not right:
            raise PasswordRejected("Your current password is not right.")
    check_password(new_password, username=user.username, email=user.email)
    if security.verify_password(user.password_hash, new_password):
        raise PasswordRejected("Choose a password different from the current one.")
    _set_new_password(user, new_password, "password_change", action)
    security_event("password_changed", user_id=user.id)
    db.session.commit()


def admin_reset(user: User, actor_id: int | None, client_id: str | None = None) -> None:
    """An administrator's Reset: must reset before signing in; a code is emailed at once."""
    states.apply(user, Action.RESET)
    tokens.revoke_user_sessions(user.id, "admin_reset")
    now = clock.now()
    code = codes.issue_code(user, now)
    # A send under the user name the email's link fills in, so the confirm page counts its
    # tries like after Send code (codes.check_typed_code), and on the account's budget.
    db.session.add(CodeSend(key_hash=codes.send_key(user.username), sent_at=now))
    _log_account_send(user, now)
    outbox.queue(messages.admin_reset(user, code, _confirm_url(user)))
    security_event("admin_reset", user_id=user.id, actor_id=actor_id, client_id=client_id)
    db.session.commit()


def send_temporary_password(user: User, actor_id: int | None,
                            client_id: str | None = None) -> None:
    """Email a generated temporary password (valid TEMP_PASSWORD_TTL) that nobody else sees."""
    password = accounts.set_temporary(user)
    tokens.revoke_user_sessions(user.id, "admin_temporary_password")
    outbox.queue(messages.temporary_password(user, password, external("/login"),
                                             user.temp_password_expires_at))
    security_event("temporary_password_sent", user_id=user.id, actor_id=actor_id,
                   client_id=client_id)
    db.session.commit()
