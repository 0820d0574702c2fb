"""The rules the race tests rely on, pinned without threads: any database, any clock order."""
from __future__ import annotations

from datetime import timedelta

import pytest

from authserver import clock
from authserver.extensions import db
from authserver.tokens import services as tokens
from support import make_client, make_user


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
        assert tokens.claim_refresh_token("raw-token", refresh_token) is not None
        db.session.commit()
    frozen.tick(timedelta(milliseconds=-5))  # ...than the loser's clock reading
    with app.app_context():
        assert tokens.claim_refresh_token("raw-token", refresh_token) is None
        row = tokens.find_refresh_token("raw-token")
        assert row.revoked_at is not None  # reuse: the family is revoked
