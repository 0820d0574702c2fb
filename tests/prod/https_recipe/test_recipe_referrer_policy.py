"""Referrer-Policy on every hosted page keeps URLs from leaving for another origin: a link from
each page to another https origin (a small server recording the header) arrives without any
Referer, while same-origin form posts keep theirs (every form test of this suite)."""
from __future__ import annotations

import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import pytest

from httpskit import make_certificate
from prodkit import free_port, pkce_pair
from https_recipe.pages import ISSUER, sign_in_to_account

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class _Recorder(BaseHTTPRequestHandler):
    seen: list = []  # noqa: RUF012 (each server gets its own subclass)

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Referer")))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>elsewhere</h1>")

    def log_message(self, *args):
        pass


@pytest.fixture
def elsewhere(recipe, tmp_path):
    """Another origin over https (https://127.0.0.1:<port>) that records each request's Referer."""
    cert, key = make_certificate(tmp_path / "other", "127.0.0.1")
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    server.url = f"https://127.0.0.1:{server.server_address[1]}"
    server.seen = handler.seen
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def _follow_link(page, target: str) -> None:
    """A link on the page the browser is on, to `target`, clicked like a user would."""
    page.evaluate("""url => { const a = document.createElement('a'); a.href = url;
        a.id = 'out'; a.textContent = 'elsewhere'; document.body.appendChild(a); }""", target)
    page.locator("#out").click()
    page.wait_for_url(target)


def _hosted_pages(recipe, demo_port: int, profile: str) -> dict[str, str]:
    """Every kind of hosted page, as root sees it; the consent page carries state and PKCE."""
    _, challenge = pkce_pair()
    authorize = "/authorize?" + urlencode({
        "response_type": "code", "client_id": recipe.clients["demo"]["client_id"],
        "redirect_uri": f"http://127.0.0.1:{demo_port}/callback", "scope": "openid profile",
        "state": "s-" + secrets.token_hex(4), "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    return {"login": "/login?login_hint=root", "forgot": "/forgot-password",
            "confirm": "/forgot-password/confirm?username=root", "account": "/account",
            "mfa": "/account/mfa", "password": "/account/password", "users": "/admin/users?q=a",
            "profile": profile, "consent": authorize, "logout": "/logout",
            "error": "/authorize?client_id=nobody&response_type=code", "missing": "/nowhere"}


def test_no_hosted_page_sends_its_url_to_another_origin(recipe, browse, elsewhere, demo_port):
    page = browse()
    sign_in_to_account(page, "root")
    page.goto(f"{ISSUER}/admin/users?q=carol")
    profile = page.get_by_role("link", name="View profile", exact=True).first.get_attribute("href")
    pages = _hosted_pages(recipe, demo_port, urlsplit(profile).path)
    for name, path in pages.items():
        response = page.goto(ISSUER + path)
        assert response.headers.get("referrer-policy") == "same-origin", (name, response.url)
        _follow_link(page, f"{elsewhere.url}/from-{name}")
    followed = [(p, ref) for p, ref in elsewhere.seen if p.startswith("/from-")]
    assert [p for p, _ in followed] == [f"/from-{n}" for n in pages]
    leaked = [(p, ref) for p, ref in followed if ref]
    assert not leaked, f"hosted pages sent their URL to another origin: {leaked}"

    # The control: the same kind of link to the issuer's own origin keeps the full Referer.
    page.goto(f"{ISSUER}/account/mfa?from=here")
    with page.expect_request(f"{ISSUER}/forgot-password") as own:
        _follow_link(page, f"{ISSUER}/forgot-password")
    assert own.value.headers.get("referer") == f"{ISSUER}/account/mfa?from=here"
