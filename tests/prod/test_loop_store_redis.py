"""The loop guard's shared store on a real Redis: what several issuer processes count together."""
from __future__ import annotations

import secrets
import threading

import pytest
import redis
from limits.storage import storage_from_string

from authserver.oauth.loop_store import SharedTrips, Trip
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
    return [SharedTrips(storage_from_string(URI).storage, window=20) for _ in range(2)]


def test_trips_recorded_by_one_process_count_in_the_other(browser):
    a, b = two_processes()
    a.add(browser, "app", Trip(0, "s", "c:1"))
    got = b.add(browser, "app", Trip(1, "s", "c:2"))
    assert [t.outcome for t in got] == ["c:1", "c:2"]
    assert len(b.add(browser, "other-app", Trip(1, "s", "c:3"))) == 1
    a.clear(browser, "app")
    assert len(b.add(browser, "app", Trip(2, "s", "c:4"))) == 1


def test_racing_adds_are_counted_exactly(browser):
    """Ten threads over two stores: each sees the trips before its own, and all ten land."""
    stores, seen = two_processes(), []
    start = threading.Barrier(10)

    def add(i):
        start.wait()
        seen.append(len(stores[i % 2].add(browser, "app", Trip(5, "s", f"c:{i}"))))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(seen) == list(range(1, 11))


def test_old_trips_fall_out_of_the_window(browser):
    a, _ = two_processes()
    a.add(browser, "app", Trip(0, "s", "c:1"))
    assert [t.outcome for t in a.add(browser, "app", Trip(25, "s", "c:2"))] == ["c:2"]
