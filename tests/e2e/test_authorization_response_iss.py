"""RFC 9207: every authorization response, from /authorize and /refresh, codes and errors alike,
carries `iss`; an RP using Authlib's client parses it and checks it against discovery."""
from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import MismatchingStateException
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssMetadata

from support import PASSWORD, csrf_from, make_client, make_user, pkce_pair

REDIRECT_URI = "http://127.0.0.1:9999/callback"


class IssCheckingRP:
    """What an RP does per RFC 9207 section 2.4, with Authlib: discovery validated by
    Authlib's metadata classes, the response parsed by Authlib, `iss` compared exactly."""

    def __init__(self, issuer: str, client_id: str, secret: str):
        self.meta = AuthorizationServerMetadata(requests.get(
            issuer + "/.well-known/openid-configuration", timeout=10).json())
        self.meta.validate(metadata_classes=[IssMetadata])
        assert self.meta["authorization_response_iss_parameter_supported"] is True
        self.session = OAuth2Session(client_id, secret, scope="openid", redirect_uri=REDIRECT_URI,
                                     code_challenge_method="S256")

    def authorization_url(self, **extra) -> tuple[str, str]:
        return self.session.create_authorization_url(
            self.meta["authorization_endpoint"], code_verifier=secrets.token_urlsafe(48),
            **extra)

    def check(self, location: str, state: str | None) -> dict:
        """The callback: Authlib parses it; a missing or foreign `iss` is refused."""
        if "error=" in location:
            params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        else:
            params = parse_authorization_code_response(location, state)
        if params.get("iss") != self.meta["issuer"]:
            raise MismatchingStateException()  # mix-up: the response is from another issuer
        return params


@pytest.fixture
def rp(live_server):
    make_user(live_server.app)
    client_id, secret = make_client(live_server.app, "RP", redirect_uris=[REDIRECT_URI])
    third = make_client(live_server.app, "Third", redirect_uris=[REDIRECT_URI],
                        first_party=False)
    return IssCheckingRP(live_server.url, client_id, secret), client_id, third


def hop(http, url) -> str:
    resp = http.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text[:300]
    return resp.headers["Location"]


def test_every_authorization_response_carries_the_issuer(live_server, rp):
    checker, client_id, third = rp
    http = requests.Session()
    url, state = checker.authorization_url(prompt="none")
    assert checker.check(hop(http, url), state)["error"] == "login_required"
    page = http.get(live_server.url + "/login", timeout=10)
    http.post(live_server.url + "/login", timeout=10, allow_redirects=False, data={
        "username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)})
    cases = [checker.authorization_url(), checker.authorization_url(prompt="none"),
             checker.authorization_url(scope="openid unknown"),
             checker.authorization_url(response_type="token")]
    answers = [checker.check(hop(http, u), s) for u, s in cases]
    assert answers[0]["code"] and answers[1]["code"]
    assert answers[2]["code"]  # an unknown scope is left out (RFC 6749 section 3.3)
    assert answers[3]["error"] == "unsupported_response_type"
    no_pkce = (f"{checker.meta['authorization_endpoint']}?response_type=code&client_id="
               f"{client_id}&redirect_uri={REDIRECT_URI}&scope=openid&state=x")
    assert checker.check(hop(http, no_pkce), "x")["error"] == "invalid_request"
    silent_third = (f"{checker.meta['authorization_endpoint']}?response_type=code&client_id="
                    f"{third[0]}&redirect_uri={REDIRECT_URI}&scope=openid&state=y&prompt=none"
                    f"&code_challenge={pkce_pair()[1]}&code_challenge_method=S256")
    assert checker.check(hop(http, silent_third), "y")["error"] == "consent_required"
    refresh = (f"{live_server.url}/refresh?client_id={client_id}&redirect_uri={REDIRECT_URI}"
               f"&state=r&code_challenge={pkce_pair()[1]}&code_challenge_method=S256")
    assert checker.check(hop(http, refresh), "r")["code"]
    bad_refresh = (f"{live_server.url}/refresh?client_id={client_id}"
                   f"&redirect_uri={REDIRECT_URI}&state=q")
    assert checker.check(hop(http, bad_refresh), "q")["error"] == "invalid_request"


def test_the_rp_refuses_a_response_without_our_issuer(live_server, rp):
    checker, _, _ = rp
    with pytest.raises(MismatchingStateException):
        checker.check(REDIRECT_URI + "?code=abc&state=s", "s")
    with pytest.raises(MismatchingStateException):
        checker.check(REDIRECT_URI + "?code=abc&state=s&iss=https%3A%2F%2Fevil.example", "s")
