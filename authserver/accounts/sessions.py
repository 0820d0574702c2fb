"""Ending browser sessions: the one home of "this sign-in at the issuer is over".

Every way a session ends (logout, *Sign out everywhere*, a password reset or change, an
administrator's Reset, Disable, temporary password or revoke, refresh-token reuse, the 30 days
running out) goes through `end_sessions`, with the reason. Layers above subscribe with
`on_session_end`: the tokens layer revokes the refresh tokens issued in the session, the OAuth
layer queues back-channel logout tokens. The caller's service commits; subscribers only add to
the same transaction, so a session ends with all its consequences or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable

from flask import Flask, current_app
from sqlalchemy import select, update

from .. import clock
from ..extensions import db
from . import signin
from .models import BrowserSession

REASONS = ("logout", "sign_out_everywhere", "password_reset", "password_change",
           "admin_reset", "admin_disable", "admin_temporary_password", "admin_revoke",
           "admin_reset_mfa", "refresh_reuse", "expired")
_HOOKS = "authserver.session_end_hooks"
# These also end the user's sign-ins in progress (SPEC section 8). A password change does
# not need to: the password version changes, so every other sign-in of the user is over at
# its next step, while the forced change itself continues its own sign-in.
ENDS_SIGN_INS = frozenset(REASONS) - {"password_change", "refresh_reuse", "expired"}


@dataclass(frozen=True)
class EndedSession:
    id: int
    user_id: int
    reason: str


SessionEndHook = Callable[[list[EndedSession], datetime], None]


def on_session_end(app: Flask, hook: SessionEndHook) -> None:
    """Subscribe hook(ended_sessions, now) to every ending of sessions in this app."""
    hooks = app.extensions.setdefault(_HOOKS, [])
    if hook not in hooks:
        hooks.append(hook)


def end_sessions(*, reason: str, user_id: int | None = None,
                 session_ids: Iterable[int] | None = None,
                 now: datetime | None = None) -> list[EndedSession]:
    """End the live sessions of a user, or the given sessions; returns those this call ended.

    The conditional UPDATE ... RETURNING claims each session once, so two racing callers
    never both run the subscribers for one session (one back-channel logout per session).
    """
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    if user_id is None and session_ids is None:
        raise ValueError("end_sessions needs user_id or session_ids")
    now = now or clock.now()
    stmt = update(BrowserSession).where(BrowserSession.revoked_at.is_(None))
    if user_id is not None:
        stmt = stmt.where(BrowserSession.user_id == user_id)
    if session_ids is not None:
        ids = list(session_ids)
        if not ids:
            return []
        stmt = stmt.where(BrowserSession.id.in_(ids))
    rows = db.session.execute(
        stmt.values(revoked_at=now).returning(BrowserSession.id, BrowserSession.user_id)
        .execution_options(synchronize_session=False)).all()
    ended = [EndedSession(row.id, row.user_id, reason) for row in rows]
    if reason in ENDS_SIGN_INS:
        signin.end_for_users([user_id, *(e.user_id for e in ended)], reason)
    if ended:
        for hook in current_app.extensions.get(_HOOKS, ()):
            hook(ended, now)
    return ended


def end_expired_sessions(now: datetime | None = None) -> list[EndedSession]:
    """End sessions whose 30 days ran out, so their subscribers hear of it like any other
    ending (`authserver purge` calls it before deleting old rows). The caller commits."""
    now = now or clock.now()
    ids = list(db.session.scalars(select(BrowserSession.id).where(
        BrowserSession.revoked_at.is_(None), BrowserSession.expires_at <= now)))
    return end_sessions(reason="expired", session_ids=ids, now=now)
