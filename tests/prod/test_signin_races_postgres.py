"""Issue 10 on PostgreSQL, two gunicorn servers: a recovery code is spent once even by ten
racing sign-ins, and ten racing wrong codes after four wrong ones get exactly one evaluation
(the fifth) before the sign-in ends."""
from __future__ import annotations

import re
import threading

import pyotp
import pytest
import requests
from prodkit import (
    PASSWORD,
    Deployment,
    Gunicorn,
    browser,
    csrf_from,
    deployment_env,
    free_port,
    pg_server_url,
    postgres_only,
    scratch_database,
    seed,
    stop_all,
)

pytestmark = postgres_only


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    """Servers A and B sharing one PostgreSQL database; rate limits in memory (not the point)."""
    root = tmp_path_factory.mktemp("signin")
    port_a, port_b = free_port(), free_port()
    with scratch_database(pg_server_url(), prefix="authserver_signin") as db_url:
        env = deployment_env(db_url, root, f"http://127.0.0.1:{port_a}",
                             AUTHSERVER_RATELIMIT_LOGIN="10000 per minute",
                             AUTHSERVER_MAIL_TRANSPORT="console")
        dep = Deployment(env, db_url, root)
        servers = [Gunicorn(n, env, p, root, workers=2, threads=8)
                   for n, p in (("A", port_a), ("B", port_b))]
        try:
            seed(dep, users=("alice", "bob"), servers=servers)
            yield dep
        finally:
            stop_all(servers)


def race(n: int, call) -> list:
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - a failure is a result to assert on
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def post(web: requests.Session, url: str, **fields) -> requests.Response:
    page = web.get(url, timeout=10)
    return web.post(url, data={"csrf_token": csrf_from(page.text), **fields},
                    allow_redirects=False, timeout=10)


def sign_in_to_code_step(base: str, username: str) -> requests.Session:
    web = browser()
    resp = post(web, base + "/login", username=username, password=PASSWORD)
    assert resp.headers["Location"] == "/login/mfa", resp.text[:300]
    return web


def enrol(base: str, username: str) -> tuple[str, list[str]]:
    """Turn the second step on through /account/mfa; returns (secret, recovery codes)."""
    web = browser()
    post(web, base + "/login", username=username, password=PASSWORD)
    page = web.get(base + "/account/mfa", timeout=10).text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    resp = web.post(base + "/account/mfa", data={"csrf_token": csrf_from(page),
                                                 "code": pyotp.TOTP(secret).now()}, timeout=10)
    codes = re.findall(r"<code>([A-Z2-7-]{19})</code>", resp.text)
    assert len(codes) == 10, resp.text[:500]
    return secret, codes


def test_ten_concurrent_uses_of_one_recovery_code_exactly_one_wins(duo):
    a, b = (s.url for s in duo.servers)
    _, codes = enrol(a, "alice")
    bases = [(a, b)[i % 2] for i in range(10)]
    webs = [sign_in_to_code_step(base, "alice") for base in bases]
    tokens = [csrf_from(web.get(base + "/login/mfa").text) for web, base in zip(webs, bases)]

    results = race(10, lambda i: webs[i].post(
        bases[i] + "/login/mfa", data={"csrf_token": tokens[i], "code": codes[0]},
        allow_redirects=False, timeout=10))

    signed_in = [r for r in results if isinstance(r, requests.Response)
                 and r.status_code == 303 and r.headers["Location"].endswith("/account")]
    assert len(signed_in) == 1, [getattr(r, "status_code", r) for r in results]
    assert all(isinstance(r, requests.Response) and r.status_code < 500 for r in results)
    left = duo.sql("SELECT count(*) FROM recovery_codes rc JOIN users u ON u.id = rc.user_id "
                   "WHERE u.username = 'alice'")
    assert left == [(9,)]


def test_ten_concurrent_wrong_codes_after_four_wrong_end_the_sign_in_at_the_fifth(duo):
    a, b = (s.url for s in duo.servers)
    secret, _ = enrol(b, "bob")
    web = sign_in_to_code_step(a, "bob")
    right = pyotp.TOTP(secret).now()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(4):
        resp = post(web, a + "/login/mfa", code=wrong)
        assert resp.status_code == 200 and "not right" in resp.text
    token = csrf_from(web.get(a + "/login/mfa").text)
    copies = []
    for _ in range(10):  # the same cookie in ten browsers
        copy = requests.Session()
        copy.cookies.update(web.cookies)
        copy.headers.update(web.headers)
        copies.append(copy)

    results = race(10, lambda i: copies[i].post(
        (a, b)[i % 2] + "/login/mfa", data={"csrf_token": token, "code": wrong},
        allow_redirects=False, timeout=10))

    assert all(isinstance(r, requests.Response) and r.status_code < 500 for r in results)
    rows = duo.sql("SELECT s.otp_tries, s.ended_reason FROM sign_ins s JOIN users u "
                   "ON u.id = s.user_id WHERE u.username = 'bob' ORDER BY s.id DESC LIMIT 1")
    assert rows == [(5, "mfa_failures")]
    evaluated = duo.sql("SELECT count(*) FROM security_events e JOIN users u ON u.id = "
                        "e.user_id WHERE u.username = 'bob' AND e.name = 'mfa_failed'")
    assert evaluated == [(5,)]
    assert duo.sql("SELECT mfa_failures FROM users WHERE username = 'bob'") == [(5,)]
    assert post(web, a + "/login/mfa", code=right).headers["Location"] == "/login"
