"""The loop guard's shared store on a real Redis: what several issuer processes count together."""
from __future__ import annotations

import secrets

import pytest
import redis
from limits.storage import storage_from_string

from authserver.oauth.loop_store import SharedTrips
from prodkit import REDIS_DB

URI = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture
def browser():
    """A browser key of its own, and its keys deleted afterwards."""
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (the CI machine starts it; see .ci/run)")
    key = "b:" + secrets.token_hex(8)
    yield key
    for name in client.scan_iter(f"*{key}*"):
        client.delete(name)


def two_processes():
    """Two stores on one Redis, as two gunicorn workers would have."""
    return [SharedTrips(storage_from_string(URI), max_trips=3, window=20) for _ in range(2)]


def test_trips_recorded_by_one_process_count_in_the_other(browser):
    a, b = two_processes()
    a.record(browser, "app", None, 0)
    b.record(browser, "app", None, 0)
    assert not a.too_many(browser, "app", 0)
    a.record(browser, "app", None, 0)
    assert b.too_many(browser, "app", 0)
    assert not b.too_many(browser, "other-app", 0)
    assert not b.too_many(browser + "x", "app", 0)


def test_a_state_sent_back_by_one_process_is_known_to_the_other(browser):
    a, b = two_processes()
    a.record(browser, "app", "digest-1", 0)
    assert b.seen_state(browser, "app", "digest-1", 0)
    assert not b.seen_state(browser, "app", "digest-2", 0)
    assert not b.seen_state(browser, "other-app", "digest-1", 0)
