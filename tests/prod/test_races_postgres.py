"""Races decided by PostgreSQL, not by one process's memory: concurrent requests spread over
two servers (two processes, eight threads each) cannot both win.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

from prodkit import (PASSWORD, browser, cli, code_in, csrf_from, done, exchange, get_code,
                     mail_files, postgres_only, refresh, wait_for_mail)

pytestmark = postgres_only

NEW_PASSWORD = "Quiet-Harbour-Lamp-77"


def race(n: int, call) -> list:
    """Run call(i) for i in range(n) on n threads released together by a barrier."""
    barrier = threading.Barrier(n, timeout=30)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - a hang or a reset is a result to assert on
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print(f"\n{n} concurrent requests answered in {time.monotonic() - started:.2f} s")
    return results


@dataclass(eq=False)
class Answer:
    status_code: int
    text: str


def held_post(web: requests.Session, url: str, data: dict) -> tuple[socket.socket, bytes]:
    """This browser's POST written to a fresh connection but for its last byte, returned for
    the caller to send ("last-byte synchronisation"). Sent by several threads released
    together, the requests otherwise reach the servers over a hundred milliseconds or more
    on a busy machine, later than a fast password check; this way each server has them
    whole within the same instant."""
    prepared = web.prepare_request(requests.Request("POST", url, data=data))
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    parts = urlsplit(url)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
            *(f"{k}: {v}" for k, v in prepared.headers.items() if k.lower() != "connection")]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    conn = socket.create_connection((parts.hostname, parts.port), timeout=30)
    conn.sendall(raw[:-1])
    return conn, raw[-1:]


def release(held: tuple[socket.socket, bytes]) -> Answer:
    """Send a held request's last byte; its answer."""
    conn, last = held
    with conn:
        conn.sendall(last)
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        return Answer(answer.status, answer.read().decode())


def statuses(results) -> Counter:
    return Counter(r.status_code if isinstance(r, (requests.Response, Answer)) else repr(r)
                   for r in results)


def test_fifty_concurrent_refreshes_one_wins_and_the_family_is_revoked(pair):
    servers = pair.servers
    code, verifier, _ = get_code(browser(), servers[0].url, pair.client_id)
    raw = exchange(servers[1].url, pair, code, verifier).json()["refresh_token"]

    results = race(50, lambda i: refresh(servers[i % 2].url, pair, raw))

    assert statuses(results) == {200: 1, 400: 49}
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}
    winner = next(r.json() for r in results if r.status_code == 200)
    # The 49 presented a rotated token: reuse, so the whole family died, the new token too.
    again = refresh(servers[0].url, pair, winner["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    family = pair.sql("SELECT family_id FROM refresh_tokens ORDER BY id DESC LIMIT 1")[0][0]
    rows = pair.sql("SELECT count(*), count(rotated_at), count(revoked_at) FROM refresh_tokens "
                    "WHERE family_id = %s", family)
    assert rows == [(2, 1, 2)]
    reuse = pair.sql("SELECT count(*) FROM security_events WHERE name = 'refresh_reuse'")
    assert reuse[0][0] >= 1


def test_twenty_concurrent_redemptions_of_one_code_exactly_one_succeeds(pair):
    servers = pair.servers
    code, verifier, _ = get_code(browser(), servers[1].url, pair.client_id)

    results = race(20, lambda i: exchange(servers[i % 2].url, pair, code, verifier))

    assert statuses(results) == {200: 1, 400: 19}
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}
    assert pair.sql("SELECT count(*) FROM authorization_codes WHERE used_at IS NOT NULL "
                    "AND id = (SELECT max(id) FROM authorization_codes)") == [(1,)]
    # RFC 6749 section 4.1.2: the replays revoke what the one redemption issued.
    winner = next(r.json() for r in results if r.status_code == 200)
    assert refresh(servers[0].url, pair, winner["refresh_token"]).status_code == 400


def test_twenty_concurrent_wrong_codes_count_five_tries_then_the_code_is_dead(pair):
    a, b = pair.servers
    web, before = browser(), mail_files(pair.mail_dir)
    token = csrf_from(web.get(a.url + "/forgot-password", timeout=10).text)
    sent = web.post(a.url + "/forgot-password", data={"username": "alice", "csrf_token": token},
                    allow_redirects=False, timeout=10)
    assert sent.status_code == 303
    right = code_in(wait_for_mail(pair.mail_dir, "reset_code", "alice@example.com", before))
    hash_before = pair.sql("SELECT password_hash FROM users WHERE username = 'alice'")
    token = csrf_from(web.get(b.url + "/forgot-password/confirm?username=alice", timeout=10).text)
    cookies, ip = web.cookies.get_dict(), web.headers["X-Forwarded-For"]

    def confirm(base: str, code: str) -> requests.Response:
        return requests.post(base + "/forgot-password/confirm", cookies=cookies,
                             headers={"X-Forwarded-For": ip}, allow_redirects=False, timeout=10,
                             data={"username": "alice", "code": code, "password": NEW_PASSWORD,
                                   "password_confirm": NEW_PASSWORD, "csrf_token": token})

    wrong = [f"{(int(right) + i) % 1_000_000:06d}" for i in range(1, 21)]
    results = race(20, lambda i: confirm((a, b)[i % 2].url, wrong[i]))

    assert statuses(results) == {200: 20}
    tries = pair.sql("SELECT failed_tries, used_at FROM reset_codes WHERE user_id = "
                     "(SELECT id FROM users WHERE username = 'alice') ORDER BY id DESC LIMIT 1")
    assert tries == [(5, None)]
    late = confirm(a.url, right)
    assert late.status_code == 200 and "Too many wrong tries" in late.text
    assert pair.sql("SELECT password_hash FROM users WHERE username = 'alice'") == hash_before


def test_ten_concurrent_send_code_clicks_for_one_name_send_once(pair):
    """The 60 s resend rule holds across processes: one send, nine "wait" answers."""
    a, b = pair.servers
    web = browser()
    token = csrf_from(web.get(a.url + "/forgot-password", timeout=10).text)
    cookies, ip = web.cookies.get_dict(), web.headers["X-Forwarded-For"]
    before = pair.sql("SELECT count(*) FROM code_sends")[0][0]

    def send(base: str) -> requests.Response:
        return requests.post(base + "/forgot-password", cookies=cookies, timeout=10,
                             headers={"X-Forwarded-For": ip}, allow_redirects=False,
                             data={"username": "nobody-in-a-race", "csrf_token": token})

    results = race(10, lambda i: send((a, b)[i % 2].url))

    assert statuses(results) == {303: 10}
    assert pair.sql("SELECT count(*) FROM code_sends")[0][0] == before + 1


def test_eight_parallel_sign_ins_when_a_lock_expires_evaluate_exactly_one(pair):
    """Issue 10, finding 7: the login throttle claims each attempt with one conditional UPDATE
    before hashing, so the tries arriving together when a lock ends cannot all be checked:
    the first claim locks the name again, the seven others find it locked. One of the eight
    carries the right password; whichever is evaluated, no second one is: a right password
    resets the count but ends the lock only at its verdict, so the tries that began before
    it and claim after it are still refused (the row is updated, never deleted, so none
    finds it gone, creates a fresh unlocked one, or reads back a deleted row: a 500). A try
    that reaches a server after that verdict is a new sign-in, rightly checked: hence the
    last-byte synchronisation, so that the eight are truly parallel on a busy machine."""
    a, b = pair.servers
    name = "racer"
    done(cli(pair.env, "users", "create", name, "--email", "racer@example.com",
             "--password", PASSWORD))

    def ready(base: str):
        web = browser()  # each from its own address: the per-address limits stay out of it
        return base, web, csrf_from(web.get(base + "/login", timeout=10).text)

    def attempt(form, password: str) -> requests.Response:
        base, web, token = form
        web.close()  # a fresh connection: the server may have closed the idle keep-alive one
        return web.post(base + "/login", data={"username": name, "password": password,
                                               "csrf_token": token},
                        allow_redirects=False, timeout=30)

    for i in range(5):
        assert "Incorrect user name" in attempt(ready((a, b)[i % 2].url), f"wrong-{i}").text
    forms = [ready((a, b)[i % 2].url) for i in range(8)]
    locked_until = pair.sql("SELECT locked_until FROM login_throttles WHERE failures = 5")
    assert len(locked_until) == 1 and locked_until[0][0] is not None
    until = locked_until[0][0].replace(tzinfo=timezone.utc)  # stored as naive UTC
    wait = (until - datetime.now(timezone.utc)).total_seconds()
    time.sleep(max(0.0, wait) + 0.05)  # the lock has just expired on both servers' clocks

    passwords = [PASSWORD if i == 5 else f"also-wrong-{i}" for i in range(8)]
    held = [held_post(web, base + "/login", {"username": name, "password": passwords[i],
                                             "csrf_token": token})
            for i, (base, web, token) in enumerate(forms)]
    results = race(8, lambda i: release(held[i]))

    answers = [r for r in results if isinstance(r, Answer)]
    assert len(answers) == 8 and not [r for r in answers if r.status_code >= 500], \
        statuses(results)
    evaluated = [r for r in answers if r.status_code == 303 or "Incorrect user name" in r.text]
    # The others are refused before any hash: by the name's lock ("Too many failed
    # attempts") or, as the failures pile up from one loopback address, by the address limit.
    refused = [r for r in answers if r not in evaluated
               and r.status_code in (200, 429) and "Too many" in r.text]
    assert len(evaluated) == 1, statuses(results)
    assert len(refused) == 7, statuses(results)
    won = results[5].status_code == 303
    failures = pair.sql("SELECT failures FROM login_throttles ORDER BY updated_at DESC LIMIT 1")
    assert failures == ([(0,)] if won else [(6,)])  # cleared by the right one, or the sixth
    if won:  # the lock ended with the right password: its owner may sign in again at once
        assert attempt(ready(b.url), PASSWORD).status_code == 303
