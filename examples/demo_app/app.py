"""Demo relying app for Authserver: the code flow with PKCE through Authlib's Flask client,
tokens kept server-side, the signed-in user's name, the access token's remaining lifetime, a
/userinfo call, and the session-refresh pop-up when the access token expires.

    python examples/demo_app/app.py [--port 5001] [--config instance/demo.json]

`authserver run --demo` starts it on the issuer's port + 1. Settings come from the JSON file
that `--demo` writes (client_id, client_secret, redirect_uri, base, issuer) or from
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI, DEMO_BASE and DEMO_ISSUER.

When a session at the issuer ends (sign-out elsewhere, a password reset, an administrator),
the issuer POSTs a logout token to /backchannel-logout; the demo checks it and drops every
session of its own that came from that issuer session.

The demo deliberately does not use its refresh token, so the pop-up shows when the access
token expires; its *Refresh* button goes to /login, which sends a browser that was signed in
before to the issuer's /refresh and one that never was to /authorize.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
REFRESH_PARAMS = ("client_id", "redirect_uri", "state", "code_challenge",
                  "code_challenge_method", "nonce")


class TokenStore:
    """Tokens by the demo's own session id, in memory (a real app would use its database)."""

    def __init__(self):
        self._rows: dict[str, dict] = {}
        self._lock = threading.Lock()

    def get(self, sid: str | None) -> dict | None:
        with self._lock:
            return self._rows.get(sid) if sid else None

    def put(self, sid: str, row: dict) -> None:
        with self._lock:
            self._rows[sid] = row

    def pop(self, sid: str | None) -> dict | None:
        with self._lock:
            return self._rows.pop(sid, None) if sid else None

    def end_issuer_session(self, issuer_sid: str) -> int:
        """Drop every row signed in through that session at the issuer (the ID token's sid)."""
        with self._lock:
            ours = [k for k, row in self._rows.items() if row["claims"].get("sid") == issuer_sid]
            for key in ours:
                del self._rows[key]
            return len(ours)


def load_config(path: str | None = None) -> dict:
    """The JSON file written by `authserver run --demo`, overridden by DEMO_* variables."""
    cfg: dict = {}
    path = path or os.environ.get("DEMO_CONFIG") or os.path.join("instance", "demo.json")
    if os.path.exists(path):
        with open(path) as fh:
            data = json.load(fh)
        cfg.update(data.get("client", {}))
        if data.get("issuer"):
            cfg["issuer"] = data["issuer"]
    for key in ("client_id", "client_secret", "redirect_uri", "base", "issuer"):
        if os.environ.get(f"DEMO_{key.upper()}"):
            cfg[key] = os.environ[f"DEMO_{key.upper()}"]
    cfg.setdefault("issuer", "http://127.0.0.1:5000")
    cfg.setdefault("base", "http://127.0.0.1:5001")
    cfg.setdefault("redirect_uri", cfg["base"] + "/callback")
    missing = [k for k in ("client_id", "client_secret") if not cfg.get(k)]
    if missing:
        raise SystemExit(f"demo app: no {', '.join(missing)}; run `authserver run --demo` "
                         f"first or set DEMO_CLIENT_ID and DEMO_CLIENT_SECRET")
    return cfg


def create_app(cfg: dict) -> Flask:
    """One demo app for one issuer and one registered client."""
    app = Flask(__name__, root_path=os.path.dirname(os.path.abspath(__file__)))
    app.config.update(SECRET_KEY=cfg.get("secret_key") or secrets.token_urlsafe(32),
                      # The issuer's cookie lives on the same host (cookies ignore ports).
                      SESSION_COOKIE_NAME="demo_app_session", SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_HTTPONLY=True, DEMO=dict(cfg))
    issuer = cfg["issuer"].rstrip("/")
    oauth = OAuth(app)
    oauth.register("authserver", client_id=cfg["client_id"], client_secret=cfg["client_secret"],
                   server_metadata_url=f"{issuer}/.well-known/openid-configuration",
                   client_kwargs={"scope": "openid profile email offline_access",
                                  "code_challenge_method": "S256"})
    store = TokenStore()
    register_routes(app, oauth.authserver, store, issuer)
    return app


def register_routes(app: Flask, client, store: TokenStore, issuer: str) -> None:
    redirect_uri = app.config["DEMO"]["redirect_uri"]

    def current() -> dict | None:
        return store.get(session.get("sid"))

    def page(template: str, **extra):
        row = current()
        if row is None:
            return redirect(url_for("login", return_to=request.full_path.rstrip("?")))
        return render_template(template, row=row, issuer=issuer, now=int(time.time()), **extra)

    @app.get("/")
    def index():
        return page("index.html")

    @app.get("/reports")
    def reports():
        return page("reports.html", year=request.args.get("year", "2030")[:4])

    @app.get("/login")
    def login():
        """Sign in, or sign in again through /refresh when this browser was signed in before."""
        session["return_to"] = safe_return(request.args.get("return_to"))
        if not session.get("known_user"):
            return client.authorize_redirect(redirect_uri)
        rv = client.create_authorization_url(redirect_uri)
        client.save_authorize_data(redirect_uri=redirect_uri, **rv)
        query = dict(parse_qsl(urlsplit(rv["url"]).query))
        params = {k: query[k] for k in REFRESH_PARAMS if k in query}
        return redirect(f"{issuer}/refresh?{urlencode(params)}")

    @app.get("/callback")
    def callback():
        # RFC 9207: the response names its issuer; one from another issuer is a mix-up attack.
        if request.args.get("iss") != issuer:
            return render_template("error.html", error="wrong_issuer",
                                   description="This answer did not come from our issuer."), 400
        try:
            token = client.authorize_access_token()
        except OAuthError as exc:
            # Never bounce straight back to the issuer: show a page with a link instead.
            return render_template("error.html", error=exc.error,
                                   description=exc.description), 400
        sid = session.get("sid") or secrets.token_urlsafe(24)
        store.put(sid, {"token": token, "claims": dict(token.get("userinfo") or {}),
                        "token_id": token_id(token["access_token"])})
        session["sid"] = sid
        session["known_user"] = True
        return redirect(session.pop("return_to", None) or url_for("index"))

    @app.get("/api/userinfo")
    def api_userinfo():
        """Call the issuer's /userinfo with the access token; a 401 tells the page it expired."""
        row = current()
        if row is None:
            return jsonify(error="not_signed_in"), 401
        meta = client.load_server_metadata()
        resp = requests.get(meta["userinfo_endpoint"], timeout=10, headers={
            "Authorization": f"Bearer {row['token']['access_token']}"})
        if resp.status_code == 401:
            return jsonify(error="session_expired"), 401
        return jsonify(resp.json()), resp.status_code

    @app.get("/logout")
    def logout():
        row = store.pop(session.get("sid"))
        session.clear()
        if row is None or "id_token" not in row["token"]:
            return redirect(url_for("index"))
        meta = client.load_server_metadata()
        return redirect(meta["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": row["token"]["id_token"], "client_id": client.client_id,
            "post_logout_redirect_uri": app.config["DEMO"]["base"] + "/"}))

    @app.post("/backchannel-logout")
    def backchannel_logout():
        """OpenID Connect Back-Channel Logout 1.0: the issuer says a session ended; end ours."""
        raw = request.form.get("logout_token", "")
        try:
            try:
                claims = validate_logout_token(raw, client.fetch_jwk_set(), issuer,
                                               client.client_id)
            except JoseError:  # perhaps a new signing key: fetch the JWKS again, once
                claims = validate_logout_token(raw, client.fetch_jwk_set(force=True), issuer,
                                               client.client_id)
        except (JoseError, ValueError) as exc:
            return jsonify(error="invalid_request", error_description=str(exc)), 400
        store.end_issuer_session(claims["sid"])
        return "", 200

    @app.template_filter("remaining")
    def remaining(expires_at: int) -> int:
        return max(0, int(expires_at) - int(time.time()))

    @app.after_request
    def no_store(resp):
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def validate_logout_token(raw: str, jwks: dict, issuer: str, client_id: str) -> dict:
    """Section 2.6 of the spec: signature by the issuer's keys, typ, iss, aud, iat/exp, the
    event, a sid, and no nonce. Raises JoseError or ValueError."""
    token = jwt.decode(raw, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    if token.header.get("typ") != "logout+jwt":
        raise ValueError("not a logout token")
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer},
                          aud={"essential": True, "value": client_id},
                          iat={"essential": True}, exp={"essential": True},
                          sid={"essential": True}).validate(token.claims)
    if BACKCHANNEL_EVENT not in (token.claims.get("events") or {}) or "nonce" in token.claims:
        raise ValueError("not a back-channel logout event")
    return token.claims


def safe_return(value: str | None) -> str:
    """Only a path on this app: never another site (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value[:2000]


def token_id(access_token: str) -> str:
    """A short fingerprint to tell one access token from the next without showing it."""
    return hashlib.sha256(access_token.encode()).hexdigest()[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--config", help="JSON file (default: instance/demo.json)")
    args = parser.parse_args()
    app = create_app(load_config(args.config))
    print(f"Demo app for issuer {app.config['DEMO']['issuer']} on http://{args.host}:{args.port}/")
    app.run(args.host, args.port, threaded=True)


if __name__ == "__main__":
    main()
