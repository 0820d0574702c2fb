"""OpenID Connect Back-Channel Logout 1.0 (SPEC section 11): every way a session ends reaches
each app that got tokens in it, once, as a logout token that a real receiving app (on its own
port) validates against the issuer's JWKS with joserfc."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urljoin

import pytest
import requests
from flask import Flask, request
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from authserver import clock
from authserver.accounts import services as accounts
from authserver.accounts.models import BrowserSession, User
from authserver.admin import services as admin
from authserver.audit import SecurityEvent
from authserver.extensions import db
from authserver.mail.models import OutboxMessage
from authserver.mail.sender import TRANSPORT_EXT, deliver_due, send_pending
from authserver.oauth.backchannel import EVENT, KIND
from authserver.passwords import codes
from authserver.passwords import services as passwords
from support import PASSWORD, LiveServer, csrf_from, free_port, make_client, make_user, \
    pkce_pair, query_of

REDIRECT_URI = "http://127.0.0.1:9999/callback"
LOGOUT_URI = "http://127.0.0.1:9999/signed-out"


class Receiver:
    """A relying app's back-channel logout endpoint: validates each token like an app must
    (section 2.6), against the issuer's JWKS, and records what it accepted."""

    def __init__(self, issuer: str, port: int | None = None):
        self.issuer, self.port = issuer, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/backchannel-logout"
        self.accepted: list[dict] = []
        self.rejected: list[str] = []
        self.server = None
        app = Flask("receiver")
        app.add_url_rule("/backchannel-logout", "bcl", self.receive, methods=["POST"])
        self.app = app

    def receive(self):
        try:
            claims = self.validate(request.form["logout_token"])
        except Exception as exc:  # noqa: BLE001 (a bad token is a 400, recorded)
            self.rejected.append(repr(exc))
            return "bad token", 400
        self.accepted.append(claims)
        return "", 200

    def validate(self, raw: str) -> dict:
        keys = KeySet.import_key_set(requests.get(
            self.issuer + "/.well-known/jwks.json", timeout=5).json())
        token = jwt.decode(raw, keys, algorithms=["RS256", "ES256"])
        assert token.header["typ"] == "logout+jwt"
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.issuer}, aud={"essential": True},
            iat={"essential": True}, exp={"essential": True}, jti={"essential": True},
            sid={"essential": True}, sub={"essential": True}).validate(token.claims)
        assert token.claims["events"] == {EVENT: {}}
        assert "nonce" not in token.claims
        return token.claims

    def start(self):
        self.server = LiveServer(self.app, self.port).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def receiver(live_server):
    rec = Receiver(live_server.url).start()
    yield rec
    rec.stop()


@pytest.fixture
def apps(live_server, receiver):
    """alice; an app with a back-channel logout URI, and one without."""
    make_user(live_server.app)
    with_uri = make_client(live_server.app, "Listening app", backchannel_logout_uri=receiver.url,
                           post_logout_redirect_uris=[LOGOUT_URI])
    without = make_client(live_server.app, "Quiet app")
    return with_uri, without


class Browser:
    """A browser at the issuer (requests.Session): signs in, gets codes, redeems them."""

    def __init__(self, issuer: str):
        self.issuer, self.http = issuer, requests.Session()

    def sign_in(self):
        page = self.http.get(self.issuer + "/login", timeout=10)
        resp = self.http.post(self.issuer + "/login", allow_redirects=False, timeout=10, data={
            "username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)})
        assert resp.status_code == 303, resp.text
        return self

    def tokens(self, client) -> dict:
        verifier, challenge = pkce_pair()
        resp = self.http.get(self.issuer + "/authorize", allow_redirects=False, timeout=10,
                             params={"response_type": "code", "client_id": client[0],
                                     "redirect_uri": REDIRECT_URI, "state": "s",
                                     "scope": "openid offline_access",
                                     "code_challenge": challenge,
                                     "code_challenge_method": "S256"})
        assert resp.status_code == 302 and resp.headers["Location"].startswith(REDIRECT_URI)
        code = query_of(resp.headers["Location"])["code"]
        tok = requests.post(self.issuer + "/token", auth=client, timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier})
        assert tok.status_code == 200, tok.text
        return tok.json()


def deliver(app, now=None) -> None:
    """What the sender thread of a serving process does, once (no thread under tests)."""
    if now is None:
        send_pending(app, app.extensions[TRANSPORT_EXT])
    else:
        deliver_due(app, app.extensions[TRANSPORT_EXT], now=now)


def claims_of(issuer: str, id_token: str) -> dict:
    keys = KeySet.import_key_set(requests.get(issuer + "/.well-known/jwks.json", timeout=5).json())
    return jwt.decode(id_token, keys, algorithms=["RS256", "ES256"]).claims


def _user(app) -> User:
    return db.session.scalar(select(User).where(User.username == "alice"))


def _reset_by_code(app):
    user = _user(app)
    code = codes.issue_code(user, clock.now())
    db.session.commit()
    passwords.confirm_reset("alice", code, "a brand new passphrase 1")


def _expire_and_purge(app):
    db.session.execute(update(BrowserSession).values(expires_at=clock.now() - timedelta(seconds=1)))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "expired sessions ended: 1" in result.output


# Every way a session ends, each done as the code the pages and the API call does it.
TRIGGERS = {
    "password_change": lambda app: passwords.change_password(
        _user(app), "a brand new passphrase 1", current=PASSWORD),
    "password_reset": _reset_by_code,
    "admin_reset": lambda app: passwords.admin_reset(_user(app), None),
    "admin_disable": lambda app: admin.disable_user(_user(app), None),
    "admin_temporary_password": lambda app: passwords.send_temporary_password(_user(app), None),
    "admin_revoke": lambda app: admin.revoke_sessions(_user(app), None),
    "sign_out_everywhere": lambda app: accounts.sign_out_everywhere(_user(app)),
    "expired": _expire_and_purge,
}


def assert_one_token_for(receiver, client, id_token_claims):
    assert receiver.rejected == []
    assert len(receiver.accepted) == 1, receiver.accepted
    got = receiver.accepted[0]
    assert got["aud"] == client[0] or got["aud"] == [client[0]]
    assert got["sid"] == id_token_claims["sid"] and got["sub"] == id_token_claims["sub"]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_each_way_a_session_ends_sends_one_logout_token_per_app(live_server, receiver, apps,
                                                                trigger):
    listening, quiet = apps
    browser = Browser(live_server.url).sign_in()
    claims = claims_of(live_server.url, browser.tokens(listening)["id_token"])
    browser.tokens(listening)  # a second code in the same session: still one token
    browser.tokens(quiet)
    with live_server.app.app_context():
        TRIGGERS[trigger](live_server.app)
        rows = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND)))
        assert [r.to for r in rows] == [receiver.url]  # the app without a URI gets nothing
    deliver(live_server.app)
    assert_one_token_for(receiver, listening, claims)


def test_logout_at_the_issuer_sends_one_logout_token(live_server, receiver, apps):
    listening, _ = apps
    browser = Browser(live_server.url).sign_in()
    tokens = browser.tokens(listening)
    resp = browser.http.get(live_server.url + "/logout", allow_redirects=False, timeout=10,
                            params={"id_token_hint": tokens["id_token"],
                                    "post_logout_redirect_uri": LOGOUT_URI})
    assert resp.status_code == 302
    deliver(live_server.app)
    assert_one_token_for(receiver, listening, claims_of(live_server.url, tokens["id_token"]))


def test_refresh_token_reuse_ends_the_session_and_sends_one_logout_token(live_server, receiver,
                                                                         apps):
    listening, _ = apps
    browser = Browser(live_server.url).sign_in()
    tokens = browser.tokens(listening)
    old = tokens["refresh_token"]
    for expected in (200, 400):
        resp = requests.post(live_server.url + "/token", auth=listening, timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": old})
        assert resp.status_code == expected, resp.text
    deliver(live_server.app)
    assert_one_token_for(receiver, listening, claims_of(live_server.url, tokens["id_token"]))
    # the session is over: the next authorization request goes to the login page
    resp = browser.http.get(live_server.url + "/authorize", allow_redirects=False, timeout=10,
                            params={"response_type": "code", "client_id": listening[0],
                                    "redirect_uri": REDIRECT_URI, "scope": "openid",
                                    "code_challenge": pkce_pair()[1],
                                    "code_challenge_method": "S256"})
    assert resp.headers["Location"].startswith("/login")


def test_two_sessions_each_get_their_own_token(live_server, receiver, apps):
    listening, _ = apps
    sids = {claims_of(live_server.url, Browser(live_server.url).sign_in().tokens(listening)
                      ["id_token"])["sid"] for _ in range(2)}
    with live_server.app.app_context():
        admin.revoke_sessions(_user(live_server.app), None)
    deliver(live_server.app)
    assert {c["sid"] for c in receiver.accepted} == sids and len(receiver.accepted) == 2


def test_an_app_that_is_down_gets_its_token_once_it_is_back(live_server, receiver, apps):
    listening, _ = apps
    browser = Browser(live_server.url).sign_in()
    claims = claims_of(live_server.url, browser.tokens(listening)["id_token"])
    receiver.stop()
    with live_server.app.app_context():
        accounts.sign_out_everywhere(_user(live_server.app))
    deliver(live_server.app)
    deliver(live_server.app)  # not due yet: backing off
    with live_server.app.app_context():
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == KIND))
        assert row.attempts == 1 and row.sent_at is None and row.last_error
    receiver.start()
    deliver(live_server.app, now=clock.now() + timedelta(seconds=6))
    assert_one_token_for(receiver, listening, claims)


def test_a_delivery_that_finally_fails_is_a_security_event(live_server, receiver, apps):
    listening, _ = apps
    live_server.app.config["MAIL_MAX_ATTEMPTS"] = 2
    Browser(live_server.url).sign_in().tokens(listening)
    receiver.stop()
    with live_server.app.app_context():
        accounts.sign_out_everywhere(_user(live_server.app))
    deliver(live_server.app)
    deliver(live_server.app, now=clock.now() + timedelta(seconds=11))
    with live_server.app.app_context():
        events = list(db.session.scalars(select(SecurityEvent).where(
            SecurityEvent.name == "backchannel_logout_failed")))
    assert [e.client_id for e in events] == [listening[0]]
    assert receiver.accepted == []


def test_the_id_token_carries_sid_and_discovery_says_so(live_server, apps):
    listening, _ = apps
    browser = Browser(live_server.url).sign_in()
    first = claims_of(live_server.url, browser.tokens(listening)["id_token"])
    second = claims_of(live_server.url, browser.tokens(listening)["id_token"])
    assert first["sid"] == second["sid"] and len(first["sid"]) >= 16
    assert first["sid"] not in browser.http.cookies.values()
    meta = requests.get(live_server.url + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


def test_clients_create_takes_a_backchannel_logout_uri(live_server):
    runner = live_server.app.test_cli_runner()
    result = runner.invoke(args=["clients", "create", "CLI app", "--redirect-uri", REDIRECT_URI,
                                 "--backchannel-logout-uri", "https://app.example/bcl", "--json"])
    assert result.exit_code == 0, result.output
    assert '"backchannel_logout_uri": "https://app.example/bcl"' in result.output
    bad = runner.invoke(args=["clients", "create", "Bad", "--redirect-uri", REDIRECT_URI,
                              "--backchannel-logout-uri", "http://app.example/bcl"])
    assert bad.exit_code != 0 and "https" in bad.output


def test_a_token_is_not_lost_when_the_receiver_answers_an_error(live_server, apps):
    """A 500 from the app is a failed try like a refused connection: retried later."""
    listening, _ = apps
    Browser(live_server.url).sign_in().tokens(listening)
    with live_server.app.app_context():
        accounts.sign_out_everywhere(_user(live_server.app))
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == KIND))
        row.to = urljoin(live_server.url, "/nowhere")
        db.session.commit()
    deliver(live_server.app)
    with live_server.app.app_context():
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == KIND))
        assert row.sent_at is None and row.attempts == 1 and "HTTP" in row.last_error

