"""One function per email: each renders templates/mail/<kind>/ into a Draft.

They run in the request thread (where url_for(_external=True) works) and
never send anything: callers hand the Draft to outbox.queue().
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import current_app, render_template

from .. import clock


@dataclass(frozen=True)
class Draft:
    """A rendered email, ready for the outbox."""

    to: str
    subject: str
    text: str
    html: str
    kind: str


def reset_code(user: Any, code: str, confirm_url: str) -> Draft:
    """The verification code a user asked for on /forgot-password."""
    ttl = int(current_app.config["RESET_CODE_TTL"])
    return _render("reset_code", user, code=code, confirm_url=confirm_url,
                   valid_for=_duration(ttl))


def cannot_reset(user: Any) -> Draft:
    """Sent instead of a code when the account's state forbids a self-service reset."""
    return _render("cannot_reset", user)


def upstream_only(user: Any, labels: list[str], login_url: str) -> Draft:
    """Sent instead of a code to an account with no password: it signs in upstream."""
    return _render("upstream_only", user, labels=labels, login_url=login_url)


def password_changed(user: Any) -> Draft:
    """The notice after any password change, so a user can react to one they did not make."""
    return _render("password_changed", user, changed_at=_when(clock.now()))


def admin_reset(user: Any, code: str, confirm_url: str) -> Draft:
    """An administrator pressed Reset: the user must set a new password with this code."""
    ttl = int(current_app.config["RESET_CODE_TTL"])
    return _render("admin_reset", user, code=code, confirm_url=confirm_url,
                   valid_for=_duration(ttl))


def temporary_password(user: Any, password: str, login_url: str,
                       expires_at: datetime) -> Draft:
    """An administrator's temporary password, to be replaced at the first sign-in."""
    ttl = int(current_app.config["TEMP_PASSWORD_TTL"])
    return _render("temporary_password", user, password=password, login_url=login_url,
                   valid_for=_duration(ttl), expires=_when(expires_at))


def _render(kind: str, user: Any, **context: Any) -> Draft:
    config = current_app.config
    context.update(
        user=user,
        name=user.name or user.username,
        username=user.username,
        organisation=config["ORGANISATION_NAME"],
        admin_contact=config["ADMIN_CONTACT"],
    )
    folder = f"mail/{kind}"
    # A header must be one line: Flask-Mail refuses a subject with a newline.
    subject = " ".join(render_template(f"{folder}/subject.txt", **context).split())
    text = render_template(f"{folder}/body.txt", **context).strip() + "\n"
    html = render_template(f"{folder}/body.html", **context)
    return Draft(to=user.email, subject=subject, text=text, html=html, kind=kind)


def _duration(seconds: int) -> str:
    """Whole days when the setting is in days ("7 days"), else minutes ("60 minutes")."""
    if seconds >= 86400 and seconds % 86400 == 0:
        count, unit = seconds // 86400, "day"
    else:
        count, unit = max(1, round(seconds / 60)), "minute"
    return f"{count} {unit}" + ("" if count == 1 else "s")


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


MFA_CHANGES = {
    "enabled": "it was turned on with a new authenticator app",
    "replaced": "a new authenticator app replaced the old one",
    "disabled": "it was turned off",
    "recovery_codes": "new recovery codes were made (the old ones no longer work)",
    "admin_reset": "an administrator removed it (authenticator app and recovery codes)",
}


def mfa_failed(user: Any, tries: int) -> Draft:
    """Someone knew the password but not the code: the user should know (SPEC section 8)."""
    return _render("mfa_failed", user, tries=tries, when=_when(clock.now()))


def mfa_changed(user: Any, change: str) -> Draft:
    """The second step was turned on, replaced, turned off, reset, or got new recovery codes."""
    return _render("mfa_changed", user, what=MFA_CHANGES[change], when=_when(clock.now()))


def passkey_changed(user: Any, passkey_name: str, verb: str, by_admin: bool = False) -> Draft:
    """A passkey was added to or removed from the account (verb "added" or "removed")."""
    return _render("passkey_changed", user, passkey_name=passkey_name, verb=verb,
                   by=" by an administrator" if by_admin else "", when=_when(clock.now()))
