"""The rules the race tests rely on, pinned without threads: any database, any clock order."""
from __future__ import annotations

from datetime import timedelta

import pytest

from authserver import clock
from authserver.extensions import db
from authserver.tokens import services as tokens
from support import client_for, make_client, make_user, use_refresh_token


@pytest.fixture
def refresh_token(app, frozen):
    user_id = make_user(app)
    client_id, _ = make_client(app)
    with app.app_context():
        tokens.store_refresh_token("raw-token", client_id=client_id, user_id=user_id,
                                   scope="openid", session_id=None, auth_time=0, amr=[],
                                   family_id=None,
                                   family_expires_at=clock.now() + timedelta(days=30))
        db.session.commit()
    return client_id


def test_a_loser_that_read_the_clock_before_the_winner_rotated_is_still_reuse(
        app, frozen, refresh_token):
    """Two requests race: the loser read `now` first, the winner rotated a moment later.
    With REFRESH_REUSE_GRACE 0 the loser must not become a second winner."""
    with app.app_context():
        frozen.tick(timedelta(milliseconds=5))  # the winner's UPDATE happens later...
        assert use_refresh_token("raw-token", refresh_token) is not None
        db.session.commit()
    frozen.tick(timedelta(milliseconds=-5))  # ...than the loser's clock reading
    with app.app_context():
        assert use_refresh_token("raw-token", refresh_token) is None
        row = tokens.find_refresh_token("raw-token")
        assert row.revoked_at is not None  # reuse: the family is revoked


def race(app, frozen, client_id) -> bool:
    """The grant's own interleaving: the loser finds the token usable, the winner (another
    request, its own session) uses it a moment later, then the loser rotates it."""
    with app.app_context():
        loser = tokens.usable_refresh_token("raw-token", client_for(client_id))
        assert loser is not None
        frozen.tick(timedelta(milliseconds=5))
        with app.app_context():
            assert use_refresh_token("raw-token", client_id) is not None
            db.session.commit()
        frozen.tick(timedelta(milliseconds=-5))
        won = tokens.rotate_refresh_token(loser)
        db.session.commit()
        return won


def test_a_loser_that_found_the_token_before_the_winner_rotated_it_is_reuse(
        app, frozen, refresh_token):
    assert race(app, frozen, refresh_token) is False
    with app.app_context():
        assert tokens.find_refresh_token("raw-token").revoked_at is not None


@pytest.fixture
def grace(settings):
    settings["REFRESH_REUSE_GRACE"] = 5


def test_inside_the_grace_a_loser_that_found_the_token_first_still_wins(
        grace, app, frozen, refresh_token):
    assert race(app, frozen, refresh_token) is True
    with app.app_context():
        assert tokens.find_refresh_token("raw-token").revoked_at is None
