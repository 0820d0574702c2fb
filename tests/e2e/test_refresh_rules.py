"""Every rule of GET /refresh (SPEC section 2, story 3), over HTTP with the Flask test client.
The loop guard (SPEC section 7) has its own module: test_no_redirect_loop.py."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from authserver import clock
from authserver.accounts import services as accounts
from authserver.admin import services as admin
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.oauth.models import DEFAULT_SCOPE
from authserver.passwords import codes
from authserver.passwords import services as passwords
from support import csrf_from, make_client, pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"


def refresh_params(client_id, state="s1", **extra):
    _, challenge = pkce_pair()
    params = {"client_id": client_id, "redirect_uri": REDIRECT_URI, "state": state,
              "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return {k: v for k, v in params.items() if v is not None}


def get_refresh(client, client_id, **extra):
    return client.get("/refresh", query_string=refresh_params(client_id, **extra))


def exchange(client, rp, code, verifier):
    return client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                       auth=rp)


def events(app, name):
    with app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)))


def assert_page_not_redirect(resp, status=400):
    assert resp.status_code == status
    assert "Location" not in resp.headers


def assert_to_app_with_code(resp, state="s1"):
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    assert resp.headers["Location"].startswith(REDIRECT_URI + "?")
    q = query_of(resp.headers["Location"])
    assert q.get("code") and q.get("state") == state and "error" not in q
    return q["code"]


def assert_to_login(resp):
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=/refresh")


# --- the request ------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", [
    "http://evil.example/callback", REDIRECT_URI + "/", REDIRECT_URI + "?x=1",
    "https://127.0.0.1:9999/callback", "http://127.0.0.1:9998/callback",
    "http://127.0.0.1:9999/CALLBACK", "", None])
def test_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(client, signed_in,
                                                                          uri):
    assert_page_not_redirect(get_refresh(client, signed_in[0], redirect_uri=uri))


@pytest.mark.parametrize("client_id", ["nobody", "", None, "x" * 65])
def test_an_unknown_or_missing_client_gets_an_error_page(client, signed_in, client_id):
    assert_page_not_redirect(get_refresh(client, client_id))


def test_a_live_session_goes_straight_back_with_a_new_code_and_the_state(client, signed_in):
    first = assert_to_app_with_code(get_refresh(client, signed_in[0], state="a"), "a")
    second = assert_to_app_with_code(get_refresh(client, signed_in[0], state="b"), "b")
    assert first != second


def test_the_code_challenge_is_honoured_at_the_token_exchange(app, client, signed_in):
    verifier, challenge = pkce_pair()
    code = assert_to_app_with_code(get_refresh(client, signed_in[0], code_challenge=challenge))
    wrong = exchange(client, signed_in, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"

    code = assert_to_app_with_code(get_refresh(client, signed_in[0], state="s2",
                                               code_challenge=challenge), "s2")
    missing = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": REDIRECT_URI}, auth=signed_in)
    assert missing.status_code == 400

    code = assert_to_app_with_code(get_refresh(client, signed_in[0], state="s3",
                                               code_challenge=challenge), "s3")
    ok = exchange(client, signed_in, code, verifier)
    assert ok.status_code == 200, ok.get_json()
    assert {"access_token", "id_token", "refresh_token"} <= set(ok.get_json())


def test_pkce_is_required_when_the_client_requires_it(client, signed_in):
    resp = get_refresh(client, signed_in[0], code_challenge=None, code_challenge_method=None)
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["error"] == "invalid_request" and q["state"] == "s1" and "code" not in q


def test_only_s256_is_accepted(client, signed_in):
    resp = get_refresh(client, signed_in[0], code_challenge="a" * 43, code_challenge_method="plain")
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


def test_a_client_that_does_not_require_pkce_may_leave_it_out(app, client, signed_in):
    client_id, secret = make_client(app, "No PKCE", require_pkce=False)
    resp = get_refresh(client, client_id, code_challenge=None, code_challenge_method=None)
    code = assert_to_app_with_code(resp)
    token = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": REDIRECT_URI},
                        auth=(client_id, secret))
    assert token.status_code == 200, token.get_json()


def test_the_nonce_reaches_the_id_token(client, signed_in):
    verifier, challenge = pkce_pair()
    code = assert_to_app_with_code(get_refresh(client, signed_in[0], code_challenge=challenge,
                                               nonce="n-0S6_WzA2Mj"))
    id_token = exchange(client, signed_in, code, verifier).get_json()["id_token"]
    payload = id_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["nonce"] == "n-0S6_WzA2Mj"


def test_a_malformed_challenge_is_refused_at_the_redirect_uri(client, signed_in):
    resp = get_refresh(client, signed_in[0], code_challenge="too-short")
    q = query_of(resp.headers["Location"])
    assert q["error"] == "invalid_request" and q["state"] == "s1" and "code" not in q


def test_a_nonce_the_client_used_before_is_refused(client, signed_in):
    assert_to_app_with_code(get_refresh(client, signed_in[0], nonce="once"))
    resp = get_refresh(client, signed_in[0], state="s2", nonce="once")
    q = query_of(resp.headers["Location"])
    assert q["error"] == "invalid_request" and q["state"] == "s2" and "code" not in q


def test_a_nonce_over_512_characters_is_refused(client, signed_in):
    resp = get_refresh(client, signed_in[0], nonce="n" * 513)
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"


def test_an_app_the_user_has_no_licence_for_gets_the_no_licence_page(app, client, signed_in):
    client_id, _ = make_client(app, "Licensed", requires_licence=True)
    resp = get_refresh(client, client_id)
    assert_page_not_redirect(resp, 200)
    assert [e.client_id for e in events(app, "no_licence")] == [client_id]


def test_a_third_party_app_asks_for_consent_first(app, client, signed_in):
    client_id, _ = make_client(app, "Elsewhere", first_party=False)
    resp = get_refresh(client, client_id)
    assert_page_not_redirect(resp, 200)
    assert "Allow Elsewhere?" in resp.text


def test_a_code_from_refresh_is_worth_what_one_from_authorize_is(client, signed_in):
    """Same user, client, session and the client's registered scope (what /refresh asks
    for): the same tokens, scope and ID-token claims."""
    def tokens(path, params, verifier):
        resp = client.get(path, query_string=params)
        code = query_of(resp.headers["Location"])["code"]
        body = exchange(client, signed_in, code, verifier).get_json()
        payload = body["id_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        for varying in ("iat", "exp", "nonce", "at_hash", "jti"):
            claims.pop(varying, None)
        return body["scope"], sorted(body), claims

    verifier, challenge = pkce_pair()
    common = {"client_id": signed_in[0], "redirect_uri": REDIRECT_URI, "state": "s",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    from_refresh = tokens("/refresh", {**common, "nonce": "n1"}, verifier)
    from_authorize = tokens("/authorize", {**common, "nonce": "n2", "response_type": "code",
                                           "scope": DEFAULT_SCOPE}, verifier)
    assert from_refresh == from_authorize
    assert from_refresh[0] == DEFAULT_SCOPE
    assert from_refresh[2]["sub"] and from_refresh[2]["auth_time"]


def test_a_missing_state_is_accepted_and_recorded_as_a_security_event(app, client, signed_in):
    resp = get_refresh(client, signed_in[0], state=None)
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["code"] and "state" not in q
    assert [e.client_id for e in events(app, "refresh_without_state")] == [signed_in[0]]


# --- no usable session: the login page, then back to the app ---------------------------------

def test_without_a_session_the_login_page_then_back_to_the_app_with_the_same_state(
        client, auth, rp):
    """The state comes back after the login page: that is not a replay."""
    resp = get_refresh(client, rp[0], state="keep-me")
    assert_to_login(resp)
    assert client.get(resp.headers["Location"]).status_code == 200
    login = auth.login()
    assert login.status_code == 303 and login.headers["Location"].startswith("/refresh?")
    assert_to_app_with_code(client.get(login.headers["Location"]), "keep-me")


def test_a_session_older_than_thirty_days_goes_through_the_login_page(frozen, client,
                                                                      signed_in):
    frozen.tick(timedelta(days=29, hours=23))
    assert_to_app_with_code(get_refresh(client, signed_in[0]))
    frozen.tick(timedelta(hours=1, seconds=1))
    assert_to_login(get_refresh(client, signed_in[0], state="s2"))


def logout(client, app, user_id):
    token = csrf_from(client.get("/logout").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token})


def password_reset(client, app, user_id):
    with app.app_context():
        user = accounts.get_user(user_id)
        code = codes.issue_code(user, clock.now())
        db.session.commit()
        passwords.confirm_reset(user.username, code, "a brand new passphrase 42")


def admin_revoke(client, app, user_id):
    with app.app_context():
        admin.revoke_sessions(accounts.get_user(user_id), actor_id=None)


def admin_reset(client, app, user_id):
    with app.app_context():
        passwords.admin_reset(accounts.get_user(user_id), actor_id=None)


def admin_disable(client, app, user_id):
    with app.app_context():
        admin.disable_user(accounts.get_user(user_id), actor_id=None)


@pytest.mark.parametrize("end", [logout, password_reset, admin_revoke, admin_reset,
                                 admin_disable])
def test_a_revoked_session_goes_through_the_login_page(app, client, signed_in, end):
    assert_to_app_with_code(get_refresh(client, signed_in[0]))
    with app.app_context():
        user_id = accounts.find_by_login("alice").id
    end(client, app, user_id)
    assert_to_login(get_refresh(client, signed_in[0], state="s2"))


@pytest.mark.parametrize("state, page_word", [("disabled", "inactive"),
                                              ("reset_required", "reset")])
def test_an_account_that_can_no_longer_sign_in_gets_the_page_for_its_state(
        app, client, auth, signed_in, state, page_word):
    """Even when its state changed without ending its sessions."""
    with app.app_context():
        accounts.find_by_login("alice").state = state
        db.session.commit()
    assert_to_login(get_refresh(client, signed_in[0]))
    page = auth.login()
    assert page.status_code == 200
    assert page_word in page.get_data(as_text=True).lower()
