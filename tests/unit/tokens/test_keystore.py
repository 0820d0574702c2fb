"""The issuer's key set in the database: every node adopts one set, private keys are sealed,
a rotation anywhere reaches every node within KEYS_RELOAD_INTERVAL, stray local keys never
sign, and the `keys list|rotate` commands act on the shared set."""
import base64
import os
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import delete, select, text

from authserver import create_app, sealing
from authserver.extensions import db
from authserver.tokens import keyfiles, keyset, keystore
from authserver.tokens import keyring as kr
from authserver.tokens.models import KeySetState, SigningKey
from support import FROZEN_AT

PRIVATE = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture
def own_keys(settings, keys_dir, tmp_path):
    """A private copy of the session keys: changing the set must not touch other tests'.
    List it before `app`, so the app is built with it."""
    target = tmp_path / "keys"
    shutil.copytree(keys_dir, target, ignore=shutil.ignore_patterns(".lock"))
    target.chmod(0o700)
    settings["KEYS_DIR"] = str(target)
    return target


def node(settings, keys_dir, **extra):
    """Another server of the same issuer: same database and secret, its own keys folder."""
    return create_app({**settings, "KEYS_DIR": str(keys_dir), **extra})


def jwks_kids(app) -> set[str]:
    resp = app.test_client().get("/.well-known/jwks.json")
    assert resp.status_code == 200
    return {key["kid"] for key in resp.get_json()["keys"]}


def signing_kids(app) -> set[str]:
    with app.app_context():
        keyring = kr.current_keyring()
        return {keyring.signing_key(alg, kr.clock.now()).kid for alg in keyset.ALGS}


def db_kids(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(SigningKey.kid)))


def test_first_start_makes_the_keys_folder_the_issuers_set(app, keys_dir):
    """An install from before keys lived in the database keeps its keys."""
    folder = {entry.kid for entry in keyfiles.read_manifest(keys_dir)}
    assert db_kids(app) == folder == jwks_kids(app)


def forget_key_set(app) -> None:
    with app.app_context():
        db.session.execute(delete(SigningKey))
        db.session.execute(delete(KeySetState))
        db.session.commit()


def test_no_keys_anywhere_creates_one_set_in_the_database_and_the_folder(app, settings,
                                                                        tmp_path):
    forget_key_set(app)
    app = node(settings, tmp_path / "fresh")
    kids = db_kids(app)
    assert len(kids) == 2 and jwks_kids(app) == kids
    assert {e.kid for e in keyfiles.read_manifest(str(tmp_path / "fresh"))} == kids


def test_a_second_node_with_an_empty_folder_adopts_the_set(app, settings, tmp_path):
    before = db_kids(app)
    other = node(settings, tmp_path / "second")
    assert jwks_kids(other) == jwks_kids(app) == before == db_kids(other)
    assert {e.kid for e in keyfiles.read_manifest(str(tmp_path / "second"))} == before
    assert signing_kids(other) == signing_kids(app)


def test_private_keys_in_the_table_cannot_be_read_without_the_secret_key(app, keys_dir):
    """What a database dump shows: sealed values, no PEM, no JWK private member."""
    with app.app_context():
        rows = db.session.execute(text("SELECT kid, alg, private_key FROM signing_keys")).all()
    folder = {key.entry.kid: key.pem for key in keyfiles.read_folder(keys_dir)}
    assert len(rows) == 2
    for kid, _alg, sealed in rows:
        assert sealed.startswith("v1.")
        raw = base64.urlsafe_b64decode(sealed[3:])
        for secret in (b"PRIVATE KEY", b"BEGIN", folder[kid][40:80]):
            assert secret not in sealed.encode() and secret not in raw
        assert not any(f'"{member}"' in sealed for member in PRIVATE)
        with pytest.raises(sealing.SealBroken):
            sealing.unseal({"SECRET_KEY": "another-secret-key-0123456789"}, sealed,
                           keystore.PURPOSE)
        assert sealing.unseal(app.config, sealed, keystore.PURPOSE) == folder[kid]


def test_a_node_with_another_secret_key_refuses_to_start_and_says_what_to_do(app, settings,
                                                                            tmp_path):
    with pytest.raises(sealing.SealBroken) as info:
        node(settings, tmp_path / "other", SECRET_KEY="another-secret-key-0123456789abcdef")
    assert "AUTHSERVER_SECRET_KEY" in info.value.message
    assert "secret-key reseal" in info.value.message


def test_racing_first_starts_create_one_set(app, tmp_path):
    forget_key_set(app)
    with app.app_context():
        engine = db.engine
    results, now = [], kr.clock.now()

    def start():
        results.append(keystore.ensure_key_set(engine, app.config, list, now))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["created", "present"]
    assert len(db_kids(app)) == 2


def test_a_node_with_stray_local_keys_adopts_the_set_and_never_signs_with_them(app, settings,
                                                                              tmp_path):
    """The choice is to adopt: the database is the issuer's; the stray PEMs are moved aside."""
    folder = tmp_path / "stray"
    stray = keyset.new_key_set(kr.clock.now())
    keyfiles.write_key_set(str(folder), stray)
    stray_kids = {key.entry.kid for key in stray}
    other = node(settings, folder)
    assert jwks_kids(other) == jwks_kids(app) == db_kids(app)
    assert not stray_kids & jwks_kids(other)
    assert not stray_kids & signing_kids(other)
    assert {e.kid for e in keyfiles.read_manifest(str(folder))} == db_kids(app)
    aside = [p for p in folder.iterdir() if p.name.startswith("stray-")]
    assert len(aside) == 1
    assert {p.stem for p in aside[0].glob("*.pem")} == stray_kids


@pytest.fixture
def reload_10s(settings):
    settings["KEYS_RELOAD_INTERVAL"] = 10


def test_a_rotation_on_one_node_reaches_another_within_the_reload_interval(
        own_keys, reload_10s, app, settings, tmp_path):
    a = app
    with freeze_time(FROZEN_AT) as frozen:
        b = node(settings, tmp_path / "b")
        old = signing_kids(b)
        with b.app_context():
            cached = kr.current_keyring()
        result = a.test_cli_runner().invoke(args=["keys", "rotate"])
        assert result.exit_code == 0, result.output
        new = db_kids(a) - old
        assert len(new) == 2 and new <= jwks_kids(a)
        frozen.tick(timedelta(seconds=9))
        with b.app_context():
            assert kr.current_keyring() is cached  # no database read inside the interval
        frozen.tick(timedelta(seconds=2))
        assert new <= jwks_kids(b) and jwks_kids(b) == jwks_kids(a)
        assert {e.kid for e in keyfiles.read_manifest(str(tmp_path / "b"))} == old | new
        assert signing_kids(a) == signing_kids(b) == old  # published before it signs
        frozen.tick(timedelta(seconds=settings.get("JWKS_CACHE_TTL", 3600)))
        assert signing_kids(a) == signing_kids(b) == new
        with b.app_context():
            entries = kr.current_keyring().entries(kr.clock.now())
        with a.app_context():
            assert kr.current_keyring().entries(kr.clock.now()) == entries


def test_an_unchanged_generation_does_not_reload(app):
    with freeze_time(FROZEN_AT) as frozen, app.app_context():
        before = kr.current_keyring()
        frozen.tick(timedelta(seconds=60))
        assert kr.current_keyring() is before


def test_keys_list_shows_kid_alg_and_status(app):
    with freeze_time(FROZEN_AT):
        result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KID", "ALG", "STATUS", "ACTIVATES_AT", "RETIRES_AT"]
    assert len(lines) == 3
    assert all(line.split()[2:] == ["signing", "2020-01-01T00:00:00Z", "-"] for line in lines[1:])


def test_keys_rotate_prints_new_kids_and_when_the_old_ones_retire(own_keys, app):
    runner = app.test_cli_runner()
    app.config["ID_TOKEN_TTL"] = 1800
    with freeze_time(FROZEN_AT):
        result = runner.invoke(args=["keys", "rotate"])
        listing = runner.invoke(args=["keys", "list"]).output
    assert result.exit_code == 0, result.output
    with app.app_context():
        new = set(db.session.scalars(select(SigningKey.kid).where(SigningKey.retires_at.is_(None))))
    assert len(new) == 2 and all(kid in result.output for kid in new)
    assert "signs from 2030-01-01T13:00:00Z" in result.output
    # retires after the longer token lifetime (ACCESS_TOKEN_TTL here) plus the slack
    assert result.output.count("retires at 2030-01-01T14:05:00Z") == 2
    assert "KEYS_RELOAD_INTERVAL" in result.output
    assert "PRIVATE" not in result.output + listing
    assert [line.split()[2] for line in listing.splitlines()[1:]].count("next") == 2
    assert {p.stem for p in Path(own_keys).glob("*.pem")} == db_kids(app)


def test_keys_rotate_without_a_key_set_fails_with_a_message(app):
    forget_key_set(app)
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 1 and "authserver init" in result.output


def test_the_keys_folder_is_never_more_open_than_0700(app, settings, tmp_path):
    node(settings, tmp_path / "mode")
    assert os.stat(tmp_path / "mode").st_mode & 0o077 == 0
