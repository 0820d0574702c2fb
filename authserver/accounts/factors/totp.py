"""Authenticator apps: RFC 6238 one-time codes (SHA-1, 6 digits, 30 s, one step of drift).

Secrets are sealed at rest (authserver.sealing, purpose "totp"). A code, or any code of an
earlier time step, is accepted once per account (RFC 6238 section 5.2): the last accepted
step is stored and moved forward by a conditional UPDATE, so two requests racing with one
code cannot both pass. Enrolment keeps the new secret on the server (sealed, 15 minutes)
until a code from the app confirms it.
"""
from __future__ import annotations

import hmac
from datetime import timedelta

import pyotp
from flask import current_app
from sqlalchemy import or_, update

from ... import clock, sealing
from ...extensions import db
from ..models import User

PURPOSE = sealing.register("users", "totp_secret", "totp")
PENDING_PURPOSE = sealing.register("users", "totp_pending", "totp-pending")
STEP = 30
DRIFT = 1
ENROL_TTL = 900
MAX_CODE = 6


def seal(secret: str) -> str:
    return sealing.seal(current_app.config, secret.encode(), PURPOSE)


def secret_of(user: User) -> str | None:
    """The user's authenticator secret in clear, or None."""
    if not user.totp_secret:
        return None
    return sealing.unseal(current_app.config, user.totp_secret, PURPOSE).decode()


def matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step (within the drift) whose code this is, if later than `after`."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != MAX_CODE or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP)
    now = int(clock.now().timestamp()) // STEP
    for step in range(now - DRIFT, now + DRIFT + 1):
        if (after is None or step > after) and \
                hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def accept(user: User, code: str) -> bool:
    """Accept a code once: the step moves forward atomically (in the caller's transaction)."""
    secret = secret_of(user)
    step = matching_step(secret, code, user.totp_last_step) if secret else None
    if step is None:
        return False
    return db.session.execute(
        update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                   User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False)
    ).rowcount == 1


def pending_secret(user: User) -> str:
    """The secret of the enrolment in progress, a new one when none is (kept 15 minutes).

    Commits when it makes a new one. The browser never sends the secret back.
    """
    now = clock.now()
    if user.totp_pending and user.totp_pending_expires_at and now < user.totp_pending_expires_at:
        return sealing.unseal(current_app.config, user.totp_pending, PENDING_PURPOSE).decode()
    secret = pyotp.random_base32()
    user.totp_pending = sealing.seal(current_app.config, secret.encode(), PENDING_PURPOSE)
    user.totp_pending_expires_at = now + timedelta(seconds=ENROL_TTL)
    db.session.commit()
    return secret


def confirm_pending(user: User, code: str) -> bool:
    """Make the pending secret the user's if `code` matches it (the caller commits).

    The confirming code's step is stored as used, so it cannot also pass a sign-in.
    """
    now = clock.now()
    if not user.totp_pending or not user.totp_pending_expires_at \
            or now >= user.totp_pending_expires_at:
        return False
    secret = sealing.unseal(current_app.config, user.totp_pending, PENDING_PURPOSE).decode()
    step = matching_step(secret, code, None)
    if step is None:
        return False
    user.totp_secret = seal(secret)
    user.totp_last_step = step
    user.totp_pending = None
    user.totp_pending_expires_at = None
    return True


def provisioning_uri(user: User, secret: str, issuer_name: str) -> str:
    """The otpauth:// link an authenticator app reads (also the QR code's content)."""
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=user.email,
                                                               issuer_name=issuer_name)


def remove(user: User) -> None:
    user.totp_secret = None
    user.totp_last_step = None
    user.totp_pending = None
    user.totp_pending_expires_at = None
