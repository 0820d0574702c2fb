"""tokens.services.exchange_refresh_token: the refresh grant's one-statement rotation
(tokens/rotation.py) keeps every rule of the slower path it replaced (RFC 6749 section 6,
RFC 9700 section 4.14.2, SPEC sections 3 and 8)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from sqlalchemy import select

from authserver import clock
from authserver.accounts import sessions
from authserver.accounts.models import Licence
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.oauth import services as oauth
from authserver.tokens import liveness
from authserver.tokens import services as tokens
from authserver.tokens.models import RefreshToken


def issue(bs, client, raw="r1", expires_at=None) -> None:
    tokens.store_refresh_token(raw, client_id=client.client_id, user_id=bs.user_id,
                               scope="openid profile", session_id=bs.id, auth_time=7,
                               amr=["pwd"], family_id=None,
                               family_expires_at=expires_at or bs.expires_at)
    db.session.commit()


def row(raw: str) -> RefreshToken | None:
    db.session.expire_all()
    return db.session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == tokens.hash_refresh_token(raw)))


def reuse_events() -> int:
    return len(db.session.scalars(select(SecurityEvent).where(
        SecurityEvent.name == "refresh_reuse")).all())


def test_an_exchange_rotates_the_token_and_stores_its_successor_in_the_family(bs, rp, alice):
    issue(bs, rp)
    found = tokens.exchange_refresh_token("r1", rp, "r2")
    assert found is not None
    assert (found.user.get_user_id(), found.session_id, found.scope, found.client_id) == \
        (alice.sub, bs.id, "openid profile", rp.client_id)
    old, new = row("r1"), row("r2")
    assert old.rotated_at == clock.now() and old.revoked_at is None
    assert new.rotated_at is None and new.revoked_at is None
    assert (new.family_id, new.family_expires_at, new.session_id, new.auth_time, new.amr) == \
        (old.family_id, old.family_expires_at, bs.id, 7, ["pwd"])
    assert tokens.exchange_refresh_token("r2", rp, "r3") is not None


def test_a_rotated_token_presented_again_is_reuse_and_kills_the_family(bs, rp):
    issue(bs, rp)
    assert tokens.exchange_refresh_token("r1", rp, "r2") is not None
    assert tokens.exchange_refresh_token("r1", rp, "r3") is None
    assert row("r2").revoked_at is not None and row("r3") is None
    assert reuse_events() == 1


def test_a_token_of_another_client_is_refused_and_left_alone(bs, rp):
    other = oauth.create_client("Other", ["http://127.0.0.1/cb"])[0]
    issue(bs, rp)
    assert tokens.exchange_refresh_token("r1", other, "r2") is None
    assert row("r1").rotated_at is None and row("r2") is None and reuse_events() == 0


def disable(frozen, alice, bs, rp):
    alice.state = "disabled"


def end_session(frozen, alice, bs, rp):
    sessions.end_sessions(reason="logout", session_ids=[bs.id])


def require_licence(frozen, alice, bs, rp):
    rp.requires_licence = True


def outlive_the_family(frozen, alice, bs, rp):
    frozen.tick(timedelta(days=31))


@pytest.mark.parametrize("refuse", [disable, end_session, require_licence, outlive_the_family])
def test_a_refused_exchange_spends_nothing_and_agrees_with_liveness(refuse, frozen, alice, bs,
                                                                    rp):
    """The statement rotates first; the liveness verdict on its row rolls it back, exactly
    where tokens.liveness refuses the token (and a refusal is never counted as reuse)."""
    issue(bs, rp)
    refuse(frozen, alice, bs, rp)
    db.session.commit()
    assert not liveness.refresh_token_liveness(row("r1"), rp)
    assert tokens.exchange_refresh_token("r1", rp, "r2") is None
    old = row("r1")
    assert old.rotated_at is None and row("r2") is None and reuse_events() == 0
    assert tokens.exchange_refresh_token("r1", rp, "r2") is None  # still refused, not reuse
    assert reuse_events() == 0


def test_a_licence_held_lets_the_exchange_through(alice, bs, rp):
    rp.requires_licence = True
    db.session.add(Licence(user_id=alice.id, client_id=rp.id, granted_at=clock.now()))
    db.session.commit()
    issue(bs, rp)
    assert tokens.exchange_refresh_token("r1", rp, "r2") is not None


def test_a_check_that_refuses_rolls_the_rotation_back(bs, rp):
    issue(bs, rp)

    def wider_scope(found):
        raise InvalidScopeError()

    with pytest.raises(InvalidScopeError):
        tokens.exchange_refresh_token("r1", rp, "r2", accept=wider_scope)
    assert row("r1").rotated_at is None and row("r2") is None
    assert tokens.exchange_refresh_token("r1", rp, "r2") is not None


@pytest.fixture
def grace(settings):
    settings["REFRESH_REUSE_GRACE"] = 5


def test_inside_the_grace_a_retry_gets_another_successor(grace, frozen, bs, rp):
    issue(bs, rp)
    assert tokens.exchange_refresh_token("r1", rp, "r2") is not None
    frozen.tick(timedelta(seconds=4))
    again = tokens.exchange_refresh_token("r1", rp, "r3")
    assert again is not None and again.user.sub
    assert row("r3").family_id == row("r2").family_id and reuse_events() == 0
    frozen.tick(timedelta(seconds=2))
    assert tokens.exchange_refresh_token("r1", rp, "r4") is None
    assert reuse_events() == 1


@pytest.mark.parametrize("raw", ["", "x" * 513, None])
def test_empty_or_oversized_tokens_are_refused(bs, rp, raw):
    assert tokens.exchange_refresh_token(raw, rp, "r2") is None
