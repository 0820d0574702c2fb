"""`authserver purge`: deletes what expired, in batches; run again, it finds nothing to do."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select, update

from authserver import clock
from authserver.accounts.models import BrowserSession
from authserver.extensions import db
from authserver.mail.models import OutboxMessage
from authserver.tokens import services as tokens
from authserver.tokens.models import RefreshToken
from support import PASSWORD, make_client, make_user


def purge_counts(runner) -> dict[str, int]:
    result = runner.invoke(args=["purge", "--events-days", "30"])
    assert result.exit_code == 0, result.output
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+): (\d+) deleted$", result.output, re.M)}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_purge_deletes_expired_rows_once_and_keeps_live_ones(app, auth, runner, frozen):
    make_user(app)
    client_id, secret = make_client(app)
    auth.login("mallory", "not-" + PASSWORD)  # a throttle row and a security event
    auth.login()
    assert auth.code_flow(client_id, secret).status_code == 200  # session, code, refresh token
    csrf = auth.csrf("/forgot-password")
    auth.client.post("/forgot-password", data={"username": "alice", "csrf_token": csrf})
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(sent_at=clock.now()))
        db.session.commit()

    frozen.tick(timedelta(days=40))  # past the 30-day family and session, the code, the mail
    auth.login()
    assert auth.code_flow(client_id, secret).status_code == 200  # live rows, kept

    first = purge_counts(runner)
    assert all(first[name] > 0 for name in (
        "refresh_tokens+revoked_jtis", "authorization_codes", "reset_codes", "code_sends",
        "browser_sessions", "login_throttles", "sent_mail", "security_events")), first
    assert set(purge_counts(runner).values()) == {0}
    with app.app_context():
        assert count(RefreshToken) == 1 and count(BrowserSession) == 1


def test_purge_expired_refresh_tokens_works_through_small_batches(app, frozen):
    user_id = make_user(app)
    client_id, _ = make_client(app)
    with app.app_context():
        for n in range(5):
            tokens.store_refresh_token(f"raw-{n}", client_id=client_id, user_id=user_id,
                                       scope="openid", session_id=None, auth_time=0, amr=[],
                                       family_id=None, family_expires_at=clock.now())
        db.session.commit()
        frozen.tick(timedelta(seconds=1))
        assert tokens.purge_expired(clock.now(), batch=2) == 5
        assert count(RefreshToken) == 0
