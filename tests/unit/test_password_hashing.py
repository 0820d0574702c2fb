"""The hashing cost is a setting: new hashes, the dummy hash for unknown names and the
upgrade of old hashes at sign-in all follow it."""
import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import VerifyMismatchError

from authserver import create_app, security
from authserver.accounts.services import find_by_login
from authserver.config import Defaults
from authserver.extensions import db
from support import PASSWORD, AuthActions, make_user


# OWASP's Password Storage Cheat Sheet: argon2id settings of equal strength, all p=1.
OWASP_EQUIVALENTS = {(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)}


def test_the_default_is_one_of_owasps_equivalent_argon2id_settings():
    """m=7168, t=5 (Keycloak's): the cheapest of them in CPU here (docs/capacity.md)."""
    assert (Defaults.PASSWORD_HASH_MEMORY_COST, Defaults.PASSWORD_HASH_TIME_COST,
            Defaults.PASSWORD_HASH_PARALLELISM) == (7168, 5, 1)
    assert (Defaults.PASSWORD_HASH_MEMORY_COST, Defaults.PASSWORD_HASH_TIME_COST) \
        in OWASP_EQUIVALENTS


def test_a_server_at_the_default_cost_hashes_at_it_and_upgrades_the_old_default(app, settings):
    """A hash made at the earlier default (m=19456, t=2) is re-made at m=7168, t=5."""
    settings.update({"PASSWORD_HASH_MEMORY_COST": 19456, "PASSWORD_HASH_TIME_COST": 2})
    old = create_app(settings)
    make_user(old, "alice")
    for name in ("MEMORY_COST", "TIME_COST", "PARALLELISM"):
        settings[f"PASSWORD_HASH_{name}"] = getattr(Defaults, f"PASSWORD_HASH_{name}")
    current = create_app(settings)
    with current.app_context():
        assert "$m=19456,t=2,p=1$" in find_by_login("alice").password_hash
        assert "$m=7168,t=5,p=1$" in security._dummy_hash(security._current_hasher())
        db.session.remove()
    assert AuthActions(current.test_client()).login("alice", PASSWORD).status_code == 303
    with current.app_context():
        assert "$m=7168,t=5,p=1$" in find_by_login("alice").password_hash
        db.session.remove()


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


def test_libsodium_and_argon2_cffi_read_each_others_hashes():
    """security.Argon2id hashes with libsodium at p=1: argon2-cffi (an earlier version of
    Authserver, another tool) verifies what it writes, and it verifies what they wrote."""
    ours = security.Argon2id(time_cost=2, memory_cost=2048, parallelism=1)
    theirs = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1, type=Type.ID)
    made_by_us, made_by_them = ours.hash("correct horse"), theirs.hash("correct horse")
    assert made_by_us.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    assert made_by_us != ours.hash("correct horse")  # a fresh salt each time
    for stored in (made_by_us, made_by_them):
        assert ours.verify(stored, "correct horse") and theirs.verify(stored, "correct horse")
        for hasher in (ours, theirs):
            with pytest.raises(VerifyMismatchError):
                hasher.verify(stored, "correct horsE")
        assert not ours.check_needs_rehash(stored)


def test_more_than_one_lane_and_old_hashes_still_work():
    """libsodium writes one lane only: a setting of p=4 hashes with argon2-cffi; a p=4 hash
    (the first releases' default) verifies and is due for an upgrade at p=1."""
    wide = security.Argon2id(time_cost=1, memory_cost=4096, parallelism=4)
    stored = wide.hash("pw")
    assert "$m=4096,t=1,p=4$" in stored and wide.verify(stored, "pw")
    narrow = security.Argon2id(time_cost=1, memory_cost=4096, parallelism=1)
    assert narrow.verify(stored, "pw") and narrow.check_needs_rehash(stored)
    with pytest.raises(VerifyMismatchError):
        narrow.verify(stored, "not pw")


@pytest.mark.parametrize("stored", ["", "$argon2id$", "$argon2id$v=19$m=7168,t=5,p=1$AAAA$BBBB",
                                    "$argon2i$v=19$m=7168,t=5,p=1$c2FsdHNhbHQ$aGFzaA",
                                    "$argon2id$" + "x" * 500, "$argon2id$v=19$m=7168,t=5,p=1$é$é",
                                    "pbkdf2_sha256$1$salt$hash"])
def test_a_damaged_stored_hash_is_a_failed_check_not_an_error(app, stored):
    with app.app_context():
        assert security.verify_password(stored, "pw") is False
