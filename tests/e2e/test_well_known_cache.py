"""Discovery and the JWKS are answered from precomputed bytes with an ETag: a client that
sends it back gets 304, the CORS and security headers stay, and the JWKS's tag changes when
`authserver keys rotate` publishes a key."""
from __future__ import annotations

import shutil

import pytest
from support import make_client

PATHS = ("/.well-known/openid-configuration", "/.well-known/jwks.json")


@pytest.fixture(autouse=True)
def own_keys(settings, keys_dir, tmp_path):
    """A private copy of the session keys: rotating must not touch other tests' keys."""
    target = tmp_path / "keys"
    shutil.copytree(keys_dir, target, ignore=shutil.ignore_patterns(".lock"))
    target.chmod(0o700)
    settings["KEYS_DIR"] = str(target)


def assert_shared_headers(resp):
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    assert resp.headers["X-Request-Id"]


@pytest.mark.parametrize("path", PATHS)
def test_a_matching_etag_gets_304_without_a_body(client, path):
    first = client.get(path)
    assert first.status_code == 200 and first.mimetype == "application/json"
    assert_shared_headers(first)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert int(first.headers["Content-Length"]) == len(first.data)

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert_shared_headers(again)
    weak_in_a_list = client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak_in_a_list.status_code == 304

    stale = client.get(path, headers={"If-None-Match": '"not-the-tag"'})
    assert stale.status_code == 200 and stale.data == first.data


@pytest.mark.parametrize("path", PATHS)
def test_head_has_the_headers_and_no_body(client, path):
    resp = client.head(path)
    assert resp.status_code == 200 and resp.data == b""
    assert resp.headers["ETag"] == client.get(path).headers["ETag"]


def test_a_caller_request_id_is_echoed(client):
    resp = client.get(PATHS[0], headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"


def test_discovery_names_the_configured_issuer(app, client):
    assert client.get(PATHS[0]).get_json()["issuer"] == app.config["ISSUER"]


def test_jwks_and_its_etag_change_when_keys_rotate(app, client):
    make_client(app)
    before = client.get(PATHS[1])
    old_kids = {key["kid"] for key in before.get_json()["keys"]}
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output

    after = client.get(PATHS[1], headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    new_kids = {key["kid"] for key in after.get_json()["keys"]}
    assert old_kids < new_kids and len(new_kids - old_kids) == 2
    assert client.get(PATHS[1], headers={"If-None-Match": after.headers["ETag"]}).status_code == 304


def test_another_method_still_reaches_flask(client):
    assert client.post(PATHS[0]).status_code == 405
