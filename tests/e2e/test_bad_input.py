"""Bad input never yields a 500 or a stack trace: malformed and oversized parameters, wrong
content types, unknown clients, repeated parameters, non-UTF-8 bytes and missing fields, on
every endpoint a stranger can reach, signed in and not."""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from jinja2 import StrictUndefined

from authserver import create_app
from authserver.extensions import db
from support import (PASSWORD, _empty_tables, base_settings, csrf_from, make_client, make_user,
                      pkce_pair)

BIG = "x" * 10_000
REDIRECT_URI = "http://127.0.0.1:9999/callback"
FORM = "application/x-www-form-urlencoded"
NOT_JSON_JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.bm90IGpzb24.c2ln"
BAD_HEADER_JWT = "bm90IGpzb24.e30.c2ln"


@dataclass
class World:
    client: FlaskClient
    cid: str
    secret: str
    pub: str
    challenge: str

    def csrf(self, path: str) -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def authorize(self, **params):
        base = {"response_type": "code", "client_id": self.cid, "redirect_uri": REDIRECT_URI,
                "scope": "openid", "state": "s", "code_challenge": self.challenge,
                "code_challenge_method": "S256"}
        base.update(params)
        return self.client.get("/authorize", query_string={k: v for k, v in base.items()
                                                           if v is not None})

    def token(self, data=None, **kwargs):
        kwargs.setdefault("auth", (self.cid, self.secret))
        return self.client.post("/token", data=data, **kwargs)

    def post_form(self, path: str, fields: dict, csrf_from_path: str | None = None):
        data = dict(fields)
        data["csrf_token"] = self.csrf(csrf_from_path or path)
        return self.client.post(path, data=data)


def basic(raw: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


CASES = {
    # /authorize
    "authorize-empty": lambda w: w.client.get("/authorize"),
    "authorize-big-client-id": lambda w: w.authorize(client_id=BIG),
    "authorize-big-everything": lambda w: w.client.get("/authorize", query_string={
        k: BIG for k in ("response_type", "client_id", "redirect_uri", "scope", "state",
                         "nonce", "code_challenge", "code_challenge_method", "prompt",
                         "max_age", "login_hint", "ui_locales", "claims", "request")}),
    "authorize-big-state": lambda w: w.authorize(state=BIG),
    "authorize-big-nonce": lambda w: w.authorize(nonce=BIG),
    "authorize-big-scope": lambda w: w.authorize(scope=BIG),
    "authorize-big-challenge": lambda w: w.authorize(code_challenge=BIG),
    "authorize-big-login-hint": lambda w: w.authorize(login_hint=BIG),
    "authorize-big-prompt": lambda w: w.authorize(prompt=BIG),
    "authorize-unknown-client": lambda w: w.authorize(client_id="nobody"),
    "authorize-unknown-scope": lambda w: w.authorize(scope="openid admin bogus"),
    "authorize-no-scope": lambda w: w.authorize(scope=None),
    "authorize-unknown-prompt": lambda w: w.authorize(prompt="select_account bogus"),
    "authorize-prompt-none-login": lambda w: w.authorize(prompt="none login"),
    "authorize-max-age-negative": lambda w: w.authorize(max_age="-1"),
    "authorize-max-age-text": lambda w: w.authorize(max_age="soon"),
    "authorize-max-age-huge": lambda w: w.authorize(max_age="9" * 400),
    "authorize-max-age-float": lambda w: w.authorize(max_age="1e309"),
    "authorize-null-byte": lambda w: w.authorize(state="a\x00b", nonce="\x00"),
    "authorize-repeated": lambda w: w.client.get(
        f"/authorize?response_type=code&client_id={w.cid}&client_id={w.cid}"
        f"&redirect_uri={REDIRECT_URI}&state=a&state=b&code_challenge={w.challenge}"
        "&code_challenge_method=S256"),
    "authorize-repeated-redirect": lambda w: w.client.get(
        f"/authorize?response_type=code&client_id={w.cid}&redirect_uri={REDIRECT_URI}"
        f"&redirect_uri=http://evil.example/&code_challenge={w.challenge}"
        "&code_challenge_method=S256"),
    "authorize-non-utf8": lambda w: w.client.get(
        f"/authorize?response_type=code&client_id={w.cid}&redirect_uri=%ff%fe"
        "&state=%c3%28&nonce=%80"),
    "authorize-non-utf8-client": lambda w: w.client.get("/authorize?client_id=%ff%fe%fd"),
    "authorize-post-no-csrf": lambda w: w.client.post("/authorize", data={"allow": "1"}),
    "authorize-post-json": lambda w: w.client.post("/authorize", json={"client_id": w.cid}),
    "authorize-request-object": lambda w: w.authorize(request=NOT_JSON_JWT),
    "authorize-put": lambda w: w.client.put("/authorize"),
    # /token
    "token-empty": lambda w: w.token(),
    "token-no-auth-empty": lambda w: w.client.post("/token"),
    "token-json-body": lambda w: w.token(json={"grant_type": "client_credentials"}),
    "token-json-body-code": lambda w: w.token(json={"grant_type": "authorization_code",
                                                    "code": "x"}),
    "token-text-body": lambda w: w.token(data="grant_type=client_credentials",
                                         content_type="text/plain"),
    "token-multipart": lambda w: w.token(data={"grant_type": "refresh_token",
                                               "refresh_token": "x"},
                                         content_type="multipart/form-data"),
    "token-big-grant": lambda w: w.token({"grant_type": BIG}),
    "token-big-code": lambda w: w.token({"grant_type": "authorization_code", "code": BIG,
                                         "redirect_uri": REDIRECT_URI, "code_verifier": BIG}),
    "token-big-redirect": lambda w: w.token({"grant_type": "authorization_code", "code": "x",
                                             "redirect_uri": BIG}),
    "token-big-refresh": lambda w: w.token({"grant_type": "refresh_token",
                                            "refresh_token": BIG}),
    "token-big-scope": lambda w: w.token({"grant_type": "refresh_token",
                                          "refresh_token": "x", "scope": BIG}),
    "token-big-client-id": lambda w: w.client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": BIG,
        "client_secret": BIG}),
    "token-missing-code": lambda w: w.token({"grant_type": "authorization_code"}),
    "token-missing-refresh": lambda w: w.token({"grant_type": "refresh_token"}),
    "token-repeated": lambda w: w.token(
        data="grant_type=refresh_token&grant_type=refresh_token&refresh_token=a&refresh_token=b",
        content_type=FORM),
    "token-non-utf8": lambda w: w.token(data=b"grant_type=refresh_token&refresh_token=\xff\xfe",
                                        content_type=FORM),
    "token-non-utf8-escaped": lambda w: w.token(
        data="grant_type=%ff%fe&refresh_token=%c3%28", content_type=FORM),
    "token-non-utf8-client": lambda w: w.client.post(
        "/token", data=b"grant_type=client_credentials&client_id=\xff&client_secret=\xfe",
        content_type=FORM),
    "token-basic-not-base64": lambda w: w.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not base64!!!"}),
    "token-basic-no-colon": lambda w: w.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(b"justanid")),
    "token-basic-non-utf8": lambda w: w.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(b"\xff\xfe:\xfd")),
    "token-basic-big": lambda w: w.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers=basic(BIG.encode() + b":" + BIG.encode())),
    "token-basic-and-post": lambda w: w.token({"grant_type": "client_credentials",
                                               "client_id": w.cid, "client_secret": "other"}),
    "token-bearer-auth": lambda w: w.client.post(
        "/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": "Bearer x"}),
    "token-public-with-secret": lambda w: w.client.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": w.pub,
        "client_secret": "x"}),
    "token-public-code": lambda w: w.client.post("/token", data={
        "grant_type": "authorization_code", "code": "x", "client_id": w.pub,
        "redirect_uri": REDIRECT_URI, "code_verifier": "y" * 43}),
    "token-get": lambda w: w.client.get("/token?grant_type=client_credentials"),
    "token-too-large": lambda w: w.token(data={"grant_type": "refresh_token",
                                               "refresh_token": "x" * (2 * 1024 * 1024)}),
    # /userinfo
    "userinfo-none": lambda w: w.client.get("/userinfo"),
    "userinfo-big": lambda w: w.client.get("/userinfo",
                                           headers={"Authorization": "Bearer " + BIG}),
    "userinfo-garbage": lambda w: w.client.get("/userinfo",
                                               headers={"Authorization": "Bearer a.b.c"}),
    "userinfo-not-json": lambda w: w.client.get(
        "/userinfo", headers={"Authorization": "Bearer " + NOT_JSON_JWT}),
    "userinfo-bad-header": lambda w: w.client.get(
        "/userinfo", headers={"Authorization": "Bearer " + BAD_HEADER_JWT}),
    "userinfo-dots": lambda w: w.client.get("/userinfo",
                                            headers={"Authorization": "Bearer ....."}),
    "userinfo-latin1": lambda w: w.client.get("/userinfo",
                                              headers={"Authorization": "Bearer \xff\xfe"}),
    "userinfo-basic": lambda w: w.client.get("/userinfo", headers=basic(b"a:b")),
    "userinfo-scheme-only": lambda w: w.client.get("/userinfo",
                                                   headers={"Authorization": "Bearer"}),
    "userinfo-post-form": lambda w: w.client.post("/userinfo", data={"access_token": "x"}),
    "userinfo-post-json": lambda w: w.client.post("/userinfo", json={"access_token": "x"}),
    "userinfo-delete": lambda w: w.client.delete("/userinfo"),
    # /revoke and /introspect
    **{f"{ep}-{name}": (lambda path, call: lambda w: call(w, path))(f"/{ep}", call)
       for ep in ("revoke", "introspect")
       for name, call in {
           "empty": lambda w, p: w.client.post(p),
           "no-token": lambda w, p: w.client.post(p, auth=(w.cid, w.secret)),
           "big-token": lambda w, p: w.client.post(p, data={"token": BIG,
                                                            "token_type_hint": BIG},
                                                   auth=(w.cid, w.secret)),
           "garbage-jwt": lambda w, p: w.client.post(p, data={"token": NOT_JSON_JWT},
                                                     auth=(w.cid, w.secret)),
           "bad-header-jwt": lambda w, p: w.client.post(p, data={"token": BAD_HEADER_JWT,
                                                                 "token_type_hint":
                                                                     "access_token"},
                                                        auth=(w.cid, w.secret)),
           "unknown-hint": lambda w, p: w.client.post(p, data={"token": "x",
                                                               "token_type_hint": "bogus"},
                                                      auth=(w.cid, w.secret)),
           "json": lambda w, p: w.client.post(p, json={"token": "x"}, auth=(w.cid, w.secret)),
           "non-utf8": lambda w, p: w.client.post(p, data=b"token=\xff\xfe", content_type=FORM,
                                                  auth=(w.cid, w.secret)),
           "repeated": lambda w, p: w.client.post(p, data="token=a&token=b",
                                                  content_type=FORM, auth=(w.cid, w.secret)),
           "unknown-client": lambda w, p: w.client.post(p, data={"token": "x"},
                                                        auth=("nobody", "x")),
           "public-client": lambda w, p: w.client.post(p, data={"token": "x",
                                                                "client_id": w.pub}),
           "get": lambda w, p: w.client.get(p + "?token=x"),
       }.items()},
    # /logout
    "logout-garbage-hint": lambda w: w.client.get("/logout?id_token_hint=a.b.c"),
    "logout-big-hint": lambda w: w.client.get("/logout", query_string={"id_token_hint": BIG}),
    "logout-not-json-hint": lambda w: w.client.get("/logout", query_string={
        "id_token_hint": NOT_JSON_JWT, "post_logout_redirect_uri": REDIRECT_URI}),
    "logout-bad-header-hint": lambda w: w.client.get("/logout", query_string={
        "id_token_hint": BAD_HEADER_JWT}),
    "logout-big-everything": lambda w: w.client.get("/logout", query_string={
        "client_id": BIG, "post_logout_redirect_uri": BIG, "state": BIG, "ui_locales": BIG}),
    "logout-unregistered-uri": lambda w: w.client.get("/logout", query_string={
        "client_id": w.cid, "post_logout_redirect_uri": "http://evil.example/"}),
    "logout-unknown-client": lambda w: w.client.get("/logout", query_string={
        "client_id": "nobody", "post_logout_redirect_uri": REDIRECT_URI}),
    "logout-repeated": lambda w: w.client.get(
        f"/logout?client_id={w.cid}&client_id=x&state=a&state=b"),
    "logout-non-utf8": lambda w: w.client.get("/logout?client_id=%ff&state=%fe&id_token_hint=%80"),
    "logout-post-no-csrf": lambda w: w.client.post("/logout"),
    "logout-post-json": lambda w: w.client.post("/logout", json={"state": "x"}),
    # /login
    "login-get-big": lambda w: w.client.get("/login", query_string={"next": BIG,
                                                                    "login_hint": BIG}),
    "login-get-evil-next": lambda w: w.client.get("/login?next=//evil.example/authorize"),
    "login-get-non-utf8": lambda w: w.client.get("/login?next=%ff%fe&login_hint=%80"),
    "login-post-big": lambda w: w.post_form("/login", {"username": BIG, "password": BIG}),
    "login-post-missing": lambda w: w.post_form("/login", {}),
    "login-post-unknown": lambda w: w.post_form("/login", {"username": "nobody",
                                                           "password": "x"}),
    "login-post-repeated": lambda w: w.client.post(
        "/login", data=f"username=a&username=b&password=x&password=y&csrf_token="
                       f"{w.csrf('/login')}", content_type=FORM),
    "login-post-non-utf8": lambda w: w.client.post(
        "/login", data=b"username=\xff\xfe&password=\xfd&csrf_token=" + w.csrf("/login").encode(),
        content_type=FORM),
    "login-post-null": lambda w: w.post_form("/login", {"username": "al\x00ice",
                                                        "password": "\x00"}),
    "login-post-no-csrf": lambda w: w.client.post("/login", data={"username": "alice",
                                                                  "password": "x"}),
    "login-post-json": lambda w: w.client.post("/login", json={"username": "alice"}),
    "login-post-big-csrf": lambda w: w.client.post("/login", data={"csrf_token": BIG}),
    # /forgot-password and /forgot-password/confirm
    "forgot-get-big": lambda w: w.client.get("/forgot-password", query_string={
        "username": BIG, "next": BIG}),
    "forgot-get-non-utf8": lambda w: w.client.get("/forgot-password?username=%ff%fe"),
    "forgot-post-big": lambda w: w.post_form("/forgot-password", {"username": BIG}),
    "forgot-post-missing": lambda w: w.post_form("/forgot-password", {}),
    "forgot-post-non-utf8": lambda w: w.client.post(
        "/forgot-password", data=b"username=\xff\xfe&csrf_token="
                                 + w.csrf("/forgot-password").encode(), content_type=FORM),
    "forgot-post-null": lambda w: w.post_form("/forgot-password", {"username": "\x00"}),
    "forgot-post-no-csrf": lambda w: w.client.post("/forgot-password", data={"username": "a"}),
    "forgot-post-json": lambda w: w.client.post("/forgot-password", json={"username": "a"}),
    "confirm-get-big": lambda w: w.client.get("/forgot-password/confirm",
                                              query_string={"username": BIG}),
    "confirm-get-non-utf8": lambda w: w.client.get("/forgot-password/confirm?username=%ff"),
    "confirm-post-big": lambda w: w.post_form("/forgot-password/confirm", {
        "username": BIG, "code": BIG, "password": BIG, "password_confirm": BIG}),
    "confirm-post-bad-code": lambda w: w.post_form("/forgot-password/confirm", {
        "username": "alice", "code": "abcdef", "password": "new password 1",
        "password_confirm": "new password 1"}),
    "confirm-post-wrong-code": lambda w: w.post_form("/forgot-password/confirm", {
        "username": "alice", "code": "123456", "password": "new password 1",
        "password_confirm": "new password 1"}),
    "confirm-post-mismatch": lambda w: w.post_form("/forgot-password/confirm", {
        "username": "alice", "code": "123456", "password": "a", "password_confirm": "b"}),
    "confirm-post-missing": lambda w: w.post_form("/forgot-password/confirm", {}),
    "confirm-post-non-utf8": lambda w: w.client.post(
        "/forgot-password/confirm",
        data=b"username=\xff&code=\xfe&password=\xfd&password_confirm=\xfd&csrf_token="
             + w.csrf("/forgot-password/confirm").encode(), content_type=FORM),
    "confirm-post-no-csrf": lambda w: w.client.post("/forgot-password/confirm",
                                                    data={"username": "a"}),
    "confirm-post-json": lambda w: w.client.post("/forgot-password/confirm", json={}),
    "resend-post-big": lambda w: w.post_form("/forgot-password/resend", {"username": BIG},
                                             "/forgot-password/confirm"),
    "resend-post-no-csrf": lambda w: w.client.post("/forgot-password/resend",
                                                   data={"username": "a"}),
    # /refresh
    "refresh-empty": lambda w: w.client.get("/refresh"),
    "refresh-big-everything": lambda w: w.client.get("/refresh", query_string={
        k: BIG for k in ("client_id", "redirect_uri", "state", "code_challenge",
                         "code_challenge_method", "nonce")}),
    "refresh-big-state": lambda w: w.client.get("/refresh", query_string={
        "client_id": w.cid, "redirect_uri": REDIRECT_URI, "state": BIG,
        "code_challenge": w.challenge, "code_challenge_method": "S256"}),
    "refresh-big-challenge": lambda w: w.client.get("/refresh", query_string={
        "client_id": w.cid, "redirect_uri": REDIRECT_URI, "state": "s",
        "code_challenge": BIG, "code_challenge_method": "S256"}),
    "refresh-plain": lambda w: w.client.get("/refresh", query_string={
        "client_id": w.cid, "redirect_uri": REDIRECT_URI, "state": "s",
        "code_challenge": "y" * 43, "code_challenge_method": "plain"}),
    "refresh-unknown-client": lambda w: w.client.get("/refresh", query_string={
        "client_id": "nobody", "redirect_uri": REDIRECT_URI}),
    "refresh-repeated": lambda w: w.client.get(
        f"/refresh?client_id={w.cid}&client_id=nobody&redirect_uri={REDIRECT_URI}"
        f"&redirect_uri=http://evil.example/&state=a&state=b"),
    "refresh-non-utf8": lambda w: w.client.get(
        f"/refresh?client_id={w.cid}&redirect_uri=%ff%fe&state=%80"),
    "refresh-non-utf8-client": lambda w: w.client.get("/refresh?client_id=%ff%fe"),
    "refresh-null": lambda w: w.client.get("/refresh", query_string={
        "client_id": w.cid, "redirect_uri": REDIRECT_URI, "state": "\x00"}),
    # the session cookie itself
    "cookie-garbage": lambda w: (w.client.set_cookie("authserver_session", "garbage" * 500),
                                 w.authorize())[1],
    "cookie-non-ascii": lambda w: (w.client.set_cookie("authserver_session", "\xff\xfe"),
                                   w.client.get("/login"))[1],
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, keys_dir, _database):
    """One app, user and pair of clients for the whole module (hundreds of cheap requests)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
        root = tmp_path_factory.mktemp("bad-input")
        app = create_app(base_settings(str(root), keys_dir, _database))
        app.jinja_env.undefined = StrictUndefined
        make_user(app)
        cid, secret = make_client(app, post_logout_redirect_uris=[REDIRECT_URI])
        pub, _ = make_client(app, "Public", public=True)
        yield app, cid, secret, pub
        with app.app_context():
            db.session.remove()
            _empty_tables()


@pytest.fixture
def world(shared):
    app, cid, secret, pub = shared
    return World(app.test_client(), cid, secret, pub, pkce_pair()[1])


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clean_answer(world, caplog, case, signed_in):
    if signed_in:
        resp = world.post_form("/login", {"username": "alice", "password": PASSWORD})
        assert resp.status_code == 303
    caplog.set_level(logging.ERROR)
    resp = CASES[case](world)
    body = resp.get_data()
    assert resp.status_code < 500, body[:2000]
    assert b"Traceback" not in body
    assert b'File "' not in body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]
    if resp.status_code in (301, 302, 303, 307, 308):
        assert not resp.headers["Location"].startswith("http://evil.example")
