"""Is this token alive? The one answer for /token, /userinfo, /introspect and the admin API.

A token is alive only while everything that let it be issued still holds (SPEC sections 3, 4
and 8): a refresh token not rotated (RFC 9700 section 4.14), revoked (RFC 7009) or past its
family's expiry; an access token (RFC 9068) signed by us, unexpired and its `jti` not revoked;
for both, the browser session it was issued in still live, its user `active`, and, for a
client that requires a licence, the licence still held. Introspection (RFC 7662 section 2.2)
reports exactly this verdict, so it never calls active a token that the server refuses.

Lookups only: nothing here writes or commits. The callers' services record what follows
from a verdict (a reused refresh token revokes its family: services.usable_refresh_token).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import and_, select

from .. import clock
from ..accounts.models import BrowserSession, Licence, User
from ..accounts.states import can_use_tokens
from ..extensions import db
from .models import RefreshToken, RevokedAccessToken

# The access-token claim naming the browser session it was issued in (a private claim,
# RFC 9068 section 2.2.3: resource servers ignore it). Client-credentials tokens have none.
SESSION_CLAIM = "session"


def session_claim(session_id: int | None) -> dict:
    """The claims binding an access token to the browser session it was issued in."""
    return {SESSION_CLAIM: session_id} if session_id is not None else {}


class Verdict(StrEnum):
    ALIVE = "alive"
    UNKNOWN = "unknown"  # no such token, user or client
    REVOKED = "revoked"
    ROTATED = "rotated"
    EXPIRED = "expired"
    SESSION_ENDED = "session_ended"
    USER_INACTIVE = "user_inactive"
    NO_LICENCE = "no_licence"


class LicensedClient(Protocol):
    """What the rule needs of a client (oauth.models.Client, a layer above)."""

    id: int
    requires_licence: bool


@dataclass(frozen=True)
class Liveness:
    verdict: Verdict
    user: User | None = None

    @property
    def alive(self) -> bool:
        return self.verdict is Verdict.ALIVE

    def __bool__(self) -> bool:
        return self.alive


def holds_licence(user_id: int, client: LicensedClient) -> bool:
    """A client registered with --requires-licence serves only users holding its licence."""
    if not client.requires_licence:
        return True
    return db.session.scalar(select(Licence.id).where(
        Licence.user_id == user_id, Licence.client_id == client.id)) is not None


def session_live(session_id: int | None, session: BrowserSession | None,
                 now: datetime) -> bool:
    """A token issued in a browser session lives only as long as that session (SPEC 3)."""
    if session_id is None:
        return True
    return session is not None and session.is_live(now)


def _user_verdict(user: User | None, client: LicensedClient | None) -> Verdict:
    if user is None or client is None:
        return Verdict.UNKNOWN
    if not can_use_tokens(user):
        return Verdict.USER_INACTIVE
    if not holds_licence(user.id, client):
        return Verdict.NO_LICENCE
    return Verdict.ALIVE


def refresh_token_liveness(row: RefreshToken | None, client: LicensedClient | None, *,
                           now: datetime | None = None, rotated_ok: bool = False) -> Liveness:
    """The verdict on a refresh token (RFC 6749 section 6) presented by or for `client`.

    rotated_ok: a token rotated inside REFRESH_REUSE_GRACE still counts (the caller decides
    the grace); otherwise a rotated token is ROTATED, which the refresh grant treats as reuse.
    """
    now = now or clock.now()
    if row is None:
        return Liveness(Verdict.UNKNOWN)
    if row.revoked_at is not None:
        return Liveness(Verdict.REVOKED)
    if now >= row.family_expires_at:
        return Liveness(Verdict.EXPIRED)
    if not session_live(row.session_id, row.session, now):
        return Liveness(Verdict.SESSION_ENDED)
    if row.rotated_at is not None and not rotated_ok:
        return Liveness(Verdict.ROTATED)
    return Liveness(_user_verdict(row.user, client), row.user)


def access_token_liveness(claims: dict, client: LicensedClient | None, *,
                          now: datetime | None = None) -> Liveness:
    """The verdict on verified access-token claims (jwt_access.decode_access_token checked
    signature, typ, issuer and expiry; RFC 9068 section 4) issued to `client`.

    A client-credentials token (sub == client_id, RFC 9068 section 2.2) has no user and no
    session; it lives while its client is registered and its jti is not revoked.
    """
    now = now or clock.now()
    if client is None:
        return Liveness(Verdict.UNKNOWN)
    if now.timestamp() >= claims.get("exp", 0):
        return Liveness(Verdict.EXPIRED)
    if is_jti_revoked(claims.get("jti")):
        return Liveness(Verdict.REVOKED)
    if claims.get("sub") == claims.get("client_id"):
        return Liveness(Verdict.ALIVE)
    user, bs = _user_and_session(claims.get("sub"), claims.get(SESSION_CLAIM))
    if user is None:
        return Liveness(Verdict.UNKNOWN)
    if not session_live(claims.get(SESSION_CLAIM), bs, now):
        return Liveness(Verdict.SESSION_ENDED, user)
    return Liveness(_user_verdict(user, client), user)


def _user_and_session(sub, session_id) -> tuple[User | None, BrowserSession | None]:
    """The token's user and, when the token names one, that user's session: one query."""
    if not isinstance(sub, str) or len(sub) > 64:
        return None, None
    known = isinstance(session_id, int) and not isinstance(session_id, bool) \
        and 0 < session_id < 2**31
    if not known:
        return db.session.scalar(select(User).where(User.sub == sub)), None
    row = db.session.execute(
        select(User, BrowserSession).outerjoin(BrowserSession, and_(
            BrowserSession.id == session_id, BrowserSession.user_id == User.id))
        .where(User.sub == sub)).first()
    return (row[0], row[1]) if row else (None, None)


def is_jti_revoked(jti) -> bool:
    """A JWT access token revoked before its expiry (RFC 7009 section 2)."""
    if not isinstance(jti, str) or not jti or len(jti) > 64:
        return True
    return db.session.get(RevokedAccessToken, jti) is not None
