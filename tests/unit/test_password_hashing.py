"""The hashing cost is a setting: new hashes, the dummy hash for unknown names and the
upgrade of old hashes at sign-in all follow it."""
from authserver import create_app, security
from authserver.accounts.services import find_by_login
from authserver.config import Defaults
from authserver.extensions import db
from support import PASSWORD, AuthActions, make_user


def test_the_default_is_owasps_argon2id_minimum():
    assert (Defaults.PASSWORD_HASH_MEMORY_COST, Defaults.PASSWORD_HASH_TIME_COST,
            Defaults.PASSWORD_HASH_PARALLELISM) == (19456, 2, 1)


def test_a_hash_made_at_an_old_cost_is_upgraded_at_the_next_sign_in(app, settings):
    make_user(app, "alice")  # at the suite's cost: m=1024, t=1
    with app.app_context():
        assert "$m=1024,t=1,p=1$" in find_by_login("alice").password_hash
    settings.update({"PASSWORD_HASH_MEMORY_COST": 2048, "PASSWORD_HASH_TIME_COST": 2})
    upgraded = create_app(settings)
    assert AuthActions(upgraded.test_client()).login("alice", PASSWORD).status_code == 303
    with upgraded.app_context():
        assert "$m=2048,t=2,p=1$" in find_by_login("alice").password_hash
        db.session.remove()


def test_the_dummy_hash_for_unknown_names_is_made_at_the_current_cost(app, settings):
    settings.update({"PASSWORD_HASH_MEMORY_COST": 2048, "PASSWORD_HASH_TIME_COST": 2})
    other = create_app(settings)
    with other.app_context():
        assert not security.verify_password(None, "anything")
        assert "$m=2048,t=2,p=1$" in security._dummy_hash(security._current_hasher())
    with app.app_context():
        assert "$m=1024,t=1,p=1$" in security._dummy_hash(security._current_hasher())
