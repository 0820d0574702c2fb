"""Story 5 in a real browser: whatever the app or the cookies do, the bouncing stops on a page.

Each relying app here misbehaves on purpose and is served on its own port; the browser counts
the redirects it follows.
"""
from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask, redirect
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
    silent: ask /authorize with prompt=none (and retry on login_required).
    """

    def __init__(self, issuer, *, endpoint="/refresh", replay_state=False, silent=False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = f"{self.url}/callback"
        self.client_id, _ = make_client(issuer.app, "Bouncing app",
                                        redirect_uris=[self.redirect_uri])
        self.issuer_url, self.endpoint = issuer.url, endpoint
        self.replay_state, self.silent = replay_state, silent
        self.first_state = "st-" + secrets.token_urlsafe(8)
        app = Flask("bouncing_app")
        app.add_url_rule("/start", "start", lambda: redirect(self.target(first=True)))
        app.add_url_rule("/callback", "callback", lambda: redirect(self.target()))
        self.server = LiveServer(app, self.port).start()

    def target(self, first: bool = False) -> str:
        state = self.first_state if first or self.replay_state else "st-" + secrets.token_urlsafe(8)
        params = {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "state": state,
                  "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}
        if self.endpoint == "/authorize":
            params.update(response_type="code", scope="openid")
        if self.silent:
            params["prompt"] = "none"
        return f"{self.issuer_url}{self.endpoint}?{urlencode(params)}"


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


def test_an_app_that_rejects_every_code_ends_on_the_loop_page_at_the_sixth_trip(
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
    assert [e.data.get("reason") for e in loop_events(issuer)] == ["too_many_round_trips"]

    page.get_by_role("button", name="Start a clean sign-in").click()
    page.wait_for_url(f"{issuer.url}/login")


def test_authorize_and_refresh_count_together(page, issuer, alice, bouncing_app, redirects):
    sign_in_at_issuer(page, issuer, alice)
    app = bouncing_app(endpoint="/authorize")
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/authorize")
    assert round_trips(redirects, issuer, app) == 5


def test_a_replayed_state_ends_on_the_loop_page_at_once(
        page, issuer, alice, bouncing_app, redirects, screenshot):
    sign_in_at_issuer(page, issuer, alice)
    app = bouncing_app(replay_state=True)
    redirects.clear()
    page.goto(f"{app.url}/start")
    expect_loop_page(page, issuer, "/refresh")
    trips = round_trips(redirects, issuer, app)
    save_measure("loop_replayed_state", {"round_trips_before_loop_page": trips})
    assert trips == 1
    expect(page.get_by_text("a sign-in request it had already used")).to_be_visible()
    screenshot(page, "loop-page-replayed-state")
    assert [e.data.get("reason") for e in loop_events(issuer)] == ["state_replayed"]


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
