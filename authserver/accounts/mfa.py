"""Managing a user's second step: turn it on (or replace it), off, new recovery codes, and an
administrator's reset. Each change bumps the account's second-step version (a sign-in in
progress that saw the old one is over), is audited, and emails the user a notice.

The checks of a code at sign-in live in factors/second_step.py.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app

from .. import clock
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from ..mail import messages, outbox
from . import passkeys, services
from .factors import recovery, totp
from .models import BrowserSession, User

REAUTH_MAX_AGE = 300  # seconds: a sign-in this recent may change the second step


class ReauthRequired(AuthserverError):
    """The current password is needed (the sign-in is older than 5 minutes)."""


def recently_signed_in(bs: BrowserSession | None) -> bool:
    return bs is not None and clock.now() - bs.auth_time <= timedelta(seconds=REAUTH_MAX_AGE)


def reauthenticate(user: User, bs: BrowserSession | None, password: str | None) -> None:
    """Ask for the current password unless the user signed in within the last 5 minutes.

    The password is checked by accounts.services.authenticate, so it counts as a sign-in
    attempt for the account (throttled like /login). Raises ReauthRequired,
    services.LoginRejected or services.LoginThrottled.
    """
    if recently_signed_in(bs):
        return
    if not password:
        raise ReauthRequired("Enter your current password.")
    try:
        services.authenticate(user.username, password)
    except services.TemporaryPasswordExpired as exc:
        raise services.LoginRejected("Your current password is not right.") from exc
    except services.LoginRejected as exc:
        raise services.LoginRejected("Your current password is not right.") from exc
    db.session.commit()  # the check's outcome (its failure count cleared)


def _changed(user: User, change: str, **fields) -> None:
    user.mfa_version = (user.mfa_version or 0) + 1
    user.mfa_failures = 0
    user.mfa_locked_until = None
    outbox.queue(messages.mfa_changed(user, change))
    security_event(f"mfa_{change}", user_id=user.id, **fields)


def confirm_enrolment(user: User, code: str) -> list[str] | None:
    """Turn the second step on (or replace the app) if `code` matches the pending secret;
    returns the new recovery codes, shown once, or None for a wrong code. Commits."""
    replacing = user.mfa_enabled
    if not totp.confirm_pending(user, code):
        db.session.rollback()
        return None
    codes = recovery.new_codes(user)
    _changed(user, "replaced" if replacing else "enabled")
    db.session.commit()
    return codes


def new_recovery_codes(user: User) -> list[str]:
    """Replace the recovery codes (the old ones stop working); returns them. Commits."""
    codes = recovery.new_codes(user)
    _changed(user, "recovery_codes")
    db.session.commit()
    return codes


def turn_off(user: User) -> None:
    """Remove the authenticator app and recovery codes at the user's request. Commits."""
    totp.remove(user)
    recovery.remove(user)
    _changed(user, "disabled")
    db.session.commit()


def admin_reset(user: User, actor_id: int | None, client_id: str | None) -> None:
    """*Reset two-step sign-in*: remove the second step (the caller ends the sessions)."""
    totp.remove(user)
    recovery.remove(user)
    removed = passkeys.remove_second_step(user)
    _changed(user, "admin_reset", actor_id=actor_id, client_id=client_id,
             passkeys_removed=removed)


def enrolment(user: User) -> tuple[str, str]:
    """(secret, otpauth:// link) of the enrolment in progress, kept on the server."""
    secret = totp.pending_secret(user)
    return secret, totp.provisioning_uri(user, secret, current_app.config["ORGANISATION_NAME"])
