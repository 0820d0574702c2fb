"""Users, their licences, browser sessions and login throttles."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String,
                        Text,
                        UniqueConstraint, bindparam, select)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock, security
from ..db import UTCDateTime
from ..extensions import db
from .states import AccountState


def _new_sub() -> str:
    return str(uuid.uuid4())


def _trigram(name: str, column: str) -> Index:
    """A pg_trgm GIN index for partial, case-insensitive search (a plain index elsewhere)."""
    return Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (_trigram("ix_users_username_trgm", "username_key"),
                      _trigram("ix_users_email_trgm", "email_key"),
                      _trigram("ix_users_name_trgm", "name_key"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sub: Mapped[str] = mapped_column(String(36), unique=True, default=_new_sub)
    username: Mapped[str] = mapped_column(String(150))
    username_key: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    name_key: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), default=AccountState.ACTIVE.value, index=True)
    # The state Enable returns to (SPEC section 8): set by Disable, cleared by Enable.
    state_before_disable: Mapped[str | None] = mapped_column(String(32))
    temp_password_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    roles: Mapped[str] = mapped_column(String(200), default="")
    # Sealed with authserver.sealing (purpose "totp"); never stored in clear.
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    # The last RFC 6238 time step accepted (section 5.2: a code is accepted once).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # An enrolment in progress: the new secret (sealed) until a code confirms it.
    totp_pending: Mapped[str | None] = mapped_column(String(255))
    totp_pending_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Wrong second-step codes in a row, and the lock they earned (like the password's).
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0)
    mfa_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every change of the password or of the second step: a sign-in in progress
    # that saw another version is over (accounts.signin).
    password_version: Mapped[int] = mapped_column(Integer, default=0)
    mfa_version: Mapped[int] = mapped_column(Integer, default=0)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    licences: Mapped[list[Licence]] = relationship(back_populates="user",
                                                   cascade="all, delete-orphan")

    def get_user_id(self) -> str:
        return self.sub

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles.split()

    @property
    def mfa_enabled(self) -> bool:
        """The authenticator app is set up (one-time codes)."""
        return bool(self.totp_secret)

    @property
    def has_second_step(self) -> bool:
        """Two-step sign-in is on: the authenticator app, or a passkey used as second step."""
        if self.totp_secret:
            return True
        return db.session.scalar(SECOND_STEP_PASSKEY, {"user_id": self.id}) is not None

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Licence(db.Model):
    """A user's right to use a client that requires a licence."""

    __tablename__ = "licences"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    user: Mapped[User] = relationship(back_populates="licences")


class BrowserSession(db.Model):
    """The server-side record of a sign-in at the issuer; the cookie holds only its id."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The `sid` claim (OIDC Back-Channel Logout 1.0 section 2.4): public, unlike the cookie's
    # secret id, whose hash is sid_hash.
    public_sid: Mapped[str | None] = mapped_column(String(32), unique=True,
                                                   default=lambda: security.random_token(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    ip: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class LoginThrottle(db.Model):
    """Consecutive failures per typed name (normalised), so unknown names are throttled alike."""

    __tablename__ = "login_throttles"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class RecoveryCode(db.Model):
    """One single-use recovery code, stored only as a keyed hash; spent by a DELETE."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class SignIn(db.Model):
    """A sign-in in progress (accounts.signin): the cookie holds only a random id."""

    __tablename__ = "sign_ins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The step the sign-in waits at; each step moves it on by one conditional UPDATE.
    step: Mapped[str] = mapped_column(String(32))
    done: Mapped[list] = mapped_column(JSON, default=list)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    seen_state: Mapped[str] = mapped_column(String(32))
    seen_password_version: Mapped[int] = mapped_column(Integer)
    seen_mfa_version: Mapped[int] = mapped_column(Integer)
    next_url: Mapped[str | None] = mapped_column(Text)
    otp_tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(32))

    user: Mapped[User] = relationship()


class Passkey(db.Model):
    """A WebAuthn credential (SPEC section 9): its id is unique across every account."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The credential id, base64url without padding (as browsers send it).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list] = mapped_column(JSON, default=list)
    name: Mapped[str] = mapped_column(String(100))
    # Offered as the second step after the password (removed by Reset two-step sign-in).
    second_step: Mapped[bool] = mapped_column(Boolean, default=True)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


# Read at every sign-in (User.has_second_step), so built once: building a statement costs
# SQLAlchemy more than running it does.
SECOND_STEP_PASSKEY = select(Passkey.id).where(
    Passkey.user_id == bindparam("user_id"), Passkey.second_step.is_(True)).limit(1)


class WebAuthnChallenge(db.Model):
    """One WebAuthn challenge: single use, 5 minutes, bound to what asked for it.

    `purpose` is "register" (bound to a browser session), "mfa" (bound to a sign-in record)
    or "login" (a passkey sign-in's start: bound to a random handle whose hash is here and
    whose raw value is in the browser's cookie). Only a hash of the challenge is kept.
    """

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    binding: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Upstream(db.Model):
    """An upstream OpenID provider people may sign in with (SPEC section 10)."""

    __tablename__ = "upstreams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    # Sealed with authserver.sealing (purpose "upstream-client-secret"): it is sent upstream.
    client_secret: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(100))
    domains: Mapped[list] = mapped_column(JSON, default=list)
    create_users: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class UpstreamIdentity(db.Model):
    """A linked identity: (upstream, subject) -> account. The subject is `sub` (Entra: tid
    and oid), never an email."""

    __tablename__ = "upstream_identities"
    __table_args__ = (UniqueConstraint("upstream_id", "subject"),
                      UniqueConstraint("upstream_id", "user_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream_id: Mapped[int] = mapped_column(ForeignKey("upstreams.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))  # as last seen, for display only
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    upstream: Mapped[Upstream] = relationship()
    user: Mapped[User] = relationship()


class UpstreamLogin(db.Model):
    """A trip to an upstream in progress: state, nonce and PKCE verifier kept here, bound to
    the browser by a random key whose hash is stored (the cookie holds the key)."""

    __tablename__ = "upstream_logins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    upstream_id: Mapped[int] = mapped_column(ForeignKey("upstreams.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(200))
    # "login", or "connect" for the signed-in user `user_id` linking an identity.
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    next_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
