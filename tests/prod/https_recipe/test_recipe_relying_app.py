"""A relying app over https: examples/demo_app (Authlib's Flask client) with a --third-party
client: the code flow with consent, the /refresh pop-up, and RP-initiated logout."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from flask import request
from playwright.sync_api import expect

from browser.conftest import load_demo_module
from prodkit import PASSWORD
from https_recipe.pages import ISSUER, hosted, post_by, signs_in
from support import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def relying_app(recipe, demo_port):
    """examples/demo_app (Authlib's Flask client) for the --third-party client, on http://127.0.0.1;
    it records the Referer of every request it gets."""
    info = recipe.clients["demo"]
    base = f"http://127.0.0.1:{demo_port}"
    app = load_demo_module().create_app({
        "issuer": ISSUER, "client_id": info["client_id"], "client_secret": info["client_secret"],
        "redirect_uri": f"{base}/callback", "base": base})
    referers: list[tuple[str, str | None]] = []

    @app.before_request
    def record():
        referers.append((request.path, request.headers.get("Referer")))

    server = LiveServer(app, demo_port).start()
    server.referers = referers
    yield server
    server.stop()


def test_relying_app_code_flow_consent_refresh_popup_and_logout(recipe, relying_app, browse):
    page = browse()
    page.clock.install()
    page.goto(relying_app.url + "/reports?year=2031")
    signs_in(page, "erin", PASSWORD)
    page.wait_for_url(hosted("/authorize"))  # consent: a --third-party client
    post_by(page, "Allow")
    page.wait_for_url(relying_app.url + "/reports?year=2031")
    expect(page.locator("#user-name")).to_have_text("Erin Example")
    first = page.locator("#token-id").inner_text()
    # The issuer's pages and redirects never told the app where the user came from.
    callbacks = [ref for path, ref in relying_app.referers if path == "/callback"]
    assert callbacks == [None], relying_app.referers

    # An hour later the pop-up asks to refresh; /refresh sends the browser straight back.
    page.clock.fast_forward("01:01:00")
    popup = page.get_by_role("dialog", name="Your session has expired")
    expect(popup).to_be_visible()
    page.clock.set_system_time(time.time())
    hops = []
    page.on("request", lambda r: hops.append(r.url) if r.is_navigation_request() else None)
    page.get_by_role("button", name="Refresh", exact=True).click()
    page.wait_for_url(relying_app.url + "/reports?year=2031")
    expect(page.locator("#token-id")).not_to_have_text(first)
    assert any(urlsplit(u).path == "/refresh" and u.startswith(ISSUER) for u in hops), hops
    assert not any(urlsplit(u).path == "/login" and u.startswith(ISSUER) for u in hops), hops

    # RP-initiated logout: id_token_hint and the registered post_logout_redirect_uri.
    hops.clear()
    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(hosted("/login"))  # back at the app, which sends a stranger to sign in
    assert any(urlsplit(u).path == "/logout" and u.startswith(ISSUER) for u in hops), hops
    assert relying_app.url + "/" in hops, hops
    page.goto(f"{ISSUER}/account")
    page.wait_for_url(hosted("/login"))
