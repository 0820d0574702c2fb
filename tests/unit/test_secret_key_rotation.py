"""Changing AUTHSERVER_SECRET_KEY: `secret-key reseal` re-seals every sealed column under the
new key (the old one listed in AUTHSERVER_SECRET_KEY_FALLBACKS), in one transaction and
idempotently; client secrets keep verifying while the old key is a fallback."""
import base64

import pytest
from flask import Flask
from sqlalchemy import select, update

from authserver import create_app, sealing
from authserver.accounts.factors.totp import PURPOSE as TOTP
from authserver.accounts.models import User
from authserver.config import load_config
from authserver.extensions import db
from authserver.tokens import keystore
from authserver.tokens.models import SigningKey
from support import TEST_SECRET, make_client, make_user

NEW = "the-new-secret-key-0123456789abcdef"


def node(settings, **extra):
    return create_app({**settings, **extra})


def jwks(app) -> dict:
    return app.test_client().get("/.well-known/jwks.json").get_json()


def sealed_values(app) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(select(SigningKey.kid, SigningKey.private_key)).all())


def reseal(app):
    result = app.test_cli_runner().invoke(args=["secret-key", "reseal"])
    assert result.exit_code == 0, result.output
    return result.output


def test_reseal_moves_every_sealed_column_to_the_new_secret_key(app, settings):
    """The signing keys, and the authenticator secret another module registered."""
    user_id = make_user(app, "totp-user")
    with app.app_context():
        db.session.execute(update(User).where(User.id == user_id).values(
            totp_secret=sealing.seal(app.config, b"JBSWY3DPEHPK3PXP", TOTP)))
        db.session.commit()
    before, published = sealed_values(app), jwks(app)
    rotated = node(settings, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[TEST_SECRET])
    assert jwks(rotated) == published  # the fallback opens the old seals meanwhile
    output = reseal(rotated)
    assert "signing_keys.private_key: 2 re-sealed" in output
    assert "users.totp_secret: 1 re-sealed" in output
    with app.app_context():
        sealed = db.session.scalar(select(User.totp_secret).where(User.id == user_id))
    assert sealing.unseal({"SECRET_KEY": NEW}, sealed, TOTP) == b"JBSWY3DPEHPK3PXP"
    after = sealed_values(app)
    assert after.keys() == before.keys()
    for kid, value in after.items():
        assert value != before[kid]
        assert sealing.unseal({"SECRET_KEY": NEW}, value, keystore.PURPOSE) == sealing.unseal(
            {"SECRET_KEY": TEST_SECRET}, before[kid], keystore.PURPOSE)
    assert "signing_keys.private_key: 0 re-sealed" in reseal(rotated)  # idempotent
    assert sealed_values(app) == after
    assert jwks(node(settings, SECRET_KEY=NEW)) == published  # no fallback needed any more
    with pytest.raises(sealing.SealBroken):
        node(settings)  # the old key alone opens nothing now


def test_a_value_no_configured_key_opens_stops_the_reseal_and_changes_nothing(app, settings):
    other = "a-third-secret-key-nobody-lists-here"
    kid = next(iter(sealed_values(app)))
    with app.app_context():
        value = sealing.unseal(app.config, sealed_values(app)[kid], keystore.PURPOSE)
        db.session.execute(update(SigningKey).where(SigningKey.kid == kid).values(
            private_key=sealing.seal({"SECRET_KEY": other}, value, keystore.PURPOSE)))
        db.session.commit()
    before = sealed_values(app)
    config = {"SECRET_KEY": NEW, "SECRET_KEY_FALLBACKS": [TEST_SECRET]}
    with app.app_context():
        with pytest.raises(sealing.SealBroken) as info:
            sealing.reseal_all(db.session, db.metadata.tables, config)
        db.session.rollback()
    assert "signing_keys.private_key" in info.value.message and kid in info.value.message
    assert sealed_values(app) == before


def introspect_as(app, client_id, secret):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return app.test_client().post("/introspect", data={"token": "not-a-token"},
                                  headers={"Authorization": f"Basic {basic}"})


def test_client_secrets_verify_while_the_old_key_is_a_fallback_and_not_after(app, settings):
    client_id, secret = make_client(app)
    assert introspect_as(app, client_id, secret).status_code == 200
    rotated = node(settings, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[TEST_SECRET])
    assert introspect_as(rotated, client_id, secret).status_code == 200
    assert introspect_as(rotated, client_id, secret + "x").status_code == 401
    reseal(rotated)
    dropped = node(settings, SECRET_KEY=NEW)
    assert introspect_as(dropped, client_id, secret).status_code == 401  # keyed hash: re-issue


@pytest.mark.parametrize("value, expected", [
    ('["old-secret-key-0123456789", "older-secret-key-0123456789"]',
     ["old-secret-key-0123456789", "older-secret-key-0123456789"]),
    ("old-secret-key-0123456789", ["old-secret-key-0123456789"]),
    ("old-secret-key-0123456789,older-secret-key-0123456789",
     ["old-secret-key-0123456789", "older-secret-key-0123456789"]),
    ("12345678901234567890", ["12345678901234567890"]),
    ("", []),
])
def test_the_fallbacks_setting_from_the_environment_is_a_list_of_keys(value, expected,
                                                                      monkeypatch, tmp_path):
    monkeypatch.setenv("AUTHSERVER_SECRET_KEY", NEW)
    monkeypatch.setenv("AUTHSERVER_SECRET_KEY_FALLBACKS", value)
    app = Flask(__name__, instance_path=str(tmp_path))
    load_config(app, None)
    assert app.config["SECRET_KEY_FALLBACKS"] == expected


def test_session_cookies_signed_under_the_old_key_still_open_with_the_fallback(app, settings):
    client = app.test_client()
    with client.session_transaction() as session:
        session["probe"] = "kept"
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    rotated = node(settings, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[TEST_SECRET])
    other = rotated.test_client()
    other.set_cookie(rotated.config["SESSION_COOKIE_NAME"], cookie)
    with other.session_transaction() as session:
        assert session.get("probe") == "kept"
