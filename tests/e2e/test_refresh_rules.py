"""Every rule of GET /refresh (SPEC section 2, stories 3 and 5) and of the loop guard
(SPEC section 7), over HTTP with the Flask test client and, for racing tabs, a live server."""
from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from authserver import clock
from authserver.accounts import services as accounts
from authserver.admin import services as admin
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.oauth.models import DEFAULT_SCOPE
from authserver.passwords import codes
from authserver.passwords import services as passwords
from support import PASSWORD, csrf_from, make_client, make_user, pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOOP_TITLE = "We stopped a redirect loop"


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


def assert_loop_page(resp):
    assert_page_not_redirect(resp, 200)
    body = resp.text
    assert LOOP_TITLE in body and "Clear cache" in body


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


# --- tabs and loops ----------------------------------------------------------------------------

def test_five_tabs_refreshing_at_once_all_succeed(live_server, rp):
    """Five requests race with the same cookie, as five tabs of one browser would."""
    http = requests.Session()
    login = http.get(f"{live_server.url}/login")
    http.post(f"{live_server.url}/login", allow_redirects=False, data={
        "username": "alice", "password": PASSWORD, "csrf_token": csrf_from(login.text)})
    cookies = http.cookies.get_dict()
    pairs = [pkce_pair() for _ in range(6)]
    start, results = threading.Barrier(5), [None] * 5

    def tab(i):
        start.wait()
        results[i] = requests.get(f"{live_server.url}/refresh", allow_redirects=False,
                                  cookies=cookies, timeout=10, params=refresh_params(
                                      rp[0], state=f"tab{i}", code_challenge=pairs[i][1]))

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    for i, resp in enumerate(results):
        assert resp.status_code == 302, resp.text[:200]
        q = query_of(resp.headers["Location"])
        assert q["state"] == f"tab{i}"
        token = requests.post(f"{live_server.url}/token", auth=rp, timeout=10, data={
            "grant_type": "authorization_code", "code": q["code"],
            "redirect_uri": REDIRECT_URI, "code_verifier": pairs[i][0]})
        assert token.status_code == 200, token.text
    sixth = requests.get(f"{live_server.url}/refresh", allow_redirects=False, cookies=cookies,
                         timeout=10, params=refresh_params(rp[0], state="tab5"))
    assert_loop_page(sixth)


def authorize(client, client_id, state):
    _, challenge = pkce_pair()
    return client.get("/authorize", query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256"})


def test_authorize_and_refresh_count_together_and_the_sixth_trip_is_the_loop_page(
        app, client, signed_in):
    for i in range(5):
        resp = (authorize if i % 2 else get_refresh)(client, signed_in[0], state=f"s{i}")
        assert_to_app_with_code(resp, f"s{i}")
    assert_loop_page(get_refresh(client, signed_in[0], state="s5"))
    assert_loop_page(authorize(client, signed_in[0], state="s6"))
    assert [e.data["reason"] for e in events(app, "redirect_loop")] == \
        ["too_many_round_trips"] * 2


def test_trips_are_counted_per_client(app, client, signed_in):
    other = make_client(app, "Other")
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_to_app_with_code(get_refresh(client, other[0], state="o"), "o")


def test_a_trip_through_the_login_page_is_not_a_round_trip(client, rp):
    for i in range(8):
        assert_to_login(get_refresh(client, rp[0], state=f"s{i}"))


def test_trips_spread_over_more_than_the_window_are_not_a_loop(frozen, client, signed_in):
    for i in range(12):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
        frozen.tick(timedelta(seconds=4.1))


@pytest.fixture
def tight_guard(settings):
    settings.update(LOOP_MAX_TRIPS=2, LOOP_WINDOW=5)


def test_the_limits_are_settings(frozen, tight_guard, client, signed_in):
    for i in range(2):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_loop_page(get_refresh(client, signed_in[0], state="s2"))
    frozen.tick(timedelta(seconds=5.1))
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="s3"), "s3")


def test_a_refresh_bringing_back_its_own_state_ends_on_the_loop_page(app, client, signed_in):
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="once"), "once")
    assert_loop_page(get_refresh(client, signed_in[0], state="once"))
    assert [e.data["reason"] for e in events(app, "redirect_loop")] == ["state_replayed"]


def test_a_replayed_state_outside_the_window_is_accepted(frozen, client, signed_in):
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="once"), "once")
    frozen.tick(timedelta(seconds=21))
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="once"), "once")


def test_the_loop_pages_button_starts_a_clean_sign_in(client, auth, signed_in):
    for i in range(5):
        get_refresh(client, signed_in[0], state=f"s{i}")
    page = get_refresh(client, signed_in[0], state="s5")
    assert_loop_page(page)
    token = csrf_from(page.get_data(as_text=True))
    resp = client.post("/login/restart", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    assert_to_login(get_refresh(client, signed_in[0], state="s6"))
    assert auth.login().status_code == 303
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="s7"), "s7")


# --- cookies that do not work ------------------------------------------------------------------

@pytest.fixture
def cookieless(app):
    """A browser that blocks the issuer's cookies: it never sends one back."""
    return app.test_client(use_cookies=False)


def test_with_cookies_blocked_refresh_always_ends_on_the_login_page(cookieless, rp):
    for i in range(10):
        resp = get_refresh(cookieless, rp[0], state=f"s{i}")
        assert_to_login(resp)
        assert cookieless.get(resp.headers["Location"]).status_code == 200


def silent_authorize(client, client_id, state, headers=None):
    """prompt=none, as an app checking for a session without showing a page."""
    return client.get("/authorize", headers=headers or {}, query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "state": state, "prompt": "none", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256"})


def test_with_cookies_blocked_a_silent_sign_in_loop_ends_on_the_loop_page(app, cookieless,
                                                                          rp):
    for i in range(5):
        resp = silent_authorize(cookieless, rp[0], f"s{i}")
        assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = silent_authorize(cookieless, rp[0], "s5")
    assert_page_not_redirect(resp, 200)
    assert "not keeping this site's cookies" in resp.text
    assert [e.data["cookies"] for e in events(app, "redirect_loop")] == [False]


def test_cookieless_loops_elsewhere_do_not_block_a_first_visit(app, cookieless, rp):
    """Same address, other browser; and a first visit that goes to the login page."""
    for i in range(6):
        silent_authorize(cookieless, rp[0], f"s{i}")
    other_browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Other/1.0"}
    resp = silent_authorize(cookieless, rp[0], "x", headers=other_browser)
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = authorize(cookieless, rp[0], state="first-visit")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?")


def test_a_browser_that_drops_every_new_cookie_still_ends_on_the_loop_page(app, client,
                                                                          signed_in):
    """It keeps sending its first cookie (full jar, an extension): the server-side count."""
    stale = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    frozen_jar = app.test_client(use_cookies=False)
    header = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={stale}"}
    for i in range(5):
        resp = frozen_jar.get("/refresh", headers=header,
                              query_string=refresh_params(signed_in[0], state=f"s{i}"))
        assert_to_app_with_code(resp, f"s{i}")
    assert_loop_page(frozen_jar.get("/refresh", headers=header,
                                    query_string=refresh_params(signed_in[0], state="s5")))


@pytest.fixture
def storage_down(settings):
    """Redis as the shared storage, but nothing listens there."""
    settings.update(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_TIMEOUT=0.2)


def test_with_its_storage_down_the_guard_still_counts_in_the_cookie(storage_down, client,
                                                                   signed_in, caplog):
    """And the outage costs one timeout, not one per request."""
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_loop_page(get_refresh(client, signed_in[0], state="s5"))
    assert caplog.text.count("loop guard storage unavailable") == 1
