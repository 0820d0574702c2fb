"""The authorization request and the code exchange refuse everything RFC 6749, RFC 7636 and
SPEC section 2 say they must (never a redirect to an unregistered URI)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.extensions import db
from authserver.tokens.models import RefreshToken
from support import PASSWORD, csrf_from, make_client, make_user, pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"


def authorize_params(client_id, **extra):
    _, challenge = pkce_pair()
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
            "scope": "openid profile", "state": "xyz", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}


def exchange(client, client_id, secret, code, verifier, **extra):
    return client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier, "client_id": client_id, "client_secret": secret, **extra})


def get_code(auth, client_id):
    resp, verifier, params = auth.authorize(client_id)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return query_of(resp.headers["Location"])["code"], verifier


def assert_error_page(resp, status=400):
    assert resp.status_code == status
    assert "Location" not in resp.headers
    assert resp.mimetype == "text/html"


def assert_error_redirect(resp, error, state="xyz"):
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    q = query_of(location)
    assert q["error"] == error
    assert q.get("state") == state
    return q


# --- /authorize: the redirect URI and the client ----------------------------------------------

@pytest.mark.parametrize("uri", ["http://evil.example/callback", REDIRECT_URI + "/extra",
                                 REDIRECT_URI + "?x=1", "HTTP://127.0.0.1:9999/callback",
                                 "http://127.0.0.1:9999/CALLBACK"])
def test_authorize_shows_a_page_for_an_unregistered_redirect_uri(client, signed_in, uri):
    resp = client.get("/authorize", query_string=authorize_params(signed_in[0],
                                                                  redirect_uri=uri))
    assert_error_page(resp)


def test_authorize_shows_a_page_for_an_unregistered_uri_even_without_a_session(client, rp):
    resp = client.get("/authorize", query_string=authorize_params(
        rp[0], redirect_uri="http://evil.example/cb", prompt="none"))
    assert_error_page(resp)


def test_authorize_shows_a_page_for_an_unknown_client(client, signed_in):
    resp = client.get("/authorize", query_string=authorize_params("no-such-client"))
    assert_error_page(resp)
    resp = client.get("/authorize", query_string={"response_type": "code"})
    assert_error_page(resp)


def test_authorize_without_redirect_uri_uses_the_single_registered_one(client, signed_in):
    params = authorize_params(signed_in[0])
    del params["redirect_uri"]
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(REDIRECT_URI + "?")


def test_authorize_without_redirect_uri_shows_a_page_when_several_are_registered(app, client,
                                                                                 auth):
    make_user(app)
    client_id, _ = make_client(app, redirect_uris=[REDIRECT_URI, "http://127.0.0.1:9999/b"])
    auth.login()
    params = authorize_params(client_id)
    del params["redirect_uri"]
    assert_error_page(client.get("/authorize", query_string=params))


# --- /authorize: response type and PKCE -------------------------------------------------------

def test_authorize_refuses_response_type_token(client, signed_in):
    resp = client.get("/authorize", query_string=authorize_params(signed_in[0],
                                                                  response_type="token"))
    assert_error_redirect(resp, "unsupported_response_type")


@pytest.mark.parametrize("response_type", ["id_token", "code id_token", "code token", "none"])
def test_authorize_refuses_other_response_types(client, signed_in, response_type):
    resp = client.get("/authorize", query_string=authorize_params(
        signed_in[0], response_type=response_type))
    assert resp.status_code in (302, 400)
    if resp.status_code == 302:
        assert "code=" not in resp.headers["Location"]
        assert query_of(resp.headers["Location"])["error"]


def test_authorize_requires_pkce_when_the_client_requires_it(client, signed_in):
    params = authorize_params(signed_in[0])
    del params["code_challenge"], params["code_challenge_method"]
    q = assert_error_redirect(client.get("/authorize", query_string=params), "invalid_request")
    assert "code_challenge" in q["error_description"]


def test_authorize_requires_pkce_of_a_public_client(app, client, auth):
    make_user(app)
    client_id, _ = make_client(app, public=True, require_pkce=False)
    auth.login()
    params = authorize_params(client_id)
    del params["code_challenge"], params["code_challenge_method"]
    assert_error_redirect(client.get("/authorize", query_string=params), "invalid_request")


def test_authorize_refuses_the_plain_method(client, signed_in):
    verifier, _ = pkce_pair()
    resp = client.get("/authorize", query_string=authorize_params(
        signed_in[0], code_challenge=verifier, code_challenge_method="plain"))
    assert_error_redirect(resp, "invalid_request")


def test_authorize_refuses_a_challenge_without_a_method(client, signed_in):
    params = authorize_params(signed_in[0])
    del params["code_challenge_method"]
    assert_error_redirect(client.get("/authorize", query_string=params), "invalid_request")


def test_authorize_refuses_a_malformed_challenge(client, signed_in):
    resp = client.get("/authorize", query_string=authorize_params(
        signed_in[0], code_challenge="short"))
    assert_error_redirect(resp, "invalid_request")


# --- /authorize: the nonce (OIDC Core 3.1.2.1) ---------------------------------------------------

@pytest.mark.parametrize("scope", ["openid profile", "profile"])
def test_a_nonce_of_512_characters_is_accepted(client, signed_in, scope):
    resp = client.get("/authorize", query_string=authorize_params(
        signed_in[0], nonce="n" * 512, scope=scope))
    assert resp.status_code == 302
    assert "code" in query_of(resp.headers["Location"])


def test_a_nonce_of_512_characters_is_remembered_for_the_replay_check(client, signed_in):
    params = authorize_params(signed_in[0], nonce="n" * 512)
    assert "code" in query_of(client.get("/authorize", query_string=params).headers["Location"])
    assert_error_redirect(client.get("/authorize", query_string=params), "invalid_request")


@pytest.mark.parametrize("scope", ["openid profile", "profile"])
def test_a_longer_nonce_is_refused_at_the_redirect_uri(client, signed_in, scope):
    resp = client.get("/authorize", query_string=authorize_params(
        signed_in[0], nonce="n" * 513, scope=scope))
    q = assert_error_redirect(resp, "invalid_request")
    assert "nonce" in q["error_description"]
    assert "code" not in q


def test_a_nonce_used_before_by_the_client_is_refused(client, signed_in):
    first = client.get("/authorize", query_string=authorize_params(signed_in[0], nonce="n-1"))
    assert "code" in query_of(first.headers["Location"])
    again = client.get("/authorize", query_string=authorize_params(signed_in[0], nonce="n-1"))
    assert_error_redirect(again, "invalid_request")


def test_client_that_does_not_require_pkce_may_skip_it(app, client, auth):
    make_user(app)
    client_id, secret = make_client(app, require_pkce=False)
    auth.login()
    params = authorize_params(client_id)
    del params["code_challenge"], params["code_challenge_method"]
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302
    code = query_of(resp.headers["Location"])["code"]
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI},
                       auth=(client_id, secret))
    assert resp.status_code == 200, resp.get_json()


# --- /token: the code exchange ----------------------------------------------------------------

def test_token_refuses_a_wrong_code_verifier(client, auth, signed_in):
    code, _ = get_code(auth, signed_in[0])
    other, _ = pkce_pair()
    resp = exchange(client, *signed_in, code, other)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_token_refuses_a_missing_code_verifier(client, auth, signed_in):
    code, _ = get_code(auth, signed_in[0])
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI},
                       auth=signed_in)
    assert resp.status_code == 400
    assert resp.get_json()["error"] in ("invalid_request", "invalid_grant")


def test_token_refuses_a_mismatched_redirect_uri(client, auth, signed_in):
    code, verifier = get_code(auth, signed_in[0])
    resp = exchange(client, *signed_in, code, verifier, redirect_uri=REDIRECT_URI + "/x")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_token_refuses_a_code_issued_to_another_client(app, client, auth, signed_in):
    other_id, other_secret = make_client(app, "Other")
    code, verifier = get_code(auth, signed_in[0])
    resp = exchange(client, other_id, other_secret, code, verifier)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_code_replay_is_refused_and_revokes_what_the_first_use_issued(app, client, auth,
                                                                       signed_in):
    code, verifier = get_code(auth, signed_in[0])
    first = exchange(client, *signed_in, code, verifier)
    assert first.status_code == 200
    refresh = first.get_json()["refresh_token"]

    replay = exchange(client, *signed_in, code, verifier)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    with app.app_context():
        rows = db.session.scalars(select(RefreshToken)).all()
        assert rows and all(row.revoked_at is not None for row in rows)
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                       auth=signed_in)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_code_expires_after_sixty_seconds(frozen, client, auth, signed_in):
    code, verifier = get_code(auth, signed_in[0])
    frozen.tick(timedelta(seconds=61))
    resp = exchange(client, *signed_in, code, verifier)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_grant"


def test_code_still_works_just_before_sixty_seconds(frozen, client, auth, signed_in):
    code, verifier = get_code(auth, signed_in[0])
    frozen.tick(timedelta(seconds=59))
    assert exchange(client, *signed_in, code, verifier).status_code == 200


def test_tokens_name_the_user_by_the_stable_sub_not_the_database_id(app, client, auth,
                                                                     signed_in):
    code, verifier = get_code(auth, signed_in[0])
    body = exchange(client, *signed_in, code, verifier).get_json()
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    with app.app_context():
        assert info.get_json()["sub"] == db.session.scalar(select(User.sub))


# --- prompt=login and max_age: one fresh sign-in, then the code (no loop) --------------------

def sign_in_again(client, location):
    page = client.get(location)
    assert page.status_code == 200
    resp = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                       "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert resp.status_code == 303
    return resp.headers["Location"]


@pytest.mark.parametrize("extra", [{"max_age": "0"}, {"prompt": "login"},
                                   {"max_age": "60", "prompt": "login"}])
def test_fresh_sign_in_is_asked_once_then_the_code_follows(frozen, client, auth, signed_in,
                                                          extra):
    frozen.tick(timedelta(minutes=5))
    resp, verifier, params = auth.authorize(signed_in[0], **extra)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")
    frozen.tick(timedelta(seconds=3))
    back = sign_in_again(client, resp.headers["Location"])
    signed_in_at = int(frozen().timestamp())
    frozen.tick(timedelta(seconds=2))
    resp = client.get(back)
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["state"] == params["state"] and q["code"]
    body = exchange(client, *signed_in, q["code"], verifier).get_json()
    payload = body["id_token"].split(".")[1]
    id_claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert id_claims["auth_time"] == signed_in_at


def test_max_age_is_honoured_without_a_new_sign_in_while_recent(frozen, client, auth,
                                                                signed_in):
    frozen.tick(timedelta(seconds=30))
    resp, _, _ = auth.authorize(signed_in[0], max_age="60")
    assert resp.status_code == 302
    assert "code=" in resp.headers["Location"]
    frozen.tick(timedelta(seconds=31))
    resp, _, _ = auth.authorize(signed_in[0], max_age="60")
    assert resp.headers["Location"].startswith("/login?next=")
