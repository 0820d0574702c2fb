"""Helpers shared by the tests: factories, browser-like steps, a live server.

Import them with `from support import ...`, never `from conftest import ...`: pytest
imports every conftest.py under the one module name `conftest`, so that import would
pick up whichever conftest was loaded last.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pyotp
from argon2.exceptions import VerifyMismatchError
from sqlalchemy.pool import NullPool
from werkzeug.serving import make_server

from authserver.accounts import services as accounts
from authserver.accounts.factors import totp
from authserver.accounts.models import User
from authserver.extensions import db
from authserver.oauth import services as oauth
from authserver.tokens import services as tokens


TEST_SECRET = "test-secret-key-0123456789abcdef"


PASSWORD = "correct horse battery staple"


FROZEN_AT = "2030-01-01T12:00:00Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(tmp_root) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_root}/authserver-test.db"


def is_postgres() -> bool:
    return (os.environ.get("DATABASE_URL") or "").startswith("postgres")


def base_settings(instance: str, keys_dir: str, url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "INSTANCE_PATH": instance,
        "KEYS_DIR": keys_dir,
        "DATABASE_URL": url,
        "ISSUER": "http://127.0.0.1:5000",
        "MAIL_TRANSPORT": "memory",
        "MAIL_SENDER_THREAD": False,
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_COST": 1024,
        "PASSWORD_HASH_PARALLELISM": 1,
        "RATELIMIT_ENABLED": False,
        # Every test builds its own app (and engine): without a pool, no test leaves
        # PostgreSQL connections behind to exhaust max_connections over a long run.
        **({"SQLALCHEMY_ENGINE_OPTIONS": {"poolclass": NullPool}} if url.startswith("postgres")
           else {}),
    }


class StubHasher:
    """A stand-in for argon2id, injected with the PASSWORD_HASHER setting: it counts its
    verifies, and verify() waits while `gate` is closed, so a test can hold every hashing
    slot for as long as it needs (tests are not timed). `delay`: seconds each verify
    sleeps, a check as slow as a real one without its CPU (for comparing medians)."""

    def __init__(self, delay: float = 0.0):
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()
        self.verifies = 0
        self.delay = delay

    def hash(self, password: str) -> str:
        return "stub$" + hashlib.sha256(password.encode()).hexdigest()

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifies += 1
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        if self.delay:
            time.sleep(self.delay)
        if password_hash != self.hash(password):
            raise VerifyMismatchError("stub mismatch")
        return True

    def check_needs_rehash(self, password_hash: str) -> bool:
        return False


def _empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


def make_user(app, username="alice", *, password=PASSWORD, email=None, name=None, admin=False,
              state=None):
    with app.app_context():
        user = accounts.new_user(username, email or f"{username}@example.com",
                                 name or username.title(), admin=admin)
        accounts.set_password(user, password)
        if state:
            user.state = state
        db.session.commit()
        return user.id


def give_totp(app, user_id, secret=None) -> str:
    """Give a user an authenticator app (sealed at rest, as enrolment stores it)."""
    secret = secret or pyotp.random_base32()
    with app.app_context():
        user = db.session.get(User, user_id)
        user.totp_secret = totp.seal(secret)
        user.mfa_version = (user.mfa_version or 0) + 1
        db.session.commit()
    return secret


def make_client(app, name="App", *, redirect_uris=("http://127.0.0.1:9999/callback",),
                **kwargs):
    with app.app_context():
        client, secret = oauth.create_client(name, list(redirect_uris), **kwargs)
        return client.client_id, secret


def client_for(client_id: str):
    """The registered client, or a stand-in (no licence needed) for unit tests that store
    tokens under a client id they never registered."""
    return oauth.query_client(client_id) or SimpleNamespace(client_id=client_id, id=None,
                                                            requires_licence=False)


def use_refresh_token(raw: str, client_id: str):
    """What the refresh grant does with a presented token: find it usable, then rotate it
    (the grant rotates in save_token, once the new access token is signed)."""
    row = tokens.usable_refresh_token(raw, client_for(client_id))
    return row if row is not None and tokens.rotate_refresh_token(row) else None


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def assert_medians_alike(medians: dict[str, float]) -> None:
    """SPEC 7's enumeration rule: median times (ms) within 30 % or 25 ms of each other,
    whichever is wider, for every pair of kinds of account."""
    for a, ma in medians.items():
        for b, mb in medians.items():
            assert abs(ma - mb) <= max(25.0, 0.3 * max(ma, mb)), (a, b, medians)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no csrf_token"
    return match.group(1)


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class AuthActions:
    """Browser-like steps through the hosted pages (flaskr's AuthActions idea)."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path: str) -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def login(self, username="alice", password=PASSWORD, next_url=None):
        path = "/login" + (f"?next={next_url}" if next_url else "")
        token = self.csrf(path)
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": token})

    def authorize(self, client_id, redirect_uri="http://127.0.0.1:9999/callback", **extra):
        verifier, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                  "scope": "openid profile email", "state": "st-" + secrets.token_hex(4),
                  "code_challenge": challenge, "code_challenge_method": "S256", **extra}
        resp = self.client.get("/authorize", query_string=params)
        return resp, verifier, params

    def code_flow(self, client_id, secret=None, redirect_uri="http://127.0.0.1:9999/callback",
                  **extra):
        """Authorize (signed in already) and exchange the code; returns the token response."""
        resp, verifier, params = self.authorize(client_id, redirect_uri, **extra)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        q = query_of(resp.headers["Location"])
        assert q["state"] == params["state"]
        data = {"grant_type": "authorization_code", "code": q["code"],
                "redirect_uri": redirect_uri, "code_verifier": verifier, "client_id": client_id}
        if secret:
            data["client_secret"] = secret
        return self.client.post("/token", data=data)


class LiveServer:
    def __init__(self, app, port):
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(5)
