"""The failed-sign-in counts on a real Redis: two processes (two apps here) share the
deployment's budget and the per-network count, as gunicorn workers and machines do."""
from __future__ import annotations

import secrets

import pytest
import redis

from authserver import create_app
from authserver.extensions import db
from prodkit import REDIS_DB
from support import AuthActions, StubHasher, _empty_tables, make_user


@pytest.fixture
def pair_of_apps(settings):
    """Two apps on one database and one Redis, with a key prefix of their own."""
    rds = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=1)
    try:
        rds.ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (the CI machine starts it; see .ci/run)")
    prefix = "authserver-limits-" + secrets.token_hex(4)
    stub = StubHasher()
    settings.update({"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "1000 per minute",
                     "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:6379/{REDIS_DB}",
                     "RATELIMIT_KEY_PREFIX": prefix, "PASSWORD_HASHER": stub,
                     "RATELIMIT_LOGIN_FAILURES_GLOBAL": "3 per minute",
                     "RATELIMIT_LOGIN_FAILURES_PREFIX": "4 per minute"})
    apps = [create_app(dict(settings)) for _ in range(2)]
    yield apps, stub
    with apps[0].app_context():
        db.session.remove()
        _empty_tables()  # as the app fixture does: the database is the suite's
    with apps[1].app_context():
        db.session.remove()
    for key in rds.scan_iter(match=f"*{prefix}*", count=500):
        rds.delete(key)


def login_from(app, address, username):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return AuthActions(client).login(username, "wrong password")


def test_the_budget_spent_on_one_process_switches_the_other_to_the_cheap_path(pair_of_apps):
    (a, b), stub = pair_of_apps
    make_user(a, "alice")
    for i in range(3):
        login_from(a, f"10.20.{i}.1", f"ghost{i}")
    assert stub.verifies == 3
    assert login_from(b, "10.20.9.1", "ghost9").status_code == 200
    assert stub.verifies == 3  # b knows the budget is spent: no hash for a made-up name


def test_a_network_counted_on_both_processes(pair_of_apps):
    (a, b), _ = pair_of_apps
    for i, app in enumerate((a, b, a, b)):
        assert login_from(app, f"172.16.5.{i + 1}", f"guess{i}").status_code == 200
    assert login_from(a, "172.16.5.200", "alice").status_code == 429
