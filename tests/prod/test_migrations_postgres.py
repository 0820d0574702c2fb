"""Upgrading a PostgreSQL database that holds data written by the previous release."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from authserver import create_app
from authserver.extensions import db
from prodkit import pg_server_url, postgres_only, scratch_database
from support import base_settings

pytestmark = postgres_only

# Raw SQL, not the ORM: the models describe the newest schema, not this old one.
USER_ROW = text(
    "INSERT INTO users (sub, username, username_key, email, email_key, name, name_key, state,"
    " roles, recovery_codes, created_at) VALUES ('sub-1', 'alice', 'alice', 'a@example.com',"
    " 'a@example.com', 'Alice', 'alice', 'active', '', '[]', now()) RETURNING id")
CODE_ROW = text(
    "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce,"
    " auth_time, amr, expires_at, created_at) VALUES (:h, 'app', :u, '', 'openid', :nonce, 0,"
    " '[]', :t, :t)")


@pytest.fixture
def old_database(tmp_path, keys_dir):
    """A fresh database at the first release's schema, and an app on it."""
    with scratch_database(pg_server_url(), prefix="authserver_mig") as url:
        app = create_app(base_settings(str(tmp_path), keys_dir, url))
        with app.app_context():
            upgrade(revision="e20221698d9a")
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_the_nonce_index_migration_copes_with_nonces_too_long_to_index(old_database):
    """Nonces were unbounded before: a random 4,000-character one does not fit a btree entry."""
    with old_database.app_context():
        now = datetime(2030, 1, 1)
        user_id = db.session.execute(USER_ROW).scalar()
        long_nonce = secrets.token_urlsafe(3000)  # random: PostgreSQL cannot compress it
        db.session.execute(CODE_ROW, {"h": "a" * 64, "u": user_id, "nonce": long_nonce, "t": now})
        db.session.execute(CODE_ROW, {"h": "b" * 64, "u": user_id, "nonce": "n" * 512,
                                      "t": now + timedelta(seconds=1)})
        db.session.commit()

        upgrade()

        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("authorization_codes")}
        assert "ix_authorization_codes_nonce" in indexes
        kept = db.session.execute(text("SELECT code_hash FROM authorization_codes")).scalars()
        assert sorted(kept) == ["a" * 64, "b" * 64], "nothing is lost on the way"
