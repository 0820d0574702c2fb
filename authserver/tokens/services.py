"""Refresh-token families, rotation with reuse detection, and session revocation.

RFC 6749 section 10.4 and the OAuth 2.0 Security BCP (RFC 9700 section 4.14): every use
rotates the refresh token; a rotated token presented again revokes its whole family.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.orm import contains_eager

from .. import clock, security
from ..accounts import sessions
from ..accounts.models import BrowserSession
from ..audit import security_event
from ..db import delete_in_batches
from ..extensions import db
from .liveness import Liveness, Verdict, is_jti_revoked, refresh_token_liveness
from . import rotation
from .models import RefreshToken, RevokedAccessToken
from .rotation import RotatedToken


def hash_refresh_token(raw: str) -> str:
    return security.keyed_hash(raw, "refresh")


def store_refresh_token(raw: str, *, client_id: str, user_id: int, scope: str,
                        session_id: int | None, auth_time: int, amr: list,
                        family_id: str | None, family_expires_at: datetime) -> str:
    """Add one refresh token (hash only) to a family, a new one when family_id is None, and
    return the family id. One INSERT without the ORM's unit of work (every refresh does it)."""
    family_id = family_id or str(uuid.uuid4())
    db.session.execute(insert(RefreshToken).values(
        token_hash=hash_refresh_token(raw), family_id=family_id,
        family_expires_at=family_expires_at, client_id=client_id, user_id=user_id,
        session_id=session_id, scope=scope, auth_time=auth_time, amr=amr,
        created_at=clock.now()))
    return family_id


def check_refresh_token(raw: str, client) -> tuple[RefreshToken | None, Liveness]:
    """A presented refresh token and its verdict (liveness.refresh_token_liveness), from one
    query with its session and user; writes nothing."""
    if not raw or not isinstance(raw, str) or len(raw) > 512 or client is None:
        return None, Liveness(Verdict.UNKNOWN)
    now = clock.now()
    row = db.session.scalar(
        select(RefreshToken)
        .outerjoin(RefreshToken.session).join(RefreshToken.user)
        .options(contains_eager(RefreshToken.session), contains_eager(RefreshToken.user))
        .where(RefreshToken.token_hash == hash_refresh_token(raw)))
    if row is None or row.client_id != client.client_id:
        return None, Liveness(Verdict.UNKNOWN)
    return row, refresh_token_liveness(row, client, now=now, rotated_ok=_in_grace(row, now))


def usable_refresh_token(raw: str, client) -> RefreshToken | None:
    """A refresh token the client may use now (alive, RFC 6749 section 6), or None.

    Nothing is written for a usable token: rotate_refresh_token marks it used just before the
    new one is stored, so no write lock is held while the new access token is signed (SQLite
    has one writer; its busy handler sleeps up to 100 ms at a time). A token already rotated
    is reuse, recorded here at once (family revoked, committed) unless inside
    REFRESH_REUSE_GRACE.
    """
    row, life = check_refresh_token(raw, client)
    if life.verdict is Verdict.ROTATED:
        _reused(row, clock.now())
    return row if life.alive else None


def exchange_refresh_token(raw: str, client, new_raw: str,
                           accept: Callable[[RotatedToken], None] | None = None
                           ) -> RotatedToken | None:
    """The refresh grant's write (RFC 6749 section 6): rotate a usable token of `client` and
    store its successor `new_raw` in its family, committed; None when the token is not
    usable (what that verdict records, e.g. reuse revoking the family, is recorded).

    One statement on the hot path (rotation.rotate_and_store); its row then faces the one
    liveness rule (tokens.liveness) and `accept` (the grant's scope check), which may raise:
    either refusal rolls the write back, so a refused refresh spends nothing. When the
    statement finds nothing (unknown, rotated, revoked), the slower path decides: reuse,
    or a loser inside REFRESH_REUSE_GRACE that still gets a successor.

    Committed before the new access token is signed, so no lock is held during a signature
    (SQLite has one writer). Should the signature then fail, the client never sees the
    successor, as when a response is lost on the way: its next refresh is reuse.
    """
    if not raw or not isinstance(raw, str) or len(raw) > 512 or client is None:
        return None
    now = clock.now()
    found = rotation.rotate_and_store(
        db.session.connection(), old_hash=hash_refresh_token(raw), client_id=client.client_id,
        new_hash=hash_refresh_token(new_raw), now=now)
    if found is None or not refresh_token_liveness(found, client, now=now, rotated_ok=False):
        db.session.rollback()
        found = _exchange_slowly(raw, client, new_raw)
        if found is None:
            return None
    _accept_or_roll_back(found, accept)
    db.session.commit()
    return found


def _exchange_slowly(raw: str, client, new_raw: str) -> RotatedToken | None:
    """Why the statement found nothing usable, recorded (usable_refresh_token); a loser inside
    the grace period gets a successor in the family. Not committed."""
    row = usable_refresh_token(raw, client)
    if row is None or not rotate_refresh_token(row):
        return None
    store_refresh_token(new_raw, client_id=row.client_id, user_id=row.user_id, scope=row.scope,
                        session_id=row.session_id, auth_time=row.auth_time, amr=row.amr,
                        family_id=row.family_id, family_expires_at=row.family_expires_at)
    return rotation.from_row(row)


def _accept_or_roll_back(found: RotatedToken, accept) -> None:
    if accept is None:
        return
    try:
        accept(found)
    except Exception:
        db.session.rollback()
        raise


def rotate_refresh_token(row: RefreshToken) -> bool:
    """Mark a found token rotated, atomically: of two requests racing with one token, only
    one wins; the other is reuse (the family is revoked) unless inside the grace period."""
    now = clock.now()
    won = db.session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None),
                                   RefreshToken.revoked_at.is_(None))
        .values(rotated_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if won:
        return True
    db.session.refresh(row)
    if row.revoked_at is None and _in_grace(row, now):
        return True
    _reused(row, now)
    return False


def _in_grace(row: RefreshToken, now: datetime) -> bool:
    # `now` can be read before a racing winner's UPDATE, so earlier than its rotated_at:
    # without the grace > 0 test, grace 0 would let a concurrent loser through as a second
    # winner.
    grace = int(current_app.config["REFRESH_REUSE_GRACE"])
    return grace > 0 and row.rotated_at is not None \
        and now < row.rotated_at + timedelta(seconds=grace)


def _reused(row: RefreshToken, now: datetime) -> None:
    """Reuse means the token leaked: the family and the browser session it was issued in end
    (RFC 9700 section 4.14.2; the session's apps hear of it by back-channel logout)."""
    revoke_family(row.family_id, now)
    if row.session_id is not None:
        sessions.end_sessions(reason="refresh_reuse", session_ids=[row.session_id], now=now)
    security_event("refresh_reuse", user_id=row.user_id, client_id=row.client_id,
                   family_id=row.family_id)
    db.session.commit()


def revoke_family(family_id: str, now: datetime | None = None) -> int:
    """Revoke every token of a family (reuse, code replay, revocation endpoint)."""
    return db.session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id,
                                   RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or clock.now()).execution_options(synchronize_session=False)
    ).rowcount


def revoke_session(session: BrowserSession, reason: str = "logout") -> None:
    """End one browser session; its refresh tokens die with it (see revoke_session_tokens)."""
    sessions.end_sessions(reason=reason, session_ids=[session.id])


def revoke_user_sessions(user_id: int, reason: str) -> int:
    """End every browser session and refresh token of a user (reset, admin actions, disable)."""
    n = len(sessions.end_sessions(reason=reason, user_id=user_id))
    db.session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                                  RefreshToken.revoked_at.is_(None))
                       .values(revoked_at=clock.now())
                       .execution_options(synchronize_session=False))
    return n


def revoke_session_tokens(ended: list[sessions.EndedSession], now: datetime) -> None:
    """Session-end subscriber: the refresh tokens issued in an ended session are revoked."""
    db.session.execute(update(RefreshToken).where(
        RefreshToken.session_id.in_([e.id for e in ended]), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))


def find_refresh_token(raw: str) -> RefreshToken | None:
    """Look a refresh token up without rotating it (introspection, revocation)."""
    if not raw or len(raw) > 512:
        return None
    return db.session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == hash_refresh_token(raw)))


def revoke_access_token(jti: str, exp: int) -> None:
    """Remember a revoked JWT access token until it would have expired (RFC 7009)."""
    if db.session.get(RevokedAccessToken, jti) is None:
        expires = datetime.fromtimestamp(exp, tz=clock.now().tzinfo)
        db.session.add(RevokedAccessToken(jti=jti, expires_at=expires))


def is_access_token_revoked(jti: str) -> bool:
    return is_jti_revoked(jti)


def purge_expired(now: datetime, batch: int = 1000) -> int:
    """Delete refresh tokens past their family expiry and stale revoked-jti rows, in batches."""
    return (delete_in_batches(db.session, RefreshToken, RefreshToken.family_expires_at < now,
                              batch)
            + delete_in_batches(db.session, RevokedAccessToken,
                                RevokedAccessToken.expires_at < now, batch))
