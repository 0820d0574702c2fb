"""oauth.services: authorization codes are single use, short lived, bound to their client,
and a replay revokes what the first use issued (RFC 6749 section 4.1.2)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from authserver import security
from authserver.accounts import services as accounts
from authserver.accounts.models import User
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.oauth import services
from authserver.oauth.models import AuthorizationCode
from authserver.tokens import services as tokens
from support import make_user

URI = "https://app.example/callback"



@pytest.fixture
def world(frozen, app, ctx):
    user = db.session.get(User, make_user(app))
    _, bs = accounts.start_session(user, ["pwd", "otp"])
    client, _ = services.create_client("App", [URI])
    other, _ = services.create_client("Other", [URI])
    return user, bs, client, other


def save(world, code="the-code", nonce="n-1"):
    """Save a code and read back the row the database holds for it."""
    user, bs, client, _ = world
    services.save_authorization_code(
        code, client=client, user=user, session=bs, redirect_uri=URI, scope="openid",
        nonce=nonce, challenge="c" * 43, method="S256")
    return db.session.scalar(select(AuthorizationCode).where(
        AuthorizationCode.code_hash == security.keyed_hash(code, "authz_code")))


def test_code_is_stored_as_a_keyed_hash_with_its_bindings(world):
    row = save(world)
    assert row.code_hash == security.keyed_hash("the-code", "authz_code")
    assert "the-code" not in row.code_hash
    assert row.client_id == world[2].client_id
    assert row.redirect_uri == URI
    assert row.amr == ["pwd", "otp"]
    assert row.auth_time == int(world[1].auth_time.timestamp())
    assert row.expires_at - row.created_at == timedelta(seconds=60)


def test_code_is_claimed_once(world):
    save(world)
    assert services.claim_authorization_code("the-code", world[2]) is not None
    db.session.commit()
    assert services.claim_authorization_code("the-code", world[2]) is None


def test_replay_revokes_the_family_the_first_use_started(world):
    user, bs, client, _ = world
    save(world)
    row = services.claim_authorization_code("the-code", client)
    row.family_id = tokens.store_refresh_token(
        "refresh-1", client_id=client.client_id, user_id=user.id, scope="openid",
        session_id=bs.id, auth_time=row.auth_time, amr=row.amr, family_id=None,
        family_expires_at=bs.expires_at)
    db.session.commit()

    assert services.claim_authorization_code("the-code", client) is None
    db.session.expire_all()
    assert tokens.find_refresh_token("refresh-1").revoked_at is not None
    names = db.session.scalars(select(SecurityEvent.name)).all()
    assert "code_replay" in names


def test_code_of_another_client_is_not_claimed_nor_spent(world):
    save(world)
    assert services.claim_authorization_code("the-code", world[3]) is None
    assert services.claim_authorization_code("the-code", world[2]) is not None


def test_code_expires_after_sixty_seconds(frozen, world):
    save(world)
    frozen.tick(timedelta(seconds=60))
    assert services.claim_authorization_code("the-code", world[2]) is None


@pytest.fixture
def short_codes(settings):
    settings["AUTHORIZATION_CODE_TTL"] = 30


def test_code_lifetime_follows_the_setting(short_codes, frozen, world):
    save(world)
    frozen.tick(timedelta(seconds=31))
    assert services.claim_authorization_code("the-code", world[2]) is None


@pytest.mark.parametrize("code", ["", None, "x" * 257, "unknown"])
def test_odd_codes_are_refused(world, code):
    save(world)
    assert services.claim_authorization_code(code, world[2]) is None


def test_nonce_is_remembered_per_client(world):
    save(world, nonce="n-42")
    assert services.nonce_used(world[2].client_id, "n-42")
    assert not services.nonce_used(world[3].client_id, "n-42")
    assert not services.nonce_used(world[2].client_id, "n-43")
