"""Users and sign-in: lookup, creation, password checks, throttling, browser sessions."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from .. import clock, security
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from . import sessions
from .models import BrowserSession, LoginThrottle, User
from . import states
from .states import AccountState

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")


class LoginRejected(AuthserverError):
    """Unknown user or wrong password: one message for both."""


class LoginThrottled(AuthserverError):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed attempts. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class TemporaryPasswordExpired(AuthserverError):
    pass


class UserInvalid(AuthserverError):
    pass


def find_by_login(login: str | None) -> User | None:
    """A user by user name or email address, case-insensitive; None when there is none."""
    key = security.normalise_login(login)
    if not key:
        return None
    return db.session.scalar(select(User).where(or_(User.username_key == key,
                                                    User.email_key == key)))


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def check_email(email: str) -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise UserInvalid(f"Invalid email address: {exc}") from exc


def new_user(username: str, email: str, name: str = "", *, admin: bool = False) -> User:
    """Validate and add a user without a password (the caller sets one and commits)."""
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise UserInvalid("A user name is 1-150 letters, digits or . _ @ + -")
    email = check_email(email)
    if find_by_login(username) or find_by_login(email):
        raise UserInvalid("A user with that user name or email address already exists.")
    user = User(username=username, username_key=username.lower(), email=email,
                email_key=email.lower(), name=(name or username).strip()[:200],
                name_key=(name or username).strip()[:200].lower(),
                roles="admin" if admin else "", state=AccountState.ACTIVE.value,
                password_version=0, mfa_version=0, mfa_failures=0, created_at=clock.now())
    db.session.add(user)
    return user


def set_password(user: User, password: str) -> None:
    """Set a new password; a sign-in in progress that saw the old one is over."""
    user.password_hash = security.hash_password(password)
    user.password_changed_at = clock.now()
    user.temp_password_expires_at = None
    user.password_version = (user.password_version or 0) + 1


def set_temporary(user: User) -> str:
    """Give the user a generated temporary password, valid TEMP_PASSWORD_TTL; return it.

    The state changes first, so a refused transition leaves the password untouched.
    """
    states.apply(user, states.Action.TEMPORARY_PASSWORD)
    password = security.temporary_password()
    user.password_hash = security.hash_password(password)
    user.password_version = (user.password_version or 0) + 1
    ttl = int(current_app.config["TEMP_PASSWORD_TTL"])
    user.temp_password_expires_at = clock.now() + timedelta(seconds=ttl)
    return password


def _throttle_key(login: str) -> str:
    return security.keyed_hash(security.normalise_login(login), "login-throttle")


def check_throttle(login: str, now: datetime) -> None:
    """Raise LoginThrottled while the typed name is locked; unknown names lock alike."""
    row = db.session.get(LoginThrottle, _throttle_key(login))
    if row and row.locked_until and now < row.locked_until:
        raise LoginThrottled(int((row.locked_until - now).total_seconds()) + 1)


def record_failure(login: str, now: datetime) -> None:
    """Count a failure; from the 5th in a row, lock for a delay that doubles each time.

    The counter moves with one atomic UPDATE, so concurrent failures on any number of
    processes are all counted.
    """
    cfg = current_app.config
    key = _throttle_key(login)
    bump = (update(LoginThrottle).where(LoginThrottle.key_hash == key)
            .values(failures=LoginThrottle.failures + 1, updated_at=now)
            .execution_options(synchronize_session=False))
    if db.session.execute(bump).rowcount == 0:
        try:
            with db.session.begin_nested():
                db.session.add(LoginThrottle(key_hash=key, failures=1, updated_at=now))
        except IntegrityError:
            db.session.execute(bump)
    row = db.session.get(LoginThrottle, key, populate_existing=True)
    over = row.failures - int(cfg["LOGIN_MAX_FAILURES"])
    if over >= 0:
        delay = min(int(cfg["LOGIN_THROTTLE_BASE"]) * 2 ** over, int(cfg["LOGIN_THROTTLE_MAX"]))
        row.locked_until = now + timedelta(seconds=delay)


def clear_failures(login: str) -> None:
    row = db.session.get(LoginThrottle, _throttle_key(login))
    if row is not None:
        db.session.delete(row)


def authenticate(login: str, password: str) -> User:
    """Check a typed name and password; the same work and answer whether or not the user exists.

    Raises LoginThrottled, LoginRejected or TemporaryPasswordExpired; commits the outcome.
    """
    now = clock.now()
    check_throttle(login, now)
    user = find_by_login(login)
    ok = security.verify_password(user.password_hash if user else None, password or "")
    if not ok:
        record_failure(login, now)
        security_event("login_failed", user_id=user.id if user else None)
        db.session.commit()
        raise LoginRejected("Incorrect user name or password.")
    clear_failures(login)
    if user.state == AccountState.FORCE_CHANGE_PASSWORD and user.temp_password_expires_at \
            and now >= user.temp_password_expires_at:
        security_event("login_temp_password_expired", user_id=user.id)
        db.session.commit()
        raise TemporaryPasswordExpired("Incorrect user name or password.")
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    db.session.commit()
    return user


def start_session(user: User, amr: list[str], user_agent: str = "", ip: str | None = None
                  ) -> tuple[str, BrowserSession]:
    """Open a browser session for 30 days from this sign-in; returns the raw id for the cookie."""
    now = clock.now()
    raw = security.random_token(32)
    ttl = int(current_app.config["REFRESH_TOKEN_TTL"])
    bs = BrowserSession(sid_hash=security.keyed_hash(raw, "sid"), user_id=user.id, auth_time=now,
                        amr=amr, expires_at=now + timedelta(seconds=ttl), created_at=now,
                        last_seen_at=now, user_agent=(user_agent or "")[:300], ip=ip)
    db.session.add(bs)
    user.last_login_at = now
    security_event("login", user_id=user.id, amr=amr)
    db.session.commit()
    return raw, bs


def load_session(raw_sid: str | None) -> BrowserSession | None:
    """The live browser session for a cookie value, or None (expired, revoked, disabled user)."""
    if not raw_sid or not isinstance(raw_sid, str) or len(raw_sid) > 100:
        return None
    bs = db.session.scalar(select(BrowserSession).options(joinedload(BrowserSession.user)).where(
        BrowserSession.sid_hash == security.keyed_hash(raw_sid, "sid")))
    if bs is None or not bs.is_live(clock.now()):
        return None
    if bs.user.state == AccountState.DISABLED:
        return None
    return bs


def find_users(q: str = "", *, limit: int = 20, offset: int = 0) -> tuple[list[User], int]:
    """Users whose user name, email or display name contains q (case-insensitive)."""
    stmt = select(User)
    q = (q or "").strip().lower()[:100]
    if q:
        like = f"%{_escape_like(q)}%"
        stmt = stmt.where(or_(User.username_key.like(like, escape="\\"),
                              User.email_key.like(like, escape="\\"),
                              User.name_key.like(like, escape="\\")))
    total = db.session.scalar(select(db.func.count()).select_from(stmt.subquery()))
    users = db.session.scalars(stmt.order_by(User.username_key).limit(limit).offset(offset)).all()
    return list(users), int(total or 0)


def _escape_like(q: str) -> str:
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def user_sessions(user: User) -> list[BrowserSession]:
    """The user's live browser sessions, newest first."""
    now = clock.now()
    rows = db.session.scalars(select(BrowserSession).where(
        BrowserSession.user_id == user.id, BrowserSession.revoked_at.is_(None),
        BrowserSession.expires_at > now).order_by(BrowserSession.created_at.desc())).all()
    return list(rows)


def sign_out_everywhere(user: User) -> int:
    """End every browser session of the user; refresh tokens die with their session."""
    n = len(sessions.end_sessions(reason="sign_out_everywhere", user_id=user.id))
    security_event("sessions_revoked", user_id=user.id, count=n)
    db.session.commit()
    return n
