"""Back-channel logout with two server processes on one PostgreSQL database: each process's
outbox sender races the other for the rows, and every logout token still arrives exactly once."""
from __future__ import annotations

import threading
import time

import pytest
import requests
from flask import Flask, request
from joserfc import jwt
from joserfc.jwk import KeySet

from prodkit import (REDIRECT_URI, Deployment, Gunicorn, _last_json_line, browser, cli,
                     csrf_from, deployment_env, done, exchange, free_port, get_code,
                     pg_server_url, postgres_only, scratch_database, seed, stop_all)
from support import LiveServer

pytestmark = postgres_only
SESSIONS = 6


class SlowReceiver:
    """Takes 0.3 s per token, so both senders find rows due while the other is busy."""

    def __init__(self, issuer: str):
        self.issuer, self.port = issuer, free_port()
        self.url = f"http://127.0.0.1:{self.port}/bcl"
        self.jtis: list[str] = []
        self.sids: list[str] = []
        self.lock = threading.Lock()
        app = Flask("slow_receiver")
        app.add_url_rule("/bcl", "bcl", self.receive, methods=["POST"])
        self.server = LiveServer(app, self.port)

    def receive(self):
        keys = KeySet.import_key_set(requests.get(self.issuer + "/.well-known/jwks.json",
                                                  timeout=5).json())
        token = jwt.decode(request.form["logout_token"], keys, algorithms=["RS256", "ES256"])
        assert token.header["typ"] == "logout+jwt" and token.claims["iss"] == self.issuer
        time.sleep(0.3)
        with self.lock:
            self.jtis.append(token.claims["jti"])
            self.sids.append(token.claims["sid"])
        return "", 200


@pytest.fixture
def deployment(tmp_path):
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    receiver = SlowReceiver(issuer)
    receiver.server.start()
    with scratch_database(pg_server_url(), prefix="authserver_bcl") as db_url:
        env = deployment_env(db_url, tmp_path, issuer, AUTHSERVER_RATELIMIT_ENABLED="false")
        dep = Deployment(env, db_url, tmp_path)
        servers = [Gunicorn(name, env, port, tmp_path, workers=1, threads=4)
                   for name, port in (("A", port_a), ("B", port_b))]
        try:
            seed(dep, servers=servers)
            info = _last_json_line(done(cli(env, "clients", "create", "Listening app",
                                            "--redirect-uri", REDIRECT_URI,
                                            "--backchannel-logout-uri", receiver.url, "--json")))
            dep.client_id, dep.client_secret = info["client_id"], info["client_secret"]
            yield dep, receiver
        finally:
            stop_all(servers)
            receiver.server.stop()


def test_two_processes_deliver_each_logout_token_once(deployment):
    dep, receiver = deployment
    a, b = dep.servers
    webs, sids = [], set()
    for i in range(SESSIONS):
        web, server = browser(), (a, b)[i % 2]
        code, verifier, _ = get_code(web, server.url, dep.client_id)
        tokens = exchange((b, a)[i % 2].url, dep, code, verifier).json()
        sids.add(jwt.decode(tokens["id_token"], KeySet.import_key_set(requests.get(
            a.url + "/.well-known/jwks.json", timeout=5).json())).claims["sid"])
        webs.append(web)
    account = webs[0].get(a.url + "/account", timeout=10)
    resp = webs[0].post(a.url + "/account/sessions/revoke", allow_redirects=False, timeout=10,
                        data={"csrf_token": csrf_from(account.text)})
    assert resp.status_code == 303
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(receiver.jtis) < SESSIONS:
        time.sleep(0.2)
    time.sleep(2)  # a duplicate would arrive within a poll or two
    assert sorted(receiver.sids) == sorted(sids) and len(sids) == SESSIONS
    assert len(set(receiver.jtis)) == len(receiver.jtis) == SESSIONS
    rows = dep.sql("SELECT attempts, sent_at IS NOT NULL FROM outbox_messages "
                   "WHERE kind = 'backchannel_logout'")
    assert rows == [(1, True)] * SESSIONS
