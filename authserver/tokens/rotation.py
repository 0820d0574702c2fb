"""The refresh grant's write, as one statement: rotate a presented refresh token and store its
successor, returning what the grant and the liveness rule need (RFC 6749 section 6, RFC 9700
section 4.14.2). Writes only; services.exchange_refresh_token decides and commits.

- PostgreSQL: one statement, a CTE (`UPDATE ... RETURNING`, `INSERT ... SELECT` from it,
  then the token's user and session joined), so one round trip between BEGIN and COMMIT.
- SQLite (3.35 or later has RETURNING): `UPDATE ... RETURNING` with the user and session
  read by scalar subqueries, then `INSERT ... SELECT` by id: two statements, in process.

The UPDATE's WHERE is the race rule: of many requests presenting one token, exactly one
finds it neither rotated nor revoked (a row lock on PostgreSQL, the one writer on SQLite).
Everything else about liveness (expiry, session, user state, licence) stays in
tokens.liveness, applied in Python to the returned row; a refusal rolls the write back.

The statements are built once per dialect and executed on the session's connection, without
the ORM: no identity map, no unit of work, plain rows.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from ..accounts.models import BrowserSession, User
from .models import RefreshToken

TOKENS = RefreshToken.__table__
USERS = User.__table__
SESSIONS = BrowserSession.__table__

# The columns a successor copies from the token it replaces (a family shares them all).
COPIED = ("family_id", "family_expires_at", "client_id", "user_id", "session_id", "scope",
          "auth_time", "amr")


class TokenUser(NamedTuple):
    """What tokens need of a user: liveness reads id and state; the access token's sub."""

    id: int
    sub: str
    state: str

    get_user_id = User.get_user_id


class SessionState(NamedTuple):
    """What liveness needs of a browser session (the rule is BrowserSession.is_live)."""

    revoked_at: datetime | None
    expires_at: datetime

    is_live = BrowserSession.is_live


class RotatedToken(NamedTuple):
    """A refresh token this request rotated (or, inside REFRESH_REUSE_GRACE, found rotated a
    moment ago), its successor already stored. Read by tokens.liveness like a RefreshToken
    row, and by Authlib's grant through check_client and get_scope."""

    id: int
    family_id: str
    family_expires_at: datetime
    client_id: str
    user_id: int
    session_id: int | None
    scope: str
    auth_time: int
    amr: list
    user: TokenUser
    session: SessionState | None

    # Before this request rotated it the token was live (the UPDATE's WHERE), so liveness
    # sees it as it was: neither rotated nor revoked.
    rotated_at = None
    revoked_at = None

    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope


def from_row(row: RefreshToken) -> RotatedToken:
    """The same shape from an ORM row (the grant's slow path: grace, or an ORM caller)."""
    user, bs = row.user, row.session
    return RotatedToken(*(getattr(row, name) for name in ("id", *COPIED)),
                        user=TokenUser(user.id, user.sub, user.state),
                        session=SessionState(bs.revoked_at, bs.expires_at) if bs else None)


def _rotate_where(stmt):
    return stmt.where(TOKENS.c.token_hash == bindparam("old_hash"),
                      TOKENS.c.client_id == bindparam("presented_by"),
                      TOKENS.c.rotated_at.is_(None), TOKENS.c.revoked_at.is_(None)) \
        .values(rotated_at=bindparam("now", type_=TOKENS.c.rotated_at.type))


def _successor_columns(source) -> list:
    return [bindparam("new_hash", type_=String), *(source.c[name] for name in COPIED),
            bindparam("now", type_=TOKENS.c.created_at.type)]


INSERTED = ["token_hash", *COPIED, "created_at"]


def _postgresql():
    old = _rotate_where(update(TOKENS)).returning(
        TOKENS.c.id, *(TOKENS.c[name] for name in COPIED)).cte("old")
    new = insert(TOKENS).from_select(INSERTED, select(*_successor_columns(old))).cte("new")
    return select(*(old.c[name] for name in ("id", *COPIED)), USERS.c.sub, USERS.c.state,
                  SESSIONS.c.revoked_at.label("session_revoked_at"),
                  SESSIONS.c.expires_at.label("session_expires_at")) \
        .select_from(old.join(USERS, USERS.c.id == old.c.user_id)
                     .outerjoin(SESSIONS, SESSIONS.c.id == old.c.session_id)) \
        .add_cte(new)


def _sqlite():
    def of_user(col):
        return select(col).where(USERS.c.id == TOKENS.c.user_id).scalar_subquery()

    def of_session(col):
        return select(col).where(SESSIONS.c.id == TOKENS.c.session_id).scalar_subquery()

    rotate = _rotate_where(update(TOKENS)).returning(
        TOKENS.c.id, *(TOKENS.c[name] for name in COPIED), of_user(USERS.c.sub),
        of_user(USERS.c.state), of_session(SESSIONS.c.revoked_at),
        of_session(SESSIONS.c.expires_at))
    store = insert(TOKENS).from_select(
        INSERTED, select(*_successor_columns(TOKENS)).where(TOKENS.c.id == bindparam("old_id")))
    return rotate, store


_STATEMENTS: dict[str, object] = {}


def _statements(dialect: str):
    found = _STATEMENTS.get(dialect)
    if found is None:
        found = _STATEMENTS[dialect] = _postgresql() if dialect == "postgresql" else _sqlite()
    return found


def rotate_and_store(conn: Connection, *, old_hash: str, client_id: str, new_hash: str,
                     now: datetime) -> RotatedToken | None:
    """Mark the token rotated and insert its successor, if it is neither rotated nor revoked
    and belongs to client_id; return it with its user and session, or None. Not committed."""
    params = {"old_hash": old_hash, "presented_by": client_id, "new_hash": new_hash, "now": now}
    if conn.dialect.name == "postgresql":
        row = conn.execute(_statements("postgresql"), params).first()
    else:
        rotate, store = _statements(conn.dialect.name)
        row = conn.execute(rotate, params).first()
        if row is not None:
            conn.execute(store, {"old_id": row[0], "new_hash": new_hash, "now": now})
    if row is None:
        return None
    sub, state, revoked_at, expires_at = row[9:13]
    session = SessionState(revoked_at, expires_at) if row[5] is not None and expires_at else None
    return RotatedToken(*row[:9], user=TokenUser(row[4], sub, state), session=session)
