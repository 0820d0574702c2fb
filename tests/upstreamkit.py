"""Upstream OpenID providers for tests, real HTTP servers on 127.0.0.1 free ports.

- `mock_provider(users)`: `oidc-provider-mock` from PyPI (nobody here wrote it), whose
  authorization page asks for a `sub` and signs in as that user with its claims.
- `AuthserverProcess(root)`: a second Authserver in its own gunicorn process, as production
  starts it, on http://localhost:PORT; `.app` seeds its database from the test.
- `ForgedProvider`: a small OpenID provider whose ID tokens each test shapes (claims,
  header, key, alg none), for the negative tests of the callback. It counts JWKS fetches.
- `walk(client, location, sub=None)`: follow Authserver's redirect to the upstream as a
  browser would, and return the callback URL the upstream sends the browser back to.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support import TEST_SECRET, base_settings, free_port
from werkzeug.serving import make_server

from authserver import create_app
from authserver.config import PROJECT_ROOT
from authserver.extensions import db

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


class AuthserverProcess:
    """A second Authserver as an upstream: its own process, started as production starts it
    (`gunicorn -c deploy/gunicorn.conf.py wsgi:app`, one worker), with its own SQLite
    database, signing keys and port. Its issuer is http://localhost:PORT, another host than
    the first server's 127.0.0.1, so the browser keeps the two servers' cookies apart as it
    would for two real sites.

    `app` is an app on the same database and secret key in this process, for the test to add
    users, clients and authenticators (the server reads them from the database); it never
    serves. stop() ends the process group it started, by its PID, and checks it is gone."""

    def __init__(self, root: Path, **settings: str):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.database_url = f"sqlite:///{self.root}/upstream.db"
        self.log_path = self.root / "gunicorn.log"
        (self.root / "metrics").mkdir(parents=True, exist_ok=True)
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env.update({
            "PYTHONPATH": str(PROJECT_ROOT), "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4",
            "PROMETHEUS_MULTIPROC_DIR": str(self.root / "metrics"),
            "AUTHLIB_INSECURE_TRANSPORT": "1",  # http on loopback, as the test's own server
            "DATABASE_URL": self.database_url, "MAIL_TRANSPORT": "memory",
            "AUTHSERVER_ISSUER": self.url, "AUTHSERVER_SECRET_KEY": TEST_SECRET,
            "AUTHSERVER_KEYS_DIR": str(self.root / "keys"),
            "AUTHSERVER_INSTANCE_PATH": str(self.root / "instance"),
            "AUTHSERVER_RATELIMIT_ENABLED": "false",
            "AUTHSERVER_PASSWORD_HASH_TIME_COST": "1",
            "AUTHSERVER_PASSWORD_HASH_MEMORY_COST": "8192",
            **{f"AUTHSERVER_{k}": v for k, v in settings.items()}})
        self.proc: subprocess.Popen | None = None
        self.app = None

    def start(self, timeout: float = 60) -> AuthserverProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=log,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the upstream Authserver exited:\n{self.log()}"
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the upstream never got ready:\n{self.log()}"
            time.sleep(0.1)
        settings = base_settings(str(self.root / "seed"), str(self.root / "keys"),
                                 self.database_url)
        settings["ISSUER"] = self.url
        self.app = create_app(settings)  # the schema is there: wsgi.py made it
        return self

    def stop(self) -> None:
        if self.app is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        deadline = time.monotonic() + 5  # its worker too: nothing left in its process group
        while self.running():
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)

    def running(self) -> bool:
        """Whether any process of the group it started (gunicorn and its worker) is left."""
        if self.proc is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-3000:]


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
