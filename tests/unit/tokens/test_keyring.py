"""The keyring: key files, time-based rotation, the public JWKS and the `keys` commands."""
import json
import os
import shutil
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from freezegun import freeze_time
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry

from authserver.commands.keys import keys
from authserver.errors import AuthserverError
from authserver.tokens import keyring as kr

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
T1 = T0 + timedelta(days=30)
CACHE_TTL, TOKEN_TTL, SLACK = 3600, 3600, 300
PRIVATE = {"d", "p", "q", "dp", "dq", "qi"}
ROTATE = {"jwks_cache_ttl": CACHE_TTL, "max_token_ttl": TOKEN_TTL, "slack": SLACK}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """One RS256 + ES256 key pair made at T0, copied by each test (generation is slow)."""
    path = tmp_path_factory.mktemp("keyring") / "keys"
    created = kr.ensure_keys(str(path), T0)
    return str(path), created


@pytest.fixture(scope="module")
def rotated_dir(base_dir, tmp_path_factory):
    """The same keys after `rotate` at T1: state is computed from the time, so a test
    reads "before rotation" at T1 - x and "after" at T1 + x from the same files."""
    path = tmp_path_factory.mktemp("rotated") / "keys"
    shutil.copytree(base_dir[0], path)
    old = _kid(str(path), "RS256", "signing", T1) + _kid(str(path), "ES256", "signing", T1)
    return str(path), old, kr.rotate(str(path), T1, **ROTATE)


@pytest.fixture
def keys_dir(base_dir, tmp_path):
    path = tmp_path / "keys"
    shutil.copytree(base_dir[0], path)  # copy2 keeps the 0600 modes
    return str(path)


@pytest.fixture
def rotated(rotated_dir, tmp_path):
    """(keys_dir, old RS256 and ES256 kids, new RS256 and ES256 kids) after a rotation at T1."""
    path = tmp_path / "keys"
    shutil.copytree(rotated_dir[0], path)
    return (str(path),) + rotated_dir[1:]


def _kid(keys_dir, alg, status, now):
    entries = kr.Keyring.load(keys_dir).entries(now)
    return [e["kid"] for e in entries if e["alg"] == alg and e["status"] == status]


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ensure_keys_creates_an_rs256_and_an_es256_key_in_0600_files(base_dir):
    path, created = base_dir
    manifest = json.loads(Path(path, "keys.json").read_text())
    assert created is True
    assert sorted(item["alg"] for item in manifest) == ["ES256", "RS256"]
    assert _mode(path) == 0o700
    for item in manifest:
        assert item["kid"].startswith(f"2030-01-01-{item['alg'].lower()}-")
        assert item["activates_at"] == "2030-01-01T12:00:00Z"
        assert item["retires_at"] is None
        pem = os.path.join(path, f"{item['kid']}.pem")
        assert _mode(pem) == 0o600
        assert b"BEGIN PRIVATE KEY" in Path(pem).read_bytes()  # PKCS#8


def test_ensure_keys_is_idempotent(keys_dir):
    manifest = Path(keys_dir, "keys.json")
    before = sorted(os.listdir(keys_dir)), manifest.read_text()
    assert kr.ensure_keys(keys_dir, T1) is False
    assert (sorted(os.listdir(keys_dir)), manifest.read_text()) == before


def test_ensure_keys_racing_creates_one_set(tmp_path):
    """Two starts at once: the flock lets one create the keys, the other sees them."""
    path, results = str(tmp_path / "keys"), []
    threads = [threading.Thread(target=lambda: results.append(kr.ensure_keys(path, T0)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert len(kr.read_manifest(path)) == 2
    assert len([name for name in os.listdir(path) if name.endswith(".pem")]) == 2


def test_load_refuses_a_group_readable_key_file(keys_dir):
    pem = os.path.join(keys_dir, kr.read_manifest(keys_dir)[0].kid + ".pem")
    os.chmod(pem, 0o644)
    with pytest.raises(kr.KeyFileTooOpen) as info:
        kr.Keyring.load(keys_dir)
    assert isinstance(info.value, AuthserverError)
    assert "chmod 600" in info.value.message


def test_load_refuses_a_1024_bit_rsa_key(tmp_path):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(tmp_path / "weak-rs256.pem", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    entry = kr.KeyEntry("weak-rs256", "RS256", T0, T0)
    (tmp_path / "keys.json").write_text(json.dumps([entry.to_json()]))
    with pytest.raises(kr.KeyTooWeak):
        kr.Keyring.load(str(tmp_path))


def test_public_jwks_has_public_members_only_and_a_kid_on_every_key(rotated):
    keyring = kr.Keyring.load(rotated[0])
    jwks = keyring.public_jwks(T1)
    assert len(jwks["keys"]) == 4
    for jwk in jwks["keys"]:
        assert not PRIVATE & set(jwk), jwk
        assert jwk["kid"] and jwk["use"] == "sig" and jwk["alg"] in ("RS256", "ES256")
        assert jwk["kty"] == ("RSA" if jwk["alg"] == "RS256" else "EC")
    assert PRIVATE & set(keyring.signing_key("RS256", T1).as_dict(private=True))


def test_public_jwks_is_computed_once_per_key_state(keys_dir):
    keyring = kr.Keyring.load(keys_dir)
    first = keyring.public_jwks(T1)
    assert keyring.public_jwks(T1 + timedelta(days=9)) is first


def test_rotate_publishes_at_once_signs_after_the_jwks_cache_ttl_then_retires_the_old(rotated):
    keys_dir, (old_rs, old_es), (new_rs, new_es) = rotated
    activates = T1 + timedelta(seconds=CACHE_TTL)
    retires = activates + timedelta(seconds=TOKEN_TTL + SLACK)
    keyring = kr.Keyring.load(keys_dir)

    def published():
        return {jwk["kid"] for jwk in keyring.public_jwks(kr.clock.now())["keys"]}

    with freeze_time(T1) as frozen:
        assert published() == {old_rs, old_es, new_rs, new_es}
        assert keyring.signing_key("RS256", kr.clock.now()).kid == old_rs
        assert keyring.signing_key("ES256", kr.clock.now()).kid == old_es
        frozen.move_to(activates - timedelta(seconds=1))
        assert keyring.signing_key("RS256", kr.clock.now()).kid == old_rs
        frozen.move_to(activates)
        assert keyring.signing_key("RS256", kr.clock.now()).kid == new_rs
        assert keyring.signing_key("ES256", kr.clock.now()).kid == new_es
        frozen.move_to(retires - timedelta(seconds=1))
        assert published() == {old_rs, old_es, new_rs, new_es}
        frozen.move_to(retires)
        assert published() == {new_rs, new_es}


def test_entries_report_next_signing_published_and_retired(rotated):
    keys_dir, (old, _), (new, _) = rotated
    keyring = kr.Keyring.load(keys_dir)

    def statuses(now):
        return {e["kid"]: e["status"] for e in keyring.entries(now) if e["alg"] == "RS256"}

    assert statuses(T1) == {old: "signing", new: "next"}
    assert statuses(T1 + timedelta(seconds=CACHE_TTL)) == {old: "published", new: "signing"}
    assert statuses(T1 + timedelta(days=1)) == {old: "retired", new: "signing"}


def test_a_token_signed_by_the_old_key_verifies_until_it_expires(rotated):
    """Worst case: signed in the last second before the new key takes over."""
    keyring = kr.Keyring.load(rotated[0])
    with freeze_time(T1 + timedelta(seconds=CACHE_TTL - 1)) as frozen:
        key = keyring.signing_key("RS256", kr.clock.now())
        token = jwt.encode({"alg": "RS256", "kid": key.kid},
                           {"sub": "u1", "exp": kr.clock.timestamp() + TOKEN_TTL}, key)
        frozen.tick(timedelta(seconds=TOKEN_TTL - 1))
        assert keyring.signing_key("RS256", kr.clock.now()).kid != key.kid
        decoded = jwt.decode(token, keyring.verification_keyset(kr.clock.now()), ["RS256"])
        JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)
        assert decoded.claims["sub"] == "u1"


def test_a_token_signed_before_rotation_verifies_until_it_expires(rotated):
    keyring = kr.Keyring.load(rotated[0])
    with freeze_time(T1 - timedelta(minutes=5)) as frozen:
        key = keyring.signing_key("ES256", kr.clock.now())
        token = jwt.encode({"alg": "ES256", "kid": key.kid},
                           {"exp": kr.clock.timestamp() + TOKEN_TTL}, key)
        frozen.tick(timedelta(seconds=TOKEN_TTL - 1))
        decoded = jwt.decode(token, keyring.verification_keyset(kr.clock.now()), ["ES256"])
        JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)


def test_a_second_rotation_retires_the_pending_key_and_keeps_earlier_retirements(rotated):
    keys_dir, (old, _), (first, _) = rotated
    second = kr.rotate(keys_dir, T1 + timedelta(seconds=10), **ROTATE)[0]
    retires = {e.kid: e.retires_at for e in kr.read_manifest(keys_dir)}
    assert retires[old] == T1 + timedelta(seconds=CACHE_TTL + TOKEN_TTL + SLACK)
    assert retires[first] == T1 + timedelta(seconds=10 + CACHE_TTL + TOKEN_TTL + SLACK)
    assert retires[second] is None
    assert oct(_mode(os.path.join(keys_dir, f"{second}.pem"))) == oct(0o600)


def test_signing_key_without_a_usable_key_raises(tmp_path):
    with pytest.raises(kr.SigningKeyMissing):
        kr.Keyring.load(str(tmp_path)).signing_key("RS256", T0)


@pytest.fixture
def app(keys_dir):
    app = Flask(__name__)
    app.config.update(TESTING=True, KEYS_DIR=keys_dir, JWKS_CACHE_TTL=CACHE_TTL,
                      ACCESS_TOKEN_TTL=TOKEN_TTL, ID_TOKEN_TTL=1800, KEY_RETIRE_SLACK=SLACK)
    kr.init_app(app)
    app.cli.add_command(keys)
    return app


def test_current_keyring_reloads_after_the_manifest_changes(app, keys_dir):
    with freeze_time(T1) as frozen, app.app_context():
        before = kr.current_keyring()
        assert kr.current_keyring() is before  # cached
        new = kr.rotate(keys_dir, kr.clock.now(), **ROTATE)
        assert kr.current_keyring() is before  # stat() at most once a second
        frozen.tick(timedelta(seconds=2))
        after = kr.current_keyring()
        assert after is not before
        assert set(new) <= {jwk["kid"] for jwk in after.public_jwks(kr.clock.now())["keys"]}
        frozen.tick(timedelta(seconds=2))
        assert kr.current_keyring() is after  # unchanged manifest: no reload


def test_keys_list_shows_kid_alg_and_status(app, keys_dir):
    with freeze_time(T1):
        result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["KID", "ALG", "STATUS", "ACTIVATES_AT", "RETIRES_AT"]
    assert len(lines) == 3
    assert all(line.split()[2:] == ["signing", "2030-01-01T12:00:00Z", "-"] for line in lines[1:])


def test_keys_rotate_prints_new_kids_and_when_the_old_ones_retire(app, keys_dir):
    runner = app.test_cli_runner()
    with freeze_time(T1):
        result = runner.invoke(args=["keys", "rotate"])
        listing = runner.invoke(args=["keys", "list"]).output
    assert result.exit_code == 0, result.output
    new = [e.kid for e in kr.read_manifest(keys_dir) if e.retires_at is None]
    assert len(new) == 2 and all(kid in result.output for kid in new)
    assert "signs from 2030-01-31T13:00:00Z" in result.output
    # retires after the longer token lifetime (ACCESS_TOKEN_TTL here) plus the slack
    assert result.output.count("retires at 2030-01-31T14:05:00Z") == 2
    assert "PRIVATE" not in result.output + listing
    assert [line.split()[2] for line in listing.splitlines()[1:]].count("next") == 2
    with app.app_context():
        assert set(new) <= {j["kid"] for j in kr.current_keyring().public_jwks(T1)["keys"]}
