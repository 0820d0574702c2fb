"""tokens.liveness: each rule of "is this token alive", one at a time (SPEC sections 3, 4, 8)."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from authserver import clock
from authserver.accounts import sessions
from authserver.accounts.models import Licence, User
from authserver.extensions import db
from authserver.oauth import services as oauth
from authserver.tokens import liveness
from authserver.tokens import services as tokens
from authserver.tokens.liveness import Verdict
from authserver.tokens.models import RefreshToken
from support import make_user

FREE = SimpleNamespace(id=None, client_id="client-a", requires_licence=False)


@pytest.fixture
def row(bs):
    tokens.store_refresh_token("r1", client_id="client-a", user_id=bs.user_id, scope="openid",
                               session_id=bs.id, auth_time=0, amr=["pwd"], family_id=None,
                               family_expires_at=bs.expires_at)
    db.session.commit()
    return db.session.scalar(select(RefreshToken))


def claims(bs=None, user=None, **extra) -> dict:
    now = clock.timestamp()
    return {"sub": user.sub if user else "client-a", "client_id": "client-a", "exp": now + 60,
            "jti": "jti-1", **liveness.session_claim(bs.id if bs else None), **extra}


def test_a_fresh_refresh_token_is_alive(row):
    assert liveness.refresh_token_liveness(row, FREE).verdict is Verdict.ALIVE


def test_refresh_token_verdicts(row, frozen, bs, alice):
    assert liveness.refresh_token_liveness(None, FREE).verdict is Verdict.UNKNOWN
    assert liveness.refresh_token_liveness(row, None).verdict is Verdict.UNKNOWN
    row.rotated_at = clock.now()
    assert liveness.refresh_token_liveness(row, FREE).verdict is Verdict.ROTATED
    assert liveness.refresh_token_liveness(row, FREE, rotated_ok=True).alive
    alice.state = "disabled"
    assert liveness.refresh_token_liveness(row, FREE, rotated_ok=True).verdict \
        is Verdict.USER_INACTIVE
    sessions.end_sessions(reason="logout", session_ids=[bs.id])
    db.session.refresh(bs)
    assert liveness.refresh_token_liveness(row, FREE).verdict is Verdict.SESSION_ENDED
    row.revoked_at = clock.now()
    assert liveness.refresh_token_liveness(row, FREE).verdict is Verdict.REVOKED


def test_refresh_token_expires_with_its_family(row, frozen):
    frozen.tick(timedelta(days=30, seconds=1))
    assert liveness.refresh_token_liveness(row, FREE).verdict is Verdict.EXPIRED


def test_licence_is_needed_only_where_the_client_requires_one(row, alice):
    licensed, _ = oauth.create_client("Licensed", ["http://127.0.0.1/cb"], requires_licence=True)
    other, _ = oauth.create_client("Other", ["http://127.0.0.1/cb"], requires_licence=True)
    assert liveness.refresh_token_liveness(row, licensed).verdict is Verdict.NO_LICENCE
    db.session.add(Licence(user_id=alice.id, client_id=licensed.id, granted_at=clock.now()))
    db.session.flush()
    assert liveness.refresh_token_liveness(row, licensed).alive
    assert liveness.holds_licence(alice.id, FREE)
    assert not liveness.holds_licence(alice.id, other)


def test_an_access_token_of_an_active_user_in_a_live_session_is_alive(alice, bs):
    life = liveness.access_token_liveness(claims(bs, alice), FREE)
    assert life.alive and life.user.id == alice.id


def test_access_token_verdicts(frozen, alice, bs):
    assert liveness.access_token_liveness(claims(bs, alice), None).verdict is Verdict.UNKNOWN
    assert liveness.access_token_liveness(claims(bs, alice, sub="nobody"), FREE).verdict \
        is Verdict.UNKNOWN
    tokens.revoke_access_token("jti-1", clock.timestamp() + 60)
    assert liveness.access_token_liveness(claims(bs, alice), FREE).verdict is Verdict.REVOKED
    assert liveness.access_token_liveness(claims(bs, alice, jti=None), FREE).verdict \
        is Verdict.REVOKED
    fresh = claims(bs, alice, jti="jti-2")
    alice.state = "force_change_password"
    assert liveness.access_token_liveness(fresh, FREE).verdict is Verdict.USER_INACTIVE
    alice.state = "active"
    sessions.end_sessions(reason="logout", session_ids=[bs.id])
    db.session.refresh(bs)
    assert liveness.access_token_liveness(fresh, FREE).verdict is Verdict.SESSION_ENDED
    assert liveness.access_token_liveness(claims(None, alice, jti="jti-3"), FREE).alive
    frozen.tick(timedelta(seconds=61))
    assert liveness.access_token_liveness(claims(None, alice, jti="jti-4", exp=0), FREE
                                          ).verdict is Verdict.EXPIRED


def test_an_access_token_naming_another_users_session_is_dead(app, alice, bs):
    bob = db.session.get(User, make_user(app, "bob"))
    assert liveness.access_token_liveness(claims(bs, bob), FREE).verdict \
        is Verdict.SESSION_ENDED


@pytest.mark.parametrize("session", ["1", 1.5, [1], True, 10**9, 10**20])
def test_a_session_claim_of_the_wrong_kind_or_unknown_is_dead(alice, session):
    assert liveness.access_token_liveness(claims(None, alice, session=session), FREE
                                          ).verdict is Verdict.SESSION_ENDED


def test_a_client_credentials_token_needs_only_its_client(ctx):
    assert liveness.access_token_liveness(claims(), FREE).alive
