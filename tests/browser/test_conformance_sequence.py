"""A relying party's conformance-style run in one real browser against one client (SPEC
section 7): many different authorization requests in a few seconds, some codes deliberately
never redeemed (wrong PKCE verifier, wrong client secret), errors of several kinds, a logout
and a new sign-in. None of it is a loop: the loop page never shows."""
from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask, request
from playwright.sync_api import expect
from sqlalchemy import select

from authserver.audit import SecurityEvent
from authserver.extensions import db
from support import LiveServer, free_port, make_client, pkce_pair, query_of

from .conftest import save_measure, sign_in

pytestmark = pytest.mark.browser

LOOP_TITLE = "We stopped a redirect loop"


class ConformanceRP:
    """The relying party: one client; its callback shows what came back."""

    def __init__(self, issuer):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redirect_uri, self.signed_out = f"{self.url}/cb", f"{self.url}/signed-out"
        self.issuer = issuer
        self.client_id, self.secret = make_client(
            issuer.app, "Conformance RP", redirect_uris=[self.redirect_uri],
            post_logout_redirect_uris=[self.signed_out])
        app = Flask("conformance_rp")
        app.add_url_rule("/cb", "cb", lambda: f"<h1>Callback</h1><p>{dict(request.args)}</p>")
        app.add_url_rule("/signed-out", "out", lambda: "<h1>Signed out</h1>")
        self.server = LiveServer(app, self.port).start()

    def request(self, endpoint="/authorize", **params) -> tuple[str, str]:
        verifier, challenge = pkce_pair()
        base = {"client_id": self.client_id, "redirect_uri": self.redirect_uri,
                "state": pkce_pair()[0][:16], "code_challenge": challenge,
                "code_challenge_method": "S256"}
        if endpoint == "/authorize":
            base.update(response_type="code", scope="openid")
        base.update(params)
        return f"{self.issuer.url}{endpoint}?{urlencode({k: v for k, v in base.items() if v})}", \
            verifier

    def redeem(self, code, verifier, secret=None) -> requests.Response:
        return requests.post(f"{self.issuer.url}/token", timeout=10,
                             auth=(self.client_id, secret or self.secret), data={
                                 "grant_type": "authorization_code", "code": code,
                                 "redirect_uri": self.redirect_uri, "code_verifier": verifier})


# The guard only counts within its windows, so windows three times as long make this run the
# equivalent of one three times as fast: the 30 s allowed below is the SPEC's 10 s, also on a
# busy machine where a browser takes longer than a person's test suite would.
SLOWDOWN = 3


@pytest.mark.issuer_settings(LOOP_WINDOW=20 * SLOWDOWN, LOOP_REDEEMED_WINDOW=60 * SLOWDOWN)
def test_a_conformance_run_in_one_browser_never_sees_the_loop_page(page, issuer, alice):
    rp = ConformanceRP(issuer)
    seen_loop = []
    page.on("response", lambda r: seen_loop.append(r.url) if r.status == 200
            and r.url.startswith(issuer.url) and r.request.is_navigation_request()
            and LOOP_TITLE in (r.text() if "html" in r.headers.get("content-type", "")
                               else "") else None)
    requests_made = []

    def visit(endpoint="/authorize", *, expect_login=False, consent=False, **params):
        url, verifier = rp.request(endpoint, **params)
        requests_made.append(url)
        page.goto(url)
        if expect_login:
            sign_in(page, *alice)
        if consent:
            page.get_by_role("button", name="Allow").click()
        page.wait_for_url(re.compile(re.escape(rp.redirect_uri) + r"\?"))
        answer = query_of(page.url)
        assert answer.get("iss") == issuer.url
        return answer, verifier

    start = time.monotonic()
    got, v = visit(expect_login=True)                                   # 1 sign-in
    assert rp.redeem(got["code"], v).status_code == 200
    got, v = visit(prompt="none")                                       # 2 silent
    tokens = rp.redeem(got["code"], v).json()
    got, _ = visit(prompt="none", scope="openid profile")               # 3 wrong verifier
    assert rp.redeem(got["code"], pkce_pair()[0]).json()["error"] == "invalid_grant"
    got, v = visit(scope="openid email")                                # 4 wrong secret
    assert rp.redeem(got["code"], v, secret="wrong").status_code == 401
    got, v = visit(prompt="login", expect_login=True)                   # 5 prompt=login
    assert got["code"]
    got, _ = visit(max_age="0", expect_login=True)                      # 6 max_age=0
    assert got["code"]
    assert visit(max_age="3600")[0]["code"]                             # 7
    assert visit(response_type="token")[0]["error"] == \
        "unsupported_response_type"                                     # 8 implicit refused
    assert visit(scope="openid nonsense")[0]["code"]                    # 9 unknown scope
    assert visit(nonce="n-conformance")[0]["code"]                      # 10 nonce
    assert visit(nonce="n-conformance")[0]["error"] == "invalid_request"  # 11 nonce replayed
    assert visit(prompt="consent", consent=True)[0]["code"]             # 12 consent
    assert visit(login_hint="alice")[0]["code"]                         # 13 login_hint
    assert visit("/refresh")[0]["code"]                                 # 14 /refresh
    assert visit(code_challenge_method="plain")[0]["error"] == "invalid_request"  # 15
    assert visit(code_challenge=None, code_challenge_method=None)[0]["error"] == \
        "invalid_request"                                               # 16 PKCE missing
    page.goto(f"{issuer.url}/logout?" + urlencode({                     # 17 logout
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": rp.signed_out}))
    page.wait_for_url(rp.signed_out)
    assert visit(prompt="none")[0]["error"] == "login_required"         # 18
    got, v = visit(expect_login=True)                                   # 19 new sign-in
    assert rp.redeem(got["code"], v).status_code == 200
    for _ in range(3):                                                  # 20-22 again
        got, v = visit()
        assert rp.redeem(got["code"], v).status_code == 200
    elapsed = time.monotonic() - start
    rp.server.stop()

    distinct = {re.sub(r"(state|code_challenge)=[^&]*&?", "", u) for u in requests_made}
    save_measure("conformance_sequence", {"requests": len(requests_made),
                                          "distinct_requests": len(distinct),
                                          "seconds": round(elapsed, 2)})
    assert len(distinct) >= 15
    assert elapsed < 10 * SLOWDOWN, f"the run took {elapsed:.1f} s"
    assert seen_loop == []
    expect(page.get_by_role("heading", name=LOOP_TITLE)).to_have_count(0)
    with issuer.app.app_context():
        assert db.session.scalars(select(SecurityEvent).where(
            SecurityEvent.name == "redirect_loop")).all() == []
