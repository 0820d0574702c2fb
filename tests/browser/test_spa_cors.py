"""A single-page app in Chromium (SPEC section 7, issue 20): examples/spa, served by its own
serve.py on its own origin, redeems its code at /token, calls /userinfo with a bearer token
(preflighted), rotates and revokes its refresh token, all from JavaScript; a page on an origin
that is not the client's gets no CORS answer. 127.0.0.1:PORT_A and 127.0.0.1:PORT_B are
different origins to the browser."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from authserver.config import PROJECT_ROOT
from authserver.extensions import db
from authserver.tokens.models import RefreshToken, RevokedAccessToken
from support import free_port, make_client

from .conftest import at, press, sign_in

pytestmark = pytest.mark.browser

SERVE = PROJECT_ROOT / "examples" / "spa" / "serve.py"

# fetch() from the page; each call gives an HTTP status, or the error's name when the
# browser hides the answer (a refused CORS check rejects with TypeError "Failed to fetch").
CALLS = """async ([issuer, clientId]) => {
  const form = (body) => ({method: "POST", body: new URLSearchParams(body)});
  const calls = {
    token: [issuer + "/token", form({grant_type: "refresh_token", refresh_token: "x",
                                     client_id: clientId})],
    userinfo: [issuer + "/userinfo", {headers: {Authorization: "Bearer x"}}],
    revoke: [issuer + "/revoke", form({token: "x", client_id: clientId})],
    discovery: [issuer + "/.well-known/openid-configuration", {}],
  };
  const out = {};
  for (const [name, [url, init]] of Object.entries(calls)) {
    try { out[name] = (await fetch(url, init)).status; } catch (e) { out[name] = e.name; }
  }
  return out;
}"""


@dataclass
class Spa:
    url: str
    client_id: str
    process: subprocess.Popen


def serve_spa(issuer_url: str, client_id: str, port: int) -> Spa:
    """examples/spa/serve.py as the README runs it; stopped by the caller (stop)."""
    proc = subprocess.Popen([sys.executable, str(SERVE), "--issuer", issuer_url, "--client-id",
                             client_id, "--port", str(port)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Spa(f"http://127.0.0.1:{port}", client_id, proc)
        except OSError:
            assert proc.poll() is None, "serve.py exited"
            assert time.monotonic() < deadline, "serve.py did not start within 10 s"
            time.sleep(0.05)


def stop(spa: Spa) -> None:
    spa.process.terminate()
    spa.process.wait(5)


@pytest.fixture
def issuer_requests(issuer):
    """(method, path, Origin) of every request that reached the issuer."""
    seen: list[tuple[str, str, str | None]] = []
    inner = issuer.app.wsgi_app

    def record(environ, start_response):
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_ORIGIN")))
        return inner(environ, start_response)

    issuer.app.wsgi_app = record
    yield seen
    issuer.app.wsgi_app = inner


@pytest.fixture
def spa(issuer):
    """examples/spa registered as a public client whose redirect URI is its own page."""
    for attempt in range(3):  # a free port can be taken by another process before serve.py binds
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        client_id, _ = make_client(issuer.app, f"SPA {attempt}", redirect_uris=[base + "/"],
                                   post_logout_redirect_uris=[base + "/"], public=True)
        try:
            app = serve_spa(issuer.url, client_id, port)
            break
        except AssertionError:
            if attempt == 2:
                raise
    yield app
    stop(app)


@pytest.fixture
def other_origin(issuer, spa):
    """The same page on another port: an origin that is not the client's."""
    other = serve_spa(issuer.url, spa.client_id, free_port())
    yield other
    stop(other)


def log_items(page):
    return page.locator("#log li")


def refresh_rows(issuer, client_id):
    with issuer.app.app_context():
        rows = list(db.session.scalars(select(RefreshToken).where(
            RefreshToken.client_id == client_id).order_by(RefreshToken.id)))
        revoked = db.session.scalar(select(db.func.count()).select_from(RevokedAccessToken))
        db.session.remove()
    return rows, revoked


def sign_in_at_spa(page, spa, alice):
    page.goto(spa.url + "/")
    press(page, "Sign in")
    sign_in(page, *alice)
    page.wait_for_url(at(spa.url, "/"))
    expect(page.locator("#status")).to_have_text("Signed in as Alice Example")


def test_spa_redeems_calls_userinfo_rotates_and_revokes_from_its_origin(
        page, issuer, spa, alice, issuer_requests, screenshot):
    sign_in_at_spa(page, spa, alice)
    assert page.url == spa.url + "/"  # the code left the address bar
    assert ("POST", "/token", spa.url) in issuer_requests
    assert ("OPTIONS", "/userinfo", spa.url) in issuer_requests  # the preflight
    assert ("GET", "/userinfo", spa.url) in issuer_requests

    press(page, "Refresh tokens")
    expect(log_items(page).filter(has_text="refresh token rotated")).to_have_count(1)
    rows, _ = refresh_rows(issuer, spa.client_id)
    assert len(rows) == 2 and rows[0].rotated_at and not rows[1].rotated_at
    assert rows[0].family_id == rows[1].family_id

    press(page, "Call /userinfo")
    expect(log_items(page).filter(has_text="Called /userinfo: alice")).to_have_count(2)
    expect(page.locator("#userinfo")).to_contain_text('"preferred_username": "alice"')

    press(page, "Revoke tokens")
    expect(page.locator("#status")).to_have_text("Signed out of this app (tokens revoked)")
    rows, revoked_access = refresh_rows(issuer, spa.client_id)
    assert all(r.revoked_at for r in rows)
    assert revoked_access == 1
    expect(page.locator("#log li.error")).to_have_count(0)
    screenshot(page, "spa-after-revoke")


def test_page_on_another_origin_gets_no_cors_answer(page, issuer, spa, other_origin,
                                                   issuer_requests):
    page.goto(spa.url + "/")
    own = page.evaluate(CALLS, [issuer.url, spa.client_id])
    assert own == {"token": 400, "userinfo": 401, "revoke": 200, "discovery": 200}

    page.goto(other_origin.url + "/")
    other = page.evaluate(CALLS, [issuer.url, spa.client_id])
    assert other == {"token": "TypeError", "userinfo": "TypeError", "revoke": "TypeError",
                     "discovery": 200}
    # The form POST was sent and its answer hidden; the bearer call never left the preflight.
    assert ("POST", "/token", other_origin.url) in issuer_requests
    assert ("OPTIONS", "/userinfo", other_origin.url) in issuer_requests
    assert ("GET", "/userinfo", other_origin.url) not in issuer_requests


def test_spa_shows_the_session_expired_pop_up_and_comes_back_signed_in(
        page, context, issuer, spa, alice, screenshot):
    sign_in_at_spa(page, spa, alice)
    issuer_tab = context.new_page()  # the user signs out of the issuer in another tab
    issuer_tab.goto(issuer.url + "/logout")
    press(issuer_tab, "Sign out")
    issuer_tab.close()

    press(page, "Refresh tokens")  # the session's refresh tokens ended with it
    dialog = page.get_by_role("dialog", name="Your session has expired")
    expect(dialog).to_be_visible()
    screenshot(page, "spa-session-expired")
    page.get_by_role("button", name="Refresh", exact=True).click()
    sign_in(page, *alice)  # /refresh found no session: through the login page
    page.wait_for_url(at(spa.url, "/"))
    expect(page.locator("#status")).to_have_text("Signed in as Alice Example")
    expect(dialog).to_have_count(0)
