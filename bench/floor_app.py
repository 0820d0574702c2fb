"""The benchmark floor: the least a Flask token endpoint can do.

One POST route that signs one RS256 JWT per request with joserfc (a 2048-bit RSA key
generated when the worker starts) and returns it as a token response. bench/run.py
serves it under the same gunicorn settings as Authserver and reports every figure
as a ratio of this one, so results compare across machines. GET /hello is the floor for
discovery and JWKS (bench/peer.py): Flask answering a small JSON document.
"""
from __future__ import annotations

import secrets
import time

from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import RSAKey

KEY = RSAKey.generate_key(2048, parameters={"kid": "floor", "alg": "RS256"})
HEADER = {"alg": "RS256", "typ": "at+jwt", "kid": "floor"}

app = Flask(__name__)


@app.post("/token")
def token():
    now = int(time.time())
    claims = {"iss": "http://127.0.0.1", "sub": "floor", "aud": "floor", "client_id": "floor",
              "iat": now, "exp": now + 3600, "jti": secrets.token_urlsafe(16), "scope": ""}
    access = jwt.encode(HEADER, claims, KEY, algorithms=["RS256"])
    resp = jsonify(access_token=access, token_type="Bearer", expires_in=3600)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@app.get("/hello")
def hello():
    """The floor for discovery and JWKS: Flask answering a small JSON document."""
    resp = jsonify(hello="world")
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@app.get("/healthz")
def healthz():
    return "ok"
