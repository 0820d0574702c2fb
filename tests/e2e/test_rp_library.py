"""A relying-party library we did not write (Authlib's requests client) against a live server.

The browser side is a plain requests.Session that posts the hosted login form with its
csrf_token and follows redirects by hand until the one to the client's redirect_uri.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import urljoin

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet

from authserver.audit import SecurityEvent
from authserver.extensions import db
from support import PASSWORD, csrf_from, make_client, make_user, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOGOUT_URI = "http://127.0.0.1:9999/signed-out"
SCOPE = "openid profile email offline_access"


# --- helpers ----------------------------------------------------------------------------------

def follow_to_app(browser: requests.Session, url: str, redirect_uri: str = REDIRECT_URI,
                  login: tuple[str, str] | None = ("alice", PASSWORD)) -> requests.Response:
    """Follow redirects like a browser, signing in when a login page shows up.

    Returns the response whose Location is the app's redirect_uri (not fetched), or the
    first page that is neither a redirect nor the login form.
    """
    for _ in range(10):
        resp = browser.get(url, allow_redirects=False, timeout=10)
        if resp.status_code in (301, 302, 303, 307):
            location = urljoin(url, resp.headers["Location"])
            if location.startswith(redirect_uri):
                return resp
            url = location
            continue
        if 'name="password"' in resp.text and login:
            resp = browser.post(url.split("?")[0], data={
                "username": login[0], "password": login[1],
                "csrf_token": csrf_from(resp.text)}, allow_redirects=False, timeout=10)
            assert resp.status_code == 303, resp.text
            url = urljoin(url, resp.headers["Location"])
            login = None
            continue
        return resp
    raise AssertionError("too many redirects")


def metadata(live_server) -> dict:
    resp = requests.get(live_server.url + "/.well-known/openid-configuration", timeout=10)
    assert resp.status_code == 200
    return resp.json()


def rp(client_id, secret, **kwargs) -> OAuth2Session:
    return OAuth2Session(client_id, secret, scope=SCOPE, redirect_uri=REDIRECT_URI,
                         code_challenge_method="S256", **kwargs)


def sign_in_and_get_tokens(live_server, client_id, secret, browser=None, nonce=None,
                           **session_kwargs):
    """Discovery, authorize with PKCE (signing in), then fetch_token; returns what a test needs."""
    meta = metadata(live_server)
    browser = browser or requests.Session()
    session = rp(client_id, secret, **session_kwargs)
    verifier = secrets.token_urlsafe(48)
    nonce = nonce or secrets.token_urlsafe(12)
    url, state = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce)
    resp = follow_to_app(browser, url)
    assert resp.status_code == 302, resp.text
    callback = resp.headers["Location"]
    assert query_of(callback)["state"] == state
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    return meta, session, browser, token, nonce


def half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def jwks_of(meta) -> KeySet:
    return KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())


def token_error(call) -> str:
    with pytest.raises(OAuthError) as info:
        call()
    return info.value.error


@pytest.fixture
def alice(live_server):
    return make_user(live_server.app)


@pytest.fixture
def rp_client(live_server):
    return make_client(live_server.app, "RP", redirect_uris=[REDIRECT_URI],
                       post_logout_redirect_uris=[LOGOUT_URI])


# --- discovery --------------------------------------------------------------------------------

def test_discovery_names_the_configured_issuer_exactly(live_server):
    meta = metadata(live_server)
    assert meta["issuer"] == live_server.url
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "revocation_endpoint", "introspection_endpoint", "end_session_endpoint"):
        assert meta[name].startswith(live_server.url + "/")
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]


# --- code flow + ID token ---------------------------------------------------------------------

def test_code_flow_with_pkce_issues_a_valid_id_token(live_server, alice, rp_client):
    before = int(time.time())
    meta, _, _, token, nonce = sign_in_and_get_tokens(live_server, *rp_client)
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(token)
    assert token["token_type"].lower() == "bearer"

    decoded = jwt.decode(token["id_token"], jwks_of(meta))
    assert decoded.header["kid"]
    assert decoded.header["alg"] == "RS256"
    claims = decoded.claims
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]},
                          aud={"essential": True, "value": rp_client[0]},
                          exp={"essential": True}, iat={"essential": True},
                          sub={"essential": True},
                          nonce={"essential": True, "value": nonce}).validate(claims)
    assert claims["exp"] > claims["iat"] >= before - 5
    assert claims["at_hash"] == half_hash(token["access_token"])
    assert before - 5 <= claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"]

    access = jwt.decode(token["access_token"], jwks_of(meta))
    assert access.header["typ"] == "at+jwt"
    assert access.claims["client_id"] == rp_client[0]
    assert access.claims["sub"] == claims["sub"]


def test_userinfo_returns_the_claims_of_the_scopes(live_server, alice, rp_client):
    meta, session, _, token, _ = sign_in_and_get_tokens(live_server, *rp_client)
    resp = session.get(meta["userinfo_endpoint"])
    assert resp.status_code == 200
    info = resp.json()
    id_claims = jwt.decode(token["id_token"], jwks_of(meta)).claims
    assert info["sub"] == id_claims["sub"]
    assert info["preferred_username"] == "alice"
    assert info["email"] == "alice@example.com"


def test_public_client_uses_pkce_and_no_client_authentication(live_server, alice):
    client_id, secret = make_client(live_server.app, "SPA", redirect_uris=[REDIRECT_URI],
                                    public=True)
    assert secret is None
    meta, session, _, token, _ = sign_in_and_get_tokens(
        live_server, client_id, None, token_endpoint_auth_method="none")
    assert token["access_token"] and token["id_token"]
    assert session.get(meta["userinfo_endpoint"]).status_code == 200
    refreshed = session.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]


# --- refresh, reuse, revocation, introspection ------------------------------------------------

def test_refresh_rotates_and_reuse_revokes_the_family(live_server, alice, rp_client):
    meta, session, _, token, _ = sign_in_and_get_tokens(live_server, *rp_client)
    first = token["refresh_token"]
    new = session.refresh_token(meta["token_endpoint"], refresh_token=first)
    assert new["refresh_token"] != first
    assert new["access_token"] != token["access_token"]

    fresh = rp(*rp_client)
    assert token_error(lambda: fresh.refresh_token(meta["token_endpoint"], refresh_token=first)
                       ) == "invalid_grant"
    assert token_error(lambda: fresh.refresh_token(
        meta["token_endpoint"], refresh_token=new["refresh_token"])) == "invalid_grant"
    with live_server.app.app_context():
        names = db.session.scalars(db.select(SecurityEvent.name)).all()
    assert "refresh_reuse" in names


def test_revoked_refresh_token_is_inactive_and_refused(live_server, alice, rp_client):
    meta, session, _, token, _ = sign_in_and_get_tokens(live_server, *rp_client)
    refresh = token["refresh_token"]
    intro = session.introspect_token(meta["introspection_endpoint"], token=refresh,
                                     token_type_hint="refresh_token").json()
    assert intro["active"] is True and intro["client_id"] == rp_client[0]

    resp = session.revoke_token(meta["revocation_endpoint"], token=refresh,
                                token_type_hint="refresh_token")
    assert resp.status_code == 200
    intro = session.introspect_token(meta["introspection_endpoint"], token=refresh).json()
    assert intro == {"active": False}
    assert token_error(lambda: rp(*rp_client).refresh_token(
        meta["token_endpoint"], refresh_token=refresh)) == "invalid_grant"


def test_revoked_access_token_is_inactive_and_refused_at_userinfo(live_server, alice,
                                                                  rp_client):
    meta, session, _, token, _ = sign_in_and_get_tokens(live_server, *rp_client)
    access = token["access_token"]
    intro = session.introspect_token(meta["introspection_endpoint"], token=access,
                                     token_type_hint="access_token").json()
    assert intro["active"] is True
    assert intro["sub"] == jwt.decode(access, jwks_of(meta)).claims["sub"]

    assert session.revoke_token(meta["revocation_endpoint"], token=access,
                                token_type_hint="access_token").status_code == 200
    intro = session.introspect_token(meta["introspection_endpoint"], token=access).json()
    assert intro == {"active": False}
    resp = requests.get(meta["userinfo_endpoint"],
                        headers={"Authorization": f"Bearer {access}"}, timeout=10)
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


# --- logout and prompt=none -------------------------------------------------------------------

def authorize_url(meta, client_id, **extra) -> tuple[str, str]:
    session = rp(client_id, None)
    return session.create_authorization_url(meta["authorization_endpoint"],
                                            code_verifier=secrets.token_urlsafe(48), **extra)


def test_prompt_none_with_a_session_returns_a_code_without_a_page(live_server, alice,
                                                                  rp_client):
    meta, _, browser, _, _ = sign_in_and_get_tokens(live_server, *rp_client)
    url, state = authorize_url(meta, rp_client[0], prompt="none")
    resp = browser.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert resp.headers["Location"].startswith(REDIRECT_URI)
    assert q["state"] == state and q["code"]


def test_prompt_none_without_a_session_returns_login_required(live_server, rp_client):
    meta = metadata(live_server)
    url, state = authorize_url(meta, rp_client[0], prompt="none")
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(REDIRECT_URI)
    q = query_of(resp.headers["Location"])
    assert q["error"] == "login_required" and q["state"] == state


def test_rp_initiated_logout_ends_the_session_and_returns_with_state(live_server, alice,
                                                                    rp_client):
    meta, session, browser, token, _ = sign_in_and_get_tokens(live_server, *rp_client)
    resp = browser.get(meta["end_session_endpoint"], params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": LOGOUT_URI,
        "state": "bye-1"}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(LOGOUT_URI)
    assert query_of(resp.headers["Location"])["state"] == "bye-1"

    url, state = authorize_url(meta, rp_client[0], prompt="none")
    resp = browser.get(url, allow_redirects=False, timeout=10)
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    assert token_error(lambda: rp(*rp_client).refresh_token(
        meta["token_endpoint"], refresh_token=token["refresh_token"])) == "invalid_grant"


# --- client_credentials -----------------------------------------------------------------------

def test_client_credentials_issues_a_jwt_for_the_client(live_server):
    client_id, secret = make_client(live_server.app, "Service", redirect_uris=[],
                                    grant_types=["client_credentials"], scope="profile")
    meta = metadata(live_server)
    session = OAuth2Session(client_id, secret)
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert "refresh_token" not in token
    assert "id_token" not in token
    decoded = jwt.decode(token["access_token"], jwks_of(meta))
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["sub"] == client_id
    assert decoded.claims["client_id"] == client_id
    assert decoded.claims["iss"] == live_server.url
    assert decoded.claims["exp"] - decoded.claims["iat"] == 3600
