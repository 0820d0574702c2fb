"""Upstream OpenID providers for tests, real HTTP servers on 127.0.0.1 free ports.

- `mock_provider(users)`: `oidc-provider-mock` from PyPI (nobody here wrote it), whose
  authorization page asks for a `sub` and signs in as that user with its claims.
- `ForgedProvider`: a small OpenID provider whose ID tokens each test shapes (claims,
  header, key, alg none), for the negative tests of the callback. It counts JWKS fetches.
- `walk(client, location, sub=None)`: follow Authserver's redirect to the upstream as a
  browser would, and return the callback URL the upstream sends the browser back to.
"""
from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
import warnings
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support import free_port
from werkzeug.serving import make_server

MOCK_WARNINGS = r".*(get_jwt_config|authlib\.jose|httpx module).*"

with warnings.catch_warnings():  # oidc-provider-mock imports Authlib modules Authlib deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    from oidc_provider_mock import User, run_server_in_thread


@contextlib.contextmanager
def mock_provider(users=()):
    """oidc-provider-mock on a free port; yields its issuer URL (http://localhost:PORT).

    Its server thread uses Authlib APIs that Authlib deprecates; those warnings (errors
    under this suite's settings) are ignored while it runs, and only those."""
    warnings.filterwarnings("ignore", message=MOCK_WARNINGS, category=DeprecationWarning)
    with run_server_in_thread(port=free_port(), require_nonce=True,
                              user_claims=[User(sub=u["sub"], claims={k: v for k, v in u.items()
                                                                      if k != "sub"})
                                           for u in users]) as server:
        yield f"http://localhost:{server.server_port}"


class ForgedProvider:
    """An OpenID provider whose next ID token is shaped by the test."""

    def __init__(self, client_id="authserver", issuer_path=""):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url + issuer_path
        self.client_id = client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"})
        self.jwks_fetches = 0
        self.token_requests = []
        self.claims = {}  # merged into the next ID tokens
        self.header = {}
        self.sign_with = self.key
        self.alg_none = False
        self.error = None  # the authorization endpoint answers with this error
        self.down = False
        self._codes = {}
        app = Flask("forged")
        meta_path = urlsplit(self.issuer).path.rstrip("/")

        @app.get(meta_path + "/.well-known/openid-configuration")
        def meta():
            if self.down:
                return "down", 503
            return jsonify(issuer=self.issuer, authorization_endpoint=self.url + "/authorize",
                           token_endpoint=self.url + "/token", jwks_uri=self.url + "/jwks",
                           response_types_supported=["code"],
                           id_token_signing_alg_values_supported=["RS256"])

        @app.get("/jwks")
        def jwks():
            self.jwks_fetches += 1
            return jsonify(KeySet([self.key]).as_dict(private=False))

        @app.get("/authorize")
        def authorize():
            args = request.args
            back = args["redirect_uri"]
            if self.error:
                return redirect(back + "?" + urlencode({"error": self.error,
                                                        "state": args["state"]}))
            code = secrets.token_urlsafe(16)
            self._codes[code] = dict(args)
            return redirect(back + "?" + urlencode({"code": code, "state": args["state"]}))

        @app.post("/token")
        def token():
            if self.down:
                return "down", 503
            self.token_requests.append(dict(request.form))
            req = self._codes.pop(request.form.get("code"), None)
            if req is None:
                return jsonify(error="invalid_grant"), 400
            return jsonify(access_token="at", token_type="Bearer", expires_in=60,
                           id_token=self.id_token(nonce=req.get("nonce")))

        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                         kwargs={"poll_interval": 0.05}, daemon=True)

    def id_token(self, **extra) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": "forged-sub-1",
                  "iat": now, "exp": now + 300, **extra, **self.claims}
        claims = {k: v for k, v in claims.items() if v is not None}
        if self.alg_none:
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        header = {"alg": "RS256", "kid": self.sign_with.kid, **self.header}
        return jwt.encode(header, claims, self.sign_with)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(5)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def walk(location: str, sub: str | None = None) -> str:
    """Follow the redirect to the upstream's authorization page as a browser; return the
    URL it sends the browser back to (oidc-provider-mock: choose `sub` on its form)."""
    if sub is None:
        resp = requests.get(location, allow_redirects=False, timeout=10)
    else:
        resp = requests.post(location, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert resp.status_code in (302, 303), resp.text[:500]
    return resp.headers["Location"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
