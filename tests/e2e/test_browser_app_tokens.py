"""A public client in a browser (SPEC section 7), as its JavaScript would call the issuer from
its own origin: every answer it needs is readable there, its refresh tokens rotate with reuse
detection (RFC 9700 section 4.14.2) and die with the browser session (SPEC section 3)."""
from __future__ import annotations

import pytest

from support import csrf_from, make_client, make_user

SPA = "http://127.0.0.1:9999"
REDIRECT_URI = SPA + "/callback"
HEADERS = {"Origin": SPA}


@pytest.fixture
def spa(app, auth):
    make_user(app)
    client_id, _ = make_client(app, "SPA", redirect_uris=[REDIRECT_URI], public=True)
    assert auth.login().status_code == 303
    return client_id


def _tokens(auth, spa) -> dict:
    auth.client.environ_base.update(HTTP_ORIGIN=SPA)
    try:
        resp = auth.code_flow(spa, scope="openid profile email offline_access")
    finally:
        auth.client.environ_base.pop("HTTP_ORIGIN")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Access-Control-Allow-Origin"] == SPA
    return resp.json


def _refresh(client, spa, token):
    return client.post("/token", data={"grant_type": "refresh_token", "client_id": spa,
                                       "refresh_token": token}, headers=HEADERS)


def test_public_client_reads_token_userinfo_refresh_and_revoke_from_its_origin(client, auth,
                                                                                spa):
    tokens = _tokens(auth, spa)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}", **HEADERS}
    info = client.get("/userinfo", headers=bearer)
    assert info.status_code == 200 and info.json["preferred_username"] == "alice"
    assert info.headers["Access-Control-Allow-Origin"] == SPA
    fresh = _refresh(client, spa, tokens["refresh_token"])
    assert fresh.status_code == 200
    assert fresh.headers["Access-Control-Allow-Origin"] == SPA
    assert fresh.json["refresh_token"] != tokens["refresh_token"]
    gone = client.post("/revoke", data={"token": fresh.json["refresh_token"], "client_id": spa},
                       headers=HEADERS)
    assert gone.status_code == 200
    assert gone.headers["Access-Control-Allow-Origin"] == SPA
    assert _refresh(client, spa, fresh.json["refresh_token"]).json["error"] == "invalid_grant"


def test_public_clients_rotated_refresh_token_reused_kills_the_family(client, auth, spa):
    tokens = _tokens(auth, spa)
    first = _refresh(client, spa, tokens["refresh_token"])
    assert first.status_code == 200
    reused = _refresh(client, spa, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json["error"] == "invalid_grant"
    assert reused.headers["Access-Control-Allow-Origin"] == SPA  # the app can read why
    assert _refresh(client, spa, first.json["refresh_token"]).json["error"] == "invalid_grant"


def test_public_clients_refresh_token_dies_with_the_browser_session(client, auth, spa):
    tokens = _tokens(auth, spa)
    page = client.get("/logout")
    assert client.post("/logout", data={"csrf_token": csrf_from(page.get_data(as_text=True))}
                       ).status_code in (200, 302, 303)
    after = _refresh(client, spa, tokens["refresh_token"])
    assert after.status_code == 400 and after.json["error"] == "invalid_grant"
    assert after.headers["Access-Control-Allow-Origin"] == SPA
