"""The loop guard (SPEC section 7, story 5) over HTTP: what counts as a round trip, what is a
loop, what starts the counts afresh, and cookies that do not work. The same rules in a real
browser: tests/browser/test_no_redirect_loop.py."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from authserver.audit import SecurityEvent
from authserver.extensions import db
from support import PASSWORD, csrf_from, make_client, pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOOP_TITLE = "We stopped a redirect loop"


def refresh_params(client_id, state="s1", **extra):
    _, challenge = pkce_pair()
    params = {"client_id": client_id, "redirect_uri": REDIRECT_URI, "state": state,
              "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    return {k: v for k, v in params.items() if v is not None}


def get_refresh(client, client_id, **extra):
    return client.get("/refresh", query_string=refresh_params(client_id, **extra))


def authorize(client, client_id, state, headers=None, verifier_out=None, **extra):
    verifier, challenge = pkce_pair()
    if verifier_out is not None:
        verifier_out.append(verifier)
    return client.get("/authorize", headers=headers or {}, query_string={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": "openid", "state": state, "code_challenge": challenge,
        "code_challenge_method": "S256", **extra})


def silent_authorize(client, client_id, state, headers=None):
    """prompt=none, as an app checking for a session without showing a page."""
    return authorize(client, client_id, state, headers=headers, prompt="none")


def redeem(client, rp, resp, verifier):
    code = query_of(resp.headers["Location"])["code"]
    tok = client.post("/token", auth=rp, data={"grant_type": "authorization_code", "code": code,
                                               "redirect_uri": REDIRECT_URI,
                                               "code_verifier": verifier})
    assert tok.status_code == 200, tok.get_json()


def events(app, name="redirect_loop"):
    with app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(SecurityEvent.name == name)))


def assert_to_app(resp, state):
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    assert resp.headers["Location"].startswith(REDIRECT_URI + "?")
    assert query_of(resp.headers["Location"]).get("state") == state


def assert_to_app_with_code(resp, state="s1"):
    assert_to_app(resp, state)
    return query_of(resp.headers["Location"])["code"]


def assert_to_login(resp):
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


def assert_loop_page(resp):
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert LOOP_TITLE in resp.text and "Clear cache" in resp.text


# --- what a loop is -----------------------------------------------------------------------------

def test_codes_never_redeemed_end_on_the_loop_page_at_the_sixth_round_trip(app, client,
                                                                          signed_in):
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_loop_page(get_refresh(client, signed_in[0], state="s5"))
    assert [e.data["reason"] for e in events(app)] == ["codes_not_redeemed"]


def test_codes_redeemed_but_coming_straight_back_end_on_the_loop_page_at_the_twentieth(
        app, client, signed_in):
    for i in range(19):
        verifier = []
        resp = authorize(client, signed_in[0], f"s{i}", verifier_out=verifier)
        assert_to_app_with_code(resp, f"s{i}")
        redeem(client, signed_in, resp, verifier[0])
    assert_loop_page(authorize(client, signed_in[0], "s19"))
    assert [e.data["reason"] for e in events(app)] == ["codes_rejected"]


def test_the_same_error_again_and_again_ends_on_the_loop_page_at_the_sixth(app, client, rp):
    client.get("/login")  # a browser with our cookie, without a session
    for i in range(5):
        resp = silent_authorize(client, rp[0], f"s{i}")
        assert query_of(resp.headers["Location"])["error"] == "login_required"
    assert_loop_page(silent_authorize(client, rp[0], "s5"))
    assert [e.data["reason"] for e in events(app)] == ["same_error"]


def test_different_requests_do_not_add_up_to_a_loop(client, signed_in):
    """A relying party's test run: many requests, each a little different, codes unused."""
    variants = [{"nonce": "n"}, {"scope": "openid profile"}, {"scope": "openid email"},
                {"prompt": "none"}, {"max_age": "3600"}, {"login_hint": "alice"},
                {"scope": "openid profile email"}, {"response_mode": "query"},
                {"ui_locales": "en"}, {"display": "page"}, {"acr_values": "1"},
                {"claims_locales": "en"}]
    for i, extra in enumerate(variants):
        for j in range(3):
            assert_to_app(authorize(client, signed_in[0], f"s{i}-{j}", **extra), f"s{i}-{j}")
    for i in range(5):
        assert_to_app(get_refresh(client, signed_in[0], state=f"r{i}"), f"r{i}")


def test_trips_are_counted_per_client(app, client, signed_in):
    other = make_client(app, "Other")
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_to_app_with_code(get_refresh(client, other[0], state="o"), "o")


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


# --- pages for the user: never counted, never replaced, and they start afresh -----------------

def test_a_trip_through_the_login_page_is_not_a_round_trip(client, rp):
    for i in range(8):
        assert_to_login(get_refresh(client, rp[0], state=f"s{i}"))


def test_the_login_page_is_never_replaced_by_the_loop_page(client, signed_in):
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    for i in range(10):
        assert_to_login(authorize(client, signed_in[0], f"l{i}", prompt="login"))
        assert_to_login(authorize(client, signed_in[0], f"m{i}", max_age="0"))


def test_a_completed_sign_in_starts_the_counts_afresh(client, auth, signed_in):
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert auth.login().status_code == 303
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"t{i}"), f"t{i}")


def consent(client, resp, answer="Allow"):
    """Answer the consent page, as the user's click would (the form posts to the same URL)."""
    assert resp.status_code == 200 and "Allow Elsewhere?" in resp.text
    return client.post(f"/authorize?{resp.request.query_string.decode()}",
                       data={"csrf_token": csrf_from(resp.text), answer.lower(): answer})


def test_a_consent_given_by_the_user_starts_the_counts_afresh(app, client, signed_in):
    client_id, _ = make_client(app, "Elsewhere", first_party=False)
    assert_to_app_with_code(consent(client, authorize(client, client_id, "c0")), "c0")
    for i in range(1, 5):
        assert_to_app_with_code(authorize(client, client_id, f"s{i}"), f"s{i}")
    asked = authorize(client, client_id, "c1", prompt="consent")
    assert_to_app_with_code(consent(client, asked), "c1")
    for i in range(5):
        assert_to_app_with_code(authorize(client, client_id, f"t{i}"), f"t{i}")
    assert_loop_page(authorize(client, client_id, "t5"))


def test_consent_is_recorded_once_given_and_a_refusal_goes_back_as_access_denied(app, client,
                                                                                 signed_in):
    client_id, _ = make_client(app, "Elsewhere", first_party=False)
    denied = consent(client, authorize(client, client_id, "d"), "Deny")
    assert query_of(denied.headers["Location"])["error"] == "access_denied"
    assert_to_app_with_code(consent(client, authorize(client, client_id, "a")), "a")
    assert_to_app_with_code(authorize(client, client_id, "b"), "b")  # not asked again
    wider = authorize(client, client_id, "w", scope="openid email")
    assert "Allow Elsewhere?" in wider.text  # a wider scope asks again
    assert [e.data["scope"] for e in events(app, "consent_granted")] == ["openid"]
    silent = authorize(client, client_id, "n", scope="openid email", prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_the_loop_pages_button_starts_a_clean_sign_in(client, auth, signed_in):
    for i in range(5):
        get_refresh(client, signed_in[0], state=f"s{i}")
    page = get_refresh(client, signed_in[0], state="s5")
    assert_loop_page(page)
    resp = client.post("/login/restart", data={"csrf_token": csrf_from(page.text)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    assert_to_login(get_refresh(client, signed_in[0], state="s6"))
    assert auth.login().status_code == 303
    assert_to_app_with_code(get_refresh(client, signed_in[0], state="s7"), "s7")


# --- tabs, and cookies that do not work -------------------------------------------------------

def test_five_tabs_refreshing_at_once_all_succeed(live_server, rp):
    """Five requests race with the same cookie, as five tabs of one browser would."""
    http = requests.Session()
    login = http.get(f"{live_server.url}/login")
    http.post(f"{live_server.url}/login", allow_redirects=False, data={
        "username": "alice", "password": PASSWORD, "csrf_token": csrf_from(login.text)})
    cookies = http.cookies.get_dict()
    pairs = [pkce_pair() for _ in range(5)]
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


@pytest.fixture
def cookieless(app):
    """A browser that blocks the issuer's cookies: it never sends one back."""
    return app.test_client(use_cookies=False)


def test_with_cookies_blocked_refresh_always_ends_on_the_login_page(cookieless, rp):
    for i in range(10):
        resp = get_refresh(cookieless, rp[0], state=f"s{i}")
        assert_to_login(resp)
        assert cookieless.get(resp.headers["Location"]).status_code == 200


def test_with_cookies_blocked_a_silent_sign_in_loop_ends_on_the_loop_page(app, cookieless,
                                                                          rp):
    for i in range(5):
        resp = silent_authorize(cookieless, rp[0], f"s{i}")
        assert query_of(resp.headers["Location"])["error"] == "login_required"
    resp = silent_authorize(cookieless, rp[0], "s5")
    assert resp.status_code == 200 and "Location" not in resp.headers
    assert "not keeping this site's cookies" in resp.text
    assert [e.data["cookies"] for e in events(app)] == [False]


def test_cookieless_loops_elsewhere_do_not_block_a_first_visit(app, cookieless, rp):
    """Same address, other browser; and a first visit that goes to the login page."""
    for i in range(6):
        silent_authorize(cookieless, rp[0], f"s{i}")
    other_browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Other/1.0"}
    resp = silent_authorize(cookieless, rp[0], "x", headers=other_browser)
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    assert_to_login(authorize(cookieless, rp[0], "first-visit"))


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


def test_with_its_storage_down_the_guard_still_counts_in_this_process(storage_down, client,
                                                                     signed_in, caplog):
    """And the outage costs one timeout, not one per request."""
    for i in range(5):
        assert_to_app_with_code(get_refresh(client, signed_in[0], state=f"s{i}"), f"s{i}")
    assert_loop_page(get_refresh(client, signed_in[0], state="s5"))
    assert caplog.text.count("loop guard storage unavailable") == 1
