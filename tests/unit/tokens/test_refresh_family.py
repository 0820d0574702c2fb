"""tokens.services: refresh-token families, rotation, reuse detection and revocation
(SPEC section 3, RFC 9700 section 4.14)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from authserver import clock
from authserver.accounts import services as accounts
from authserver.accounts.models import BrowserSession, User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.tokens import services as tokens
from authserver.tokens.models import RefreshToken, RevokedAccessToken
from support import make_user, use_refresh_token

CLIENT = "client-a"

DAY = timedelta(days=1)


@pytest.fixture
def session(frozen, app, ctx):
    """A browser session of alice, started now and living 30 days."""
    user = db.session.get(User, make_user(app))
    _, bs = accounts.start_session(user, ["pwd"])
    return bs


def issue(bs: BrowserSession, raw: str, family_id: str | None = None, client_id: str = CLIENT,
          expires_at=None) -> RefreshToken:
    tokens.store_refresh_token(
        raw, client_id=client_id, user_id=bs.user_id, scope="openid", session_id=bs.id,
        auth_time=int(bs.auth_time.timestamp()), amr=["pwd"], family_id=family_id,
        family_expires_at=expires_at or bs.expires_at)
    db.session.commit()
    return db.session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == tokens.hash_refresh_token(raw)))


def reuse_events() -> list[SecurityEvent]:
    return db.session.scalars(select(SecurityEvent).where(
        SecurityEvent.name == "refresh_reuse")).all()


def family(family_id: str) -> list[RefreshToken]:
    db.session.expire_all()
    return db.session.scalars(select(RefreshToken).where(
        RefreshToken.family_id == family_id)).all()


def rotate(bs, raw: str, new_raw: str) -> RefreshToken | None:
    """What the refresh grant does: use the old token, then store its successor."""
    old = use_refresh_token(raw, CLIENT)
    if old is not None:
        issue(bs, new_raw, old.family_id, expires_at=old.family_expires_at)
    return old


def test_refresh_tokens_are_stored_only_as_a_keyed_hash(session):
    row = issue(session, "raw-token-1")
    assert row.token_hash != "raw-token-1"
    assert "raw-token-1" not in row.token_hash
    assert len(row.token_hash) == 64
    assert tokens.hash_refresh_token("raw-token-1") == row.token_hash


def test_family_expiry_is_the_session_expiry_thirty_days_after_login(session):
    row = issue(session, "r1")
    assert row.family_expires_at == session.auth_time + 30 * DAY


def test_claim_marks_the_token_rotated_once(session):
    issue(session, "r1")
    row = use_refresh_token("r1", CLIENT)
    assert row is not None
    db.session.commit()
    assert row.rotated_at == clock.now()


def test_rotation_keeps_the_family_and_its_expiry(frozen, session):
    first = issue(session, "r1")
    frozen.tick(10 * DAY)
    rotate(session, "r1", "r2")
    second = tokens.find_refresh_token("r2")
    assert second.family_id == first.family_id
    assert second.family_expires_at == first.family_expires_at


def test_a_rotated_token_presented_again_revokes_the_family(session):
    first = issue(session, "r1")
    rotate(session, "r1", "r2")
    assert use_refresh_token("r1", CLIENT) is None
    assert all(row.revoked_at is not None for row in family(first.family_id))
    assert use_refresh_token("r2", CLIENT) is None
    events = reuse_events()
    assert len(events) == 1
    assert events[0].data["family_id"] == first.family_id
    assert events[0].client_id == CLIENT


def test_reuse_leaves_families_of_other_sessions_alone(session):
    _, elsewhere = accounts.start_session(session.user, ["pwd"])
    issue(session, "a1")
    other = issue(elsewhere, "b1")
    rotate(session, "a1", "a2")
    use_refresh_token("a1", CLIENT)
    assert all(row.revoked_at is None for row in family(other.family_id))
    assert use_refresh_token("b1", CLIENT) is not None


def test_reuse_ends_the_session_it_was_issued_in_and_its_other_families(session):
    """The token leaked: the browser session ends too (reason refresh_reuse)."""
    issue(session, "a1")
    sibling = issue(session, "b1")
    rotate(session, "a1", "a2")
    use_refresh_token("a1", CLIENT)
    db.session.refresh(session)
    assert session.revoked_at is not None
    assert all(row.revoked_at is not None for row in family(sibling.family_id))


def test_a_token_of_another_client_is_not_claimed_and_not_touched(session):
    row = issue(session, "r1")
    assert use_refresh_token("r1", "client-b") is None
    db.session.commit()
    db.session.refresh(row)
    assert row.rotated_at is None and row.revoked_at is None
    assert reuse_events() == []


def test_the_family_dies_thirty_days_after_login_whatever_the_rotation(frozen, session):
    issue(session, "r0")
    for i in range(3):
        frozen.tick(10 * DAY - timedelta(seconds=1))
        assert rotate(session, f"r{i}", f"r{i + 1}") is not None, i
        db.session.commit()
    frozen.tick(timedelta(seconds=4))
    assert use_refresh_token("r3", CLIENT) is None


def test_family_expiry_holds_even_if_the_session_lived_longer(frozen, session):
    issue(session, "r1", expires_at=clock.now() + DAY)
    frozen.tick(DAY + timedelta(seconds=1))
    assert use_refresh_token("r1", CLIENT) is None


def test_a_token_dies_with_its_browser_session(session):
    issue(session, "r1")
    tokens.revoke_session(session)
    db.session.commit()
    assert use_refresh_token("r1", CLIENT) is None


def test_revoking_a_user_ends_every_session_and_token(app, session):
    issue(session, "r1")
    _, second = accounts.start_session(session.user, ["pwd"])
    issue(second, "r2")
    assert tokens.revoke_user_sessions(session.user_id, "admin_revoke") == 2
    db.session.commit()
    assert use_refresh_token("r1", CLIENT) is None
    assert use_refresh_token("r2", CLIENT) is None
    assert db.session.scalar(select(BrowserSession.revoked_at).where(
        BrowserSession.id == second.id)) is not None


def test_revoke_family_counts_only_live_tokens(session):
    first = issue(session, "r1")
    issue(session, "r2", first.family_id)
    assert tokens.revoke_family(first.family_id) == 2
    assert tokens.revoke_family(first.family_id) == 0


@pytest.mark.parametrize("raw", ["", "x" * 513, None])
def test_empty_or_oversized_tokens_are_refused_without_a_lookup(session, raw):
    assert use_refresh_token(raw, CLIENT) is None
    assert tokens.find_refresh_token(raw) is None


def test_find_does_not_rotate(session):
    issue(session, "r1")
    assert tokens.find_refresh_token("r1") is not None
    assert use_refresh_token("r1", CLIENT) is not None


@pytest.fixture
def grace(settings):
    settings["REFRESH_REUSE_GRACE"] = 5


def test_within_the_grace_a_retry_gets_the_token_again(grace, frozen, session):
    first = issue(session, "r1")
    rotate(session, "r1", "r2")
    frozen.tick(timedelta(seconds=4))
    assert use_refresh_token("r1", CLIENT) is not None
    assert all(row.revoked_at is None for row in family(first.family_id))
    assert reuse_events() == []


def test_after_the_grace_reuse_revokes_the_family(grace, frozen, session):
    first = issue(session, "r1")
    rotate(session, "r1", "r2")
    frozen.tick(timedelta(seconds=5))
    assert use_refresh_token("r1", CLIENT) is None
    assert all(row.revoked_at is not None for row in family(first.family_id))
    assert len(reuse_events()) == 1


def test_without_grace_an_immediate_retry_is_reuse(session):
    issue(session, "r1")
    rotate(session, "r1", "r2")
    assert use_refresh_token("r1", CLIENT) is None
    assert len(reuse_events()) == 1


def test_a_revoked_access_token_is_remembered_until_it_expires(frozen, session):
    exp = clock.timestamp() + 3600
    tokens.revoke_access_token("jti-1", exp)
    tokens.revoke_access_token("jti-1", exp)
    db.session.commit()
    assert tokens.is_access_token_revoked("jti-1")
    assert not tokens.is_access_token_revoked("jti-2")
    frozen.tick(timedelta(seconds=3601))
    tokens.purge_expired(clock.now())
    assert db.session.get(RevokedAccessToken, "jti-1") is None


def test_purge_removes_only_expired_families(frozen, session):
    issue(session, "old", expires_at=clock.now() + DAY)
    issue(session, "live")
    frozen.tick(2 * DAY)
    assert tokens.purge_expired(clock.now()) == 1
    assert tokens.find_refresh_token("old") is None
    assert tokens.find_refresh_token("live") is not None
