"""Managing a user's passkeys (SPEC section 9): add, remove, and an administrator's removal.

Each change is audited and emails the user a notice. A change to a passkey used as the
second step bumps the account's second-step version (a sign-in in progress that saw the old
set is over), as every change of the second step does. The ceremonies themselves live in
factors/passkey.py.
"""
from __future__ import annotations

from sqlalchemy import delete, select

from .. import clock
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from ..mail import messages, outbox
from .factors import passkey as ceremony
from .models import Passkey, User

NAME_MAX = 60


class PasskeyNotFound(AuthserverError):
    """No such passkey on this account."""


def default_name(user_agent: str) -> str:
    """A name from the browser that added it, e.g. "Chrome on Linux"."""
    ua = user_agent or ""
    browser = next((label for token, label in (
        ("Edg/", "Edge"), ("Firefox/", "Firefox"), ("OPR/", "Opera"), ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"), ("Safari/", "Safari")) if token in ua), None)
    system = next((label for token, label in (
        ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
        ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux")) if token in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Passkey"


def clean_name(name, user_agent: str) -> str:
    name = " ".join(str(name or "").split())[:NAME_MAX]
    name = "".join(ch for ch in name if ch.isprintable())
    return name or default_name(user_agent)


def _changed(user: User, passkey: Passkey, verb: str, *, actor_id=None, client_id=None):
    if passkey.second_step:
        user.mfa_version = (user.mfa_version or 0) + 1
    outbox.queue(messages.passkey_changed(user, passkey.name, verb,
                                          by_admin=actor_id is not None))
    security_event(f"passkey_{verb}", user_id=user.id, actor_id=actor_id, client_id=client_id,
                   passkey_id=passkey.id, passkey_name=passkey.name,
                   second_step=passkey.second_step)


def add(user: User, binding: str, credential: dict, name, second_step: bool,
        user_agent: str) -> Passkey:
    """Check a new passkey and keep it. Commits. Raises factors.passkey.PasskeyRejected."""
    if len(ceremony.user_passkeys(user)) >= ceremony.MAX_PASSKEYS:
        raise ceremony.PasskeyRejected(
            f"An account can have {ceremony.MAX_PASSKEYS} passkeys. Remove one first.")
    fields = ceremony.verify_registration(user, binding, credential)
    if db.session.scalar(select(Passkey.id).where(
            Passkey.credential_id == fields["credential_id"])) is not None:
        raise ceremony.PasskeyRejected("This passkey is already registered.")
    passkey = Passkey(user_id=user.id, name=clean_name(name, user_agent),
                      second_step=bool(second_step), created_at=clock.now(), **fields)
    db.session.add(passkey)
    db.session.flush()
    _changed(user, passkey, "added")
    db.session.commit()
    return passkey


def of_user(user: User) -> list[Passkey]:
    """The user's passkeys, oldest first. A lookup."""
    return ceremony.user_passkeys(user)


def find(user: User, passkey_id) -> Passkey:
    try:
        pid = int(passkey_id)
    except (TypeError, ValueError) as exc:
        raise PasskeyNotFound("No such passkey.") from exc
    passkey = db.session.get(Passkey, pid)
    if passkey is None or passkey.user_id != user.id:
        raise PasskeyNotFound("No such passkey.")
    return passkey


def remove(user: User, passkey_id, *, actor_id: int | None = None,
           client_id: str | None = None) -> Passkey:
    """Remove one passkey (by its owner or an administrator). Commits."""
    passkey = find(user, passkey_id)
    db.session.delete(passkey)
    _changed(user, passkey, "removed", actor_id=actor_id, client_id=client_id)
    db.session.commit()
    return passkey


def remove_second_step(user: User) -> int:
    """*Reset two-step sign-in*: remove the passkeys used as a second step (the caller's
    transaction and audit); the others stay."""
    return db.session.execute(delete(Passkey).where(
        Passkey.user_id == user.id, Passkey.second_step.is_(True))).rowcount
