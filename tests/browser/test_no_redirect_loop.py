"""Story 5 in a real browser: whatever the app or the cookies do, the bouncing stops on a page.

Each relying app here misbehaves on purpose and is served on its own port; the browser counts
the redirects it follows.
"""
from __future__ import annotations

import json
import re
import secrets
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from flask import Flask, redirect, request
from playwright.sync_api import expect
from sqlalchemy import select

from authserver.audit import SecurityEvent
from authserver.extensions import db
from support import LiveServer, free_port, make_client, pkce_pair

from .conftest import copy_to_docs, save_measure, sign_in

pytestmark = pytest.mark.browser

LOOP_TITLE = "We stopped a redirect loop"


class BouncingApp:
    """A relying app that never accepts what it gets and goes straight back to the issuer.

    endpoint: "/refresh" or "/authorize"; replay_state: send its first state every time;
    silent: ask /authorize with prompt=none (and retry on login_required); redeem: redeem
    each code at /token first (then reject the tokens anyway); state_cookie: keep its state
    in a cookie set on the wrong path, so the browser never sends it back to /callback.
    """

    def __init__(self, issuer, *, endpoint="/refresh", replay_state=False, silent=False,
                 redeem=False, state_cookie=False, extra=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = f"{self.url}/callback"
        self.client_id, self.secret = make_client(issuer.app, "Bouncing app",
                                                  redirect_uris=[self.redirect_uri])
        self.issuer_url, self.endpoint = issuer.url, endpoint
        self.replay_state, self.silent = replay_state, silent
        self.redeem, self.state_cookie, self.extra = redeem, state_cookie, extra or {}
        self.first_state = "st-" + secrets.token_urlsafe(8)
        self.verifiers: dict[str, str] = {}
        self.redeemed = 0
        app = Flask("bouncing_app")
        app.add_url_rule("/start", "start", lambda: self.go(first=True))
        app.add_url_rule("/callback", "callback", self.callback)
        self.server = LiveServer(app, self.port).start()

    def go(self, first: bool = False):
        url, state = self.target(first)
        resp = redirect(url)
        if self.state_cookie:
            resp.set_cookie("app_state", state, path="/elsewhere")
        return resp

    def callback(self):
        if self.state_cookie and request.cookies.get("app_state") != request.args.get("state"):
            return self.go()  # "state mismatch": start over, as a careless app does
        code, state = request.args.get("code"), request.args.get("state")
        if self.redeem and code:
            tok = requests.post(self.issuer_url + "/token", auth=(self.client_id, self.secret),
                                timeout=10, data={
                                    "grant_type": "authorization_code", "code": code,
                                    "redirect_uri": self.redirect_uri,
                                    "code_verifier": self.verifiers.get(state, "")})
            assert tok.status_code == 200, tok.text
            self.redeemed += 1
            # A script navigation, as a single-page app does: a chain of HTTP redirects would
            # hit the browser's own limit of 20 long before.
            url, _ = self.target()
            return f"<script>location.replace({json.dumps(url)})</script>"
        return self.go()

    def target(self, first: bool = False) -> tuple[str, str]:
        state = self.first_state if first or self.replay_state else "st-" + secrets.token_urlsafe(8)
        verifier, challenge = pkce_pair()
        self.verifiers[state] = verifier
        params = {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "state": state,
                  "code_challenge": challenge, "code_challenge_method": "S256", **self.extra}
        if self.endpoint == "/authorize":
            params.update(response_type="code", scope="openid")
        if self.silent:
            params["prompt"] = "none"
        return f"{self.issuer_url}{self.endpoint}?{urlencode(params)}", state


@pytest.fixture
def bouncing_app(issuer):
    apps = []

    def make(**kwargs) -> BouncingApp:
        apps.append(BouncingApp(issuer, **kwargs))
        return apps[-1]

    yield make
    for app in apps:
        app.server.stop()


def sign_in_at_issuer(page, issuer, alice) -> None:
    page.goto(f"{issuer.url}/login")
    sign_in(page, *alice)
    page.wait_for_url(f"{issuer.url}/account")


def loop_events(issuer) -> list[SecurityEvent]:
    with issuer.app.app_context():
        return list(db.session.scalars(select(SecurityEvent).where(
            SecurityEvent.name == "redirect_loop")))


def round_trips(redirects, issuer, app) -> int:
    """Redirects from the issuer to the app: each one is a round trip the app asked for."""
    return sum(1 for h in redirects.from_origin(issuer.url) if h.location.startswith(app.url))


def expect_loop_page(page, issuer, endpoint):
    expect(page.get_by_role("heading", name=LOOP_TITLE)).to_be_visible()
    assert urlsplit(page.url).path == endpoint
    assert page.url.startswith(issuer.url)


def test_an_app_that_never_redeems_its_codes_ends_on_the_loop_page_at_the_sixth_trip(
        page, issuer, alice, bouncing_app, redirects, screenshot):
    sign_in_at_issuer(page, issuer, alice)
    app = bouncing_app()
    redirects.clear()
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/refresh")
    trips = round_trips(redirects, issuer, app)
    save_measure("loop_rejecting_app", {"round_trips_before_loop_page": trips,
                                        "browser_redirects": len(redirects.hops)})
    assert trips == 5
    expect(page.get_by_text("Clear cache")).to_be_visible()
    path = screenshot(page, "loop-page")
    copy_to_docs(path, "loop-page.png")
    assert [e.data.get("reason") for e in loop_events(issuer)] == ["codes_not_redeemed"]

    page.get_by_role("button", name="Start a clean sign-in").click()
    page.wait_for_url(f"{issuer.url}/login")


def test_an_app_that_redeems_every_code_and_comes_straight_back_stops_by_the_twentieth(
        page, issuer, alice, bouncing_app, redirects):
    sign_in_at_issuer(page, issuer, alice)
    app = bouncing_app(endpoint="/authorize", redeem=True)
    redirects.clear()
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/authorize")
    assert round_trips(redirects, issuer, app) == 19 and app.redeemed == 19
    assert [e.data.get("reason") for e in loop_events(issuer)] == ["codes_rejected"]


def test_an_app_whose_state_cookie_is_dropped_ends_on_the_loop_page(
        page, issuer, alice, bouncing_app, redirects):
    sign_in_at_issuer(page, issuer, alice)
    app = bouncing_app(endpoint="/authorize", state_cookie=True)
    redirects.clear()
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/authorize")
    assert round_trips(redirects, issuer, app) == 5


def test_prompt_none_answered_login_required_again_and_again_ends_on_the_loop_page(
        page, issuer, bouncing_app, redirects):
    page.goto(f"{issuer.url}/login")  # the issuer's cookie, no session
    app = bouncing_app(endpoint="/authorize", silent=True)
    redirects.clear()
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/authorize")
    assert round_trips(redirects, issuer, app) == 5
    assert [e.data.get("reason") for e in loop_events(issuer)] == ["same_error"]


def test_the_login_page_is_never_replaced_by_the_loop_page(page, issuer, alice, bouncing_app):
    """max_age=0 and prompt=login show the login page each time, however often they come."""
    sign_in_at_issuer(page, issuer, alice)
    for extra in ({"max_age": "0"}, {"prompt": "login"}):
        app = bouncing_app(endpoint="/authorize", extra=extra)
        for _ in range(8):
            page.goto(f"{app.url}/start")
            page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?next="))
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert loop_events(issuer) == []


def test_five_tabs_refreshing_at_once_all_succeed(context, issuer, alice):
    """Five tabs of one app go to /refresh at the same moment; each comes back signed in."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_id, secret = make_client(issuer.app, "Tabbed app", redirect_uris=[f"{base}/cb"])
    verifiers = {}
    app = Flask("tabbed_app")

    @app.get("/go/<tab>")
    def go(tab):
        verifier, challenge = pkce_pair()
        verifiers[tab] = verifier
        return redirect(f"{issuer.url}/refresh?" + urlencode({
            "client_id": client_id, "redirect_uri": f"{base}/cb", "state": tab,
            "code_challenge": challenge, "code_challenge_method": "S256"}))

    @app.get("/cb")
    def cb():
        tab = request.args["state"]
        tok = requests.post(f"{issuer.url}/token", auth=(client_id, secret), timeout=10, data={
            "grant_type": "authorization_code", "code": request.args.get("code", ""),
            "redirect_uri": f"{base}/cb", "code_verifier": verifiers.get(tab, "")})
        return f"<h1>{'Signed in' if tok.status_code == 200 else 'Failed'} in {tab}</h1>"

    server = LiveServer(app, port).start()
    try:
        first = context.new_page()
        first.goto(f"{issuer.url}/login")
        sign_in(first, *alice)
        first.wait_for_url(f"{issuer.url}/account")
        tabs = [context.new_page() for _ in range(5)]
        for i, tab in enumerate(tabs):  # location.href returns at once: the five race
            tab.evaluate(f"window.location.href = '{base}/go/tab{i}'")
        for i, tab in enumerate(tabs):
            expect(tab.get_by_role("heading", name=f"Signed in in tab{i}")).to_be_visible()
    finally:
        server.stop()
    assert loop_events(issuer) == []


def test_with_cookies_blocked_refresh_stops_on_the_login_page(
        cookie_blocking_context, issuer, alice, bouncing_app):
    app = bouncing_app()
    page = cookie_blocking_context(issuer.url).new_page()
    page.goto(f"{app.url}/start")
    page.wait_for_url(re.compile(re.escape(issuer.url) + r"/login\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.context.cookies(issuer.url) == []


def test_with_cookies_blocked_a_silent_sign_in_loop_ends_on_the_loop_page(
        cookie_blocking_context, issuer, bouncing_app, screenshot):
    """prompt=none answers login_required each time; the app asks again at once."""
    app = bouncing_app(endpoint="/authorize", silent=True)
    page = cookie_blocking_context(issuer.url).new_page()
    hops = []
    page.on("response", lambda r: hops.append(r) if r.status in (302, 303) else None)
    page.goto(f"{app.url}/start")
    expect(page.get_by_role("heading", name=LOOP_TITLE)).to_be_visible()
    expect(page.get_by_text("not keeping this site's cookies")).to_be_visible()
    trips = sum(1 for r in hops if r.url.startswith(issuer.url)
                and r.headers.get("location", "").startswith(app.url))
    save_measure("loop_cookies_blocked", {"round_trips_before_loop_page": trips})
    assert trips == 5
    screenshot(page, "loop-page-cookies-blocked")
    assert [e.data.get("cookies") for e in loop_events(issuer)] == [False]
