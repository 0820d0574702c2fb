"""The sign-in migration seals authenticator secrets stored in clear and moves recovery codes
to their own table, where they keep working."""
import json

import pyotp
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text
from support import base_settings

from authserver import create_app, sealing, security
from authserver.accounts.factors import recovery, totp
from authserver.accounts.models import User
from authserver.extensions import db


def test_clear_secrets_are_sealed_and_recovery_codes_move(tmp_path, keys_dir):
    url = f"sqlite:///{tmp_path}/old.db"
    app = create_app(base_settings(str(tmp_path), keys_dir, url))
    secret = pyotp.random_base32()
    with app.app_context():
        upgrade(revision="3f6b2c8d9a10")
        digest = security.keyed_hash("1234567890", "recovery")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (sub, username, username_key, email, email_key, name, "
                "name_key, state, roles, totp_secret, recovery_codes, created_at) VALUES "
                "('s', 'old', 'old', 'old@example.com', 'old@example.com', 'Old', 'old', "
                "'active', '', :secret, :codes, '2026-01-01 00:00:00')"),
                {"secret": secret, "codes": json.dumps([digest])})
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO browser_sessions (sid_hash, user_id, auth_time, amr, "
                              "expires_at, created_at, user_agent) VALUES ('h', 1, "
                              "'2026-01-01 00:00:00', '[]', '2099-01-01 00:00:00', "
                              "'2026-01-01 00:00:00', '')"))
        upgrade()
        with db.engine.connect() as conn:  # nothing that hangs off users was cascaded away
            assert conn.execute(text("SELECT count(*) FROM browser_sessions")).scalar() == 1
        user = db.session.scalar(db.select(User))
        assert user.totp_secret.startswith(sealing.PREFIX) and secret not in user.totp_secret
        assert totp.secret_of(user) == secret
        assert recovery.remaining(user) == 1 and recovery.spend(user, "1234567890")
        db.session.rollback()
        db.session.remove()
        downgrade(revision="3f6b2c8d9a10")
    create_engine(url).dispose()
