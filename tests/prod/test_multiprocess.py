"""Two gunicorn servers behind one issuer: whatever one issues, the other honours (SPEC §6).

A and B are separate processes sharing only the PostgreSQL database, Redis, the keys
directory, the secret and the issuer URL (A's), as two machines behind one name would.
"""
from __future__ import annotations

import json

import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from prometheus_client.parser import text_string_to_metric_families

from prodkit import (PASSWORD, browser, csrf_from, exchange, get_code, postgres_only, refresh,
                     request_id)

pytestmark = postgres_only


def introspect(base, dep, token):
    return requests.post(base + "/introspect", data={"token": token},
                         auth=(dep.client_id, dep.client_secret), timeout=10).json()


def test_sign_in_on_a_exchange_and_refresh_on_b_revoke_on_a(pair):
    a, b = pair.servers
    code, verifier, nonce = get_code(browser(), a.url, pair.client_id)

    issued = exchange(b.url, pair, code, verifier)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    keys = KeySet.import_key_set(requests.get(b.url + "/.well-known/jwks.json", timeout=10).json())
    id_token = jwt.decode(tokens["id_token"], keys).claims
    assert id_token["iss"] == a.url and id_token["nonce"] == nonce
    assert jwt.decode(tokens["access_token"], keys).claims["iss"] == a.url
    for server in (a, b):
        info = requests.get(server.url + "/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert info.status_code == 200 and info.json()["sub"] == id_token["sub"]

    rotated = refresh(b.url, pair, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    current = rotated.json()["refresh_token"]
    assert introspect(b.url, pair, current)["active"] is True

    revoked = requests.post(a.url + "/revoke", data={"token": current},
                            auth=(pair.client_id, pair.client_secret), timeout=10)
    assert revoked.status_code == 200
    assert introspect(b.url, pair, current) == {"active": False}
    again = refresh(b.url, pair, current)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_each_server_counts_what_it_issued_in_its_metrics(pair):
    a, b = pair.servers
    code, verifier, _ = get_code(browser(), a.url, pair.client_id)
    tokens = exchange(b.url, pair, code, verifier).json()
    assert refresh(b.url, pair, tokens["refresh_token"]).status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(
        requests.get(b.url + "/metrics", timeout=10).text)}
    issued = {s.labels["grant_type"]: s.value for s in families["authserver_tokens_issued"].samples
              if s.name == "authserver_tokens_issued_total"}
    assert issued["authorization_code"] >= 1 and issued["refresh_token"] >= 1
    assert "authserver_mail_messages" in families


def test_discovery_is_identical_on_both_servers(pair):
    a, b = pair.servers
    docs = [requests.get(s.url + "/.well-known/openid-configuration", timeout=10).json()
            for s in (a, b)]
    assert docs[0] == docs[1] and docs[0]["issuer"] == a.url


def test_login_rate_limit_counts_are_shared_by_both_servers(pair):
    """RATELIMIT_LOGIN is 3 a minute here; the fourth POST /login, on either server, is 429."""
    a, b = pair.servers
    web = browser()
    token = csrf_from(web.get(a.url + "/login", timeout=10).text)
    answers = [web.post(server.url + "/login", timeout=10, allow_redirects=False,
                        data={"username": "mallory", "password": "not-the-password",
                              "csrf_token": token})
               for server in (a, b, a, b)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    other = browser()  # another client address still gets in
    token = csrf_from(other.get(b.url + "/login", timeout=10).text)
    assert other.post(b.url + "/login", data={"username": "mallory", "password": "x" * 9,
                                              "csrf_token": token}, timeout=10).status_code == 200


def test_log_lines_are_json_with_the_request_id_and_never_a_secret(pair):
    a, b = pair.servers
    web, rid, wrong = browser(), request_id(), "Wrong-" + PASSWORD
    token = csrf_from(web.get(b.url + "/login", timeout=10).text)
    web.post(b.url + "/login", data={"username": "alice", "password": wrong,
                                     "csrf_token": token}, headers={"X-Request-Id": rid},
             timeout=10)
    code, verifier, _ = get_code(browser(), a.url, pair.client_id)
    tokens = exchange(b.url, pair, code, verifier).json()
    rotated = refresh(a.url, pair, tokens["refresh_token"]).json()

    logs = a.stderr() + b.stderr()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == rid]
    assert any(line.get("event") == "login_failed" for line in mine), mine
    assert all(line.get("request_id") for line in lines if line.get("path"))
    secrets_used = [PASSWORD, wrong, code, verifier, tokens["refresh_token"],
                    tokens["access_token"], tokens["id_token"], rotated["refresh_token"],
                    rotated["access_token"], pair.client_secret, pair.cc_client_secret,
                    pair.env["AUTHSERVER_SECRET_KEY"]]
    everything = logs + a.stdout() + b.stdout()
    leaked = [s[:12] + "..." for s in secrets_used if s in everything]
    assert not leaked, f"secrets in server output: {leaked}"
