"""`authserver keys rotate` publishes the next key in the JWKS before it signs, and the old
key keeps verifying its tokens until they have expired (SPEC section 3)."""
from __future__ import annotations

import base64
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from authserver.tokens.keyring import PRIVATE_MEMBERS
from support import make_client, make_user

HOUR = 3600


@pytest.fixture(autouse=True)
def own_keys(settings, keys_dir, tmp_path):
    """A private copy of the session keys: rotating must not touch other tests' keys."""
    target = tmp_path / "keys"
    shutil.copytree(keys_dir, target, ignore=shutil.ignore_patterns(".lock"))
    target.chmod(0o700)
    settings["KEYS_DIR"] = str(target)
    return target


@pytest.fixture
def rp(app):
    make_user(app)
    return make_client(app)


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def jwks(client) -> dict:
    resp = client.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    return resp.get_json()


def kids(client) -> set[str]:
    return {key["kid"] for key in jwks(client)["keys"]}


def rotate(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "PRIVATE" not in result.output
    return [line.split()[3].rstrip(":") for line in result.output.splitlines()
            if line.startswith("new ")]


def issue(auth, rp) -> dict:
    resp = auth.code_flow(*rp)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def userinfo(client, token):
    return client.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})


def test_rotation_publishes_the_next_key_before_it_signs(frozen, app, client, auth, rp):
    auth.login()
    before = issue(auth, rp)
    old_kid = kid_of(before["access_token"])
    new = rotate(app)
    assert len(new) == 2
    assert set(new) <= kids(client)
    assert old_kid in kids(client)

    during = issue(auth, rp)
    assert kid_of(during["access_token"]) == old_kid
    assert kid_of(during["id_token"]) == old_kid

    frozen.tick(timedelta(seconds=HOUR - 1))
    assert kid_of(issue(auth, rp)["access_token"]) == old_kid
    frozen.tick(timedelta(seconds=2))
    after = issue(auth, rp)
    assert kid_of(after["access_token"]) in new
    assert kid_of(after["id_token"]) in new
    assert userinfo(client, after).status_code == 200


def test_old_key_verifies_its_tokens_until_they_expire(frozen, app, client, auth, rp):
    auth.login()
    rotate(app)
    frozen.tick(timedelta(seconds=HOUR - 1))
    last_old = issue(auth, rp)
    old_kid = kid_of(last_old["access_token"])
    frozen.tick(timedelta(seconds=2))
    assert kid_of(issue(auth, rp)["access_token"]) != old_kid

    frozen.tick(timedelta(seconds=HOUR - 10))
    assert old_kid in kids(client)
    assert userinfo(client, last_old).status_code == 200
    claims = jwt.decode(last_old["id_token"], KeySet.import_key_set(jwks(client))).claims
    assert claims["aud"] == [rp[0]] or claims["aud"] == rp[0]
    frozen.tick(timedelta(seconds=20))
    assert userinfo(client, last_old).status_code == 401


def test_old_key_leaves_the_jwks_once_its_tokens_have_expired(frozen, app, client, auth, rp):
    old = kids(client)
    rotate(app)
    assert old < kids(client)
    frozen.tick(timedelta(seconds=2 * HOUR))
    assert old <= kids(client)  # its last tokens, signed just before the switch, still live
    frozen.tick(timedelta(seconds=app.config["KEY_RETIRE_SLACK"] + 1))
    assert not old & kids(client)
    assert len(kids(client)) == 2


def test_keys_list_shows_the_next_key_and_never_private_material(frozen, app, rp):
    new = rotate(app)
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[2] for line in result.output.splitlines()[1:]}
    assert all(lines[kid] == "next" for kid in new)
    assert sorted(lines.values()).count("signing") == 2
    assert "BEGIN" not in result.output


def test_rotated_jwks_never_shows_a_private_member(frozen, app, client, rp):
    rotate(app)
    frozen.tick(timedelta(seconds=HOUR))
    rotate(app)
    for key in jwks(client)["keys"]:
        assert not PRIVATE_MEMBERS & set(key)
        assert key["kid"] and key["use"] == "sig"


def test_rotation_leaves_the_shared_session_keys_alone(frozen, app, keys_dir, own_keys, rp):
    assert app.config["KEYS_DIR"] == str(own_keys) != keys_dir
    before = sorted(p.name for p in Path(keys_dir).iterdir())
    rotate(app)
    after = sorted(p.name for p in Path(keys_dir).iterdir())
    assert before == after


def statuses(app) -> dict[str, str]:
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split()[2] for line in result.output.splitlines()[1:]}


def test_a_second_rotate_while_keys_are_pending_is_refused_and_says_when_to_retry(
        frozen, app, client, rp):
    first = rotate(app)
    published = jwks(client)
    assert len(published["keys"]) == 4
    frozen.tick(timedelta(minutes=5))
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 1, result.output
    assert "already pending" in result.output
    assert all(kid in result.output for kid in first)
    assert "start signing at 2030-01-01T13:00:00Z (in 55 minutes)" in result.output
    assert "`authserver keys list`" in result.output
    assert not [line for line in result.output.splitlines() if line.startswith("new ")]
    assert jwks(client) == published
    assert [statuses(app)[kid] for kid in first] == ["next", "next"]

    frozen.tick(timedelta(minutes=55))  # the pending keys sign now: rotating is allowed again
    second = rotate(app)
    assert len(second) == 2 and not set(second) & set(first)
    after = statuses(app)
    assert [after[kid] for kid in first] == ["signing", "signing"]
    assert [after[kid] for kid in second] == ["next", "next"]
