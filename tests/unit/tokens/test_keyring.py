"""The keyring's rules without a database: new keys, time-based rotation, the public JWKS,
and the keys folder that holds a copy of the set."""
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry

from authserver.errors import AuthserverError
from authserver.tokens import keyfiles, keyset
from authserver.tokens import keyring as kr

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=30)
CACHE_TTL, TOKEN_TTL, SLACK = 3600, 3600, 300
PRIVATE = {"d", "p", "q", "dp", "dq", "qi"}
ROTATE = {"jwks_cache_ttl": CACHE_TTL, "max_token_ttl": TOKEN_TTL, "slack": SLACK}


@pytest.fixture(scope="module")
def base():
    """One RS256 + ES256 key pair made at T0 (generation is slow: once per module)."""
    return keyset.new_key_set(T0)


@pytest.fixture(scope="module")
def rotated(base):
    """(keys, old RS256 and ES256 kids, new RS256 and ES256 kids) after a rotation at T1:
    state is computed from the time, so a test reads "before" at T1 - x and "after" at
    T1 + x from the same keys."""
    updated, new = keyset.rotation([key.entry for key in base], T1, **ROTATE)
    by_kid = {key.entry.kid: key for key in base}
    keys = [keyset.StoredKey(entry, by_kid[entry.kid].pem) for entry in updated] + new
    return keys, [key.entry.kid for key in base], [key.entry.kid for key in new]


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_key_set_is_an_rs256_and_an_es256_key_that_sign_at_once(base):
    assert sorted(key.entry.alg for key in base) == ["ES256", "RS256"]
    for key in base:
        assert key.entry.kid.startswith(f"2030-01-01-{key.entry.alg.lower()}-")
        assert key.entry.activates_at == T0 and key.entry.retires_at is None
        assert key.pem.startswith(b"-----BEGIN PRIVATE KEY")  # PKCS#8
    keyring = kr.Keyring(base)
    assert {alg: keyring.signing_key(alg, T0).kid for alg in ("RS256", "ES256")} == {
        key.entry.alg: key.entry.kid for key in base}


def test_complete_adds_a_key_only_for_an_alg_without_a_published_one(base):
    assert keyset.complete([key.entry for key in base], T1) == []
    rs_only = [key.entry for key in base if key.entry.alg == "RS256"]
    assert [key.entry.alg for key in keyset.complete(rs_only, T1)] == ["ES256"]


def test_a_1024_bit_rsa_key_is_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    with pytest.raises(keyset.KeyTooWeak) as info:
        kr.Keyring([keyset.StoredKey(keyset.KeyEntry("weak-rs256", "RS256", T0, T0), pem)])
    assert isinstance(info.value, AuthserverError)


def test_a_key_of_the_wrong_type_for_its_alg_is_refused(base):
    es = next(key for key in base if key.entry.alg == "ES256")
    with pytest.raises(keyset.KeyFileInvalid):
        kr.Keyring([keyset.StoredKey(keyset.KeyEntry("x-rs256", "RS256", T0, T0), es.pem)])


def test_public_jwks_has_public_members_only_and_a_kid_on_every_key(rotated):
    keyring = kr.Keyring(rotated[0])
    jwks = keyring.public_jwks(T1)
    assert len(jwks["keys"]) == 4
    for jwk in jwks["keys"]:
        assert not PRIVATE & set(jwk), jwk
        assert jwk["kid"] and jwk["use"] == "sig" and jwk["alg"] in ("RS256", "ES256")
        assert jwk["kty"] == ("RSA" if jwk["alg"] == "RS256" else "EC")
    assert PRIVATE & set(keyring.signing_key("RS256", T1).as_dict(private=True))


def test_public_jwks_is_computed_once_per_key_state(base):
    keyring = kr.Keyring(base)
    first = keyring.public_jwks(T1)
    assert keyring.public_jwks(T1 + timedelta(days=9)) is first


def test_rotate_publishes_at_once_signs_after_the_jwks_cache_ttl_then_retires_the_old(rotated):
    keys, (old_rs, old_es), (new_rs, new_es) = rotated
    activates = T1 + timedelta(seconds=CACHE_TTL)
    retires = activates + timedelta(seconds=TOKEN_TTL + SLACK)
    keyring = kr.Keyring(keys)

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
    keys, (old, _), (new, _) = rotated
    keyring = kr.Keyring(keys)

    def statuses(now):
        return {e["kid"]: e["status"] for e in keyring.entries(now) if e["alg"] == "RS256"}

    assert statuses(T1) == {old: "signing", new: "next"}
    assert statuses(T1 + timedelta(seconds=CACHE_TTL)) == {old: "published", new: "signing"}
    assert statuses(T1 + timedelta(days=1)) == {old: "retired", new: "signing"}


def test_a_token_signed_by_the_old_key_verifies_until_it_expires(rotated):
    """Worst case: signed in the last second before the new key takes over."""
    keyring = kr.Keyring(rotated[0])
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
    keyring = kr.Keyring(rotated[0])
    with freeze_time(T1 - timedelta(minutes=5)) as frozen:
        key = keyring.signing_key("ES256", kr.clock.now())
        token = jwt.encode({"alg": "ES256", "kid": key.kid},
                           {"exp": kr.clock.timestamp() + TOKEN_TTL}, key)
        frozen.tick(timedelta(seconds=TOKEN_TTL - 1))
        decoded = jwt.decode(token, keyring.verification_keyset(kr.clock.now()), ["ES256"])
        JWTClaimsRegistry(exp={"essential": True}).validate(decoded.claims)


def test_a_second_rotation_is_refused_while_the_first_ones_keys_are_pending(rotated):
    keys, _, first = rotated
    with pytest.raises(keyset.RotationPending) as info:
        keyset.rotation([key.entry for key in keys], T1 + timedelta(seconds=10), **ROTATE)
    assert sorted(info.value.details["pending"]) == sorted(first)
    assert "start signing at 2030-01-31T13:00:00Z (in 60 minutes)" in info.value.message


def test_a_rotation_once_the_pending_keys_sign_retires_them_and_keeps_earlier_retirements(
        rotated):
    keys, (old, _), (first, _) = rotated
    later = T1 + timedelta(seconds=CACHE_TTL)  # the first rotation's keys sign from here
    updated, new = keyset.rotation([key.entry for key in keys], later, **ROTATE)
    retires = {e.kid: e.retires_at for e in updated + [key.entry for key in new]}
    assert retires[old] == T1 + timedelta(seconds=CACHE_TTL + TOKEN_TTL + SLACK)
    assert retires[first] == later + timedelta(seconds=CACHE_TTL + TOKEN_TTL + SLACK)
    assert retires[new[0].entry.kid] is None


def test_signing_key_without_a_usable_key_raises():
    with pytest.raises(kr.SigningKeyMissing):
        kr.Keyring([]).signing_key("RS256", T0)


# --- the keys folder: a copy of the set -------------------------------------------------------

def test_a_written_folder_has_0600_pems_and_a_manifest_and_reads_back(base, tmp_path):
    path = str(tmp_path / "keys")
    keyfiles.write_key_set(path, base)
    manifest = json.loads(Path(path, "keys.json").read_text())
    assert _mode(path) == 0o700
    assert {item["kid"] for item in manifest} == {key.entry.kid for key in base}
    assert all(item["activates_at"] == "2030-01-01T12:00:00Z" for item in manifest)
    for key in base:
        assert _mode(os.path.join(path, f"{key.entry.kid}.pem")) == 0o600
    assert keyfiles.read_folder(path) == sorted(base, key=lambda k: (k.entry.created_at,
                                                                      k.entry.alg))


def test_reading_a_folder_refuses_a_group_readable_key_file(base, tmp_path):
    path = str(tmp_path / "keys")
    keyfiles.write_key_set(path, base)
    os.chmod(os.path.join(path, base[0].entry.kid + ".pem"), 0o644)
    with pytest.raises(keyfiles.KeyFileTooOpen) as info:
        kr.Keyring.from_folder(path)
    assert "chmod 600" in info.value.message


def test_mirror_leaves_a_matching_folder_untouched(base, tmp_path):
    path = str(tmp_path / "keys")
    keyfiles.write_key_set(path, base)
    before = {name: os.stat(os.path.join(path, name)).st_mtime_ns for name in os.listdir(path)}
    assert keyfiles.mirror(path, base, T1) == []
    assert {name: os.stat(os.path.join(path, name)).st_mtime_ns
            for name in os.listdir(path)} == before


def test_mirror_closes_a_key_file_others_can_read(base, tmp_path):
    path = str(tmp_path / "keys")
    keyfiles.write_key_set(path, base)
    pem = os.path.join(path, base[0].entry.kid + ".pem")
    os.chmod(pem, 0o644)
    keyfiles.mirror(path, base, T1)
    assert _mode(pem) == 0o600


def test_mirror_sets_stray_keys_aside_and_writes_the_set(base, rotated, tmp_path):
    path = str(tmp_path / "keys")
    stray = keyset.new_key_set(T0)
    keyfiles.write_key_set(path, stray)
    moved = keyfiles.mirror(path, rotated[0], T1)
    assert sorted(moved) == sorted(key.entry.kid for key in stray)
    assert keyfiles.read_folder(path) == sorted(rotated[0], key=lambda k: (
        k.entry.created_at, k.entry.alg, k.entry.kid))
    aside = [name for name in os.listdir(path) if name.startswith("stray-")]
    assert len(aside) == 1
    assert {key.entry.kid for key in keyfiles.read_folder(os.path.join(path, aside[0]))} == set(
        moved)
