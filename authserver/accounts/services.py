"""Users and sign-in: lookup, creation, password checks, throttling, browser sessions."""
from __future__ import annotations

import re
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import joinedload

from .. import clock, security
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from . import search, sessions, states, throttle
from .models import BrowserSession, User
from .states import AccountState
from .throttle import LoginThrottled, TooManyFailures  # noqa: F401 - raised from here

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")


class LoginRejected(AuthserverError):
    """Unknown user or wrong password: one message for both."""


class TemporaryPasswordExpired(AuthserverError):
    pass


class UserInvalid(AuthserverError):
    pass


# Read at every sign-in, so built once: building a statement costs SQLAlchemy more than
# running it does.
BY_LOGIN = select(User).where(or_(User.username_key == bindparam("key"),
                                  User.email_key == bindparam("key")))


def find_by_login(login: str | None) -> User | None:
    """A user by user name or email address, case-insensitive; None when there is none."""
    key = security.normalise_login(login)
    if not key:
        return None
    return db.session.scalar(BY_LOGIN, {"key": key})


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


def authenticate(login: str, password: str) -> User:
    """Check a typed name and password; the same work and answer whether or not the user exists.

    In this order, so that nothing expensive happens for a request that will be refused:
    the address's and network's failure limits (TooManyFailures, 429), a hashing slot
    (HashingBusy, 503), the typed name's throttle, claimed atomically before hashing
    (LoginThrottled), then the password. Once the deployment's failed-sign-in budget is
    spent (busy answers count too), a name without an account waits for a slot like any
    other and holds it while it imitates a check (as long, no CPU): answered as late as a
    real check would be, and a flood of made-up names is held to the slots like real checks,
    so it cannot crowd token requests out of the CPU.
    Raises LoginRejected or TemporaryPasswordExpired, and commits a failure. A success
    (the name's count cleared, a re-made hash) is left in the session's transaction for the
    caller to commit with what follows (login_flow.begin: the next step's record or the state's
    page in signin.begin, else the browser session in start_session), one commit, not two.
    """
    now = clock.now()
    throttle.check_source()
    user = find_by_login(login)
    # Read now what the check needs: the claim's commit expires the row, and reading it again
    # would cost a SELECT each (the caller's next step reads the account afresh anyway).
    stored = user.password_hash if user else None
    temp_expired = user is not None and user.state == AccountState.FORCE_CHANGE_PASSWORD \
        and user.temp_password_expires_at is not None and now >= user.temp_password_expires_at
    cheap = user is None and throttle.budget_spent()
    with throttle.counting_busy(), security.hashing_slot():
        throttle.claim_attempt(login, now)  # commits: no database connection held below
        if cheap:
            security.imitate_verify()
            ok = False
        else:
            ok = security.verify_password(stored, password or "")
        if ok and security.needs_rehash(stored):
            user.password_hash = security.hash_password(password)
    if not ok:
        throttle.count_failure()
        security_event("login_failed", user_id=user.id if user else None)
        db.session.commit()
        raise LoginRejected("Incorrect user name or password.")
    throttle.clear_failures(login)
    if temp_expired:
        security_event("login_temp_password_expired", user_id=user.id)
        db.session.commit()
        raise TemporaryPasswordExpired("Incorrect user name or password.")
    return user


def check_current_password(user: User, password: str) -> bool:
    """A password check on an account page (change password, re-authentication): counted
    and limited like a sign-in of that account, under its user name, so a stolen session
    cannot guess the password freely and one user cannot keep every core hashing.

    Raises TooManyFailures, HashingBusy or LoginThrottled; commits the outcome.
    """
    now = clock.now()
    throttle.check_source()
    username, stored = user.username, user.password_hash  # before the claim's commit
    with security.hashing_slot():
        throttle.claim_attempt(username, now)
        ok = security.verify_password(stored, password or "")
    if not ok:
        throttle.count_failure()
        security_event("password_check_failed", user_id=user.id)
    else:
        throttle.clear_failures(username)
    db.session.commit()
    return ok


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


COUNT_CAP = 1_000  # `users list` says "more than 1000" rather than count every match


def find_users(q: str = "", *, limit: int = 20, offset: int = 0) -> tuple[list[User], int]:
    """Users matching q (accounts.search) in creation order, and how many match, up to
    COUNT_CAP + 1 (more than COUNT_CAP: the caller says "more than")."""
    rows = search.find(q, limit=limit, offset=offset)
    return rows, search.count(q, cap=COUNT_CAP)


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
