"""The loop guard's in-process store: atomic add, a bounded window, bounded memory."""
from __future__ import annotations

from authserver.oauth.loop_store import MAX_TRIPS_KEPT, MemoryTrips, Trip


def trip(at, shape="s", outcome="e:x"):
    return Trip(at, shape, outcome)


def test_add_returns_the_trips_up_to_and_including_this_one():
    store = MemoryTrips(window=20)
    store.add("b", "app", trip(0))
    got = store.add("b", "app", trip(1, outcome="c:h"))
    assert [t.at for t in got] == [0, 1] and got[-1].outcome == "c:h"


def test_trips_older_than_the_window_are_dropped():
    store = MemoryTrips(window=20)
    store.add("b", "app", trip(0))
    assert [t.at for t in store.add("b", "app", trip(20))] == [20]


def test_counts_are_per_browser_and_client_and_clear_forgets_one_pair():
    store = MemoryTrips(window=20)
    store.add("b", "app", trip(0))
    store.add("b", "other", trip(0))
    assert len(store.add("c", "app", trip(1))) == 1
    store.clear("b", "app")
    assert len(store.add("b", "app", trip(2))) == 1
    assert len(store.add("b", "other", trip(2))) == 2


def test_a_pair_keeps_a_bounded_number_of_trips():
    store = MemoryTrips(window=1000)
    for i in range(MAX_TRIPS_KEPT * 2):
        got = store.add("b", "app", trip(i / 100))
    assert len(got) == MAX_TRIPS_KEPT


def test_browsers_unseen_for_a_window_are_dropped_and_the_table_is_bounded():
    store = MemoryTrips(window=20, max_keys=3)
    for i in range(3):
        store.add(f"b{i}", "app", trip(0))
    store.add("late", "app", trip(30))
    assert len(store) == 1
    for i in range(5):
        store.add(f"n{i}", "app", trip(31))
    assert len(store) == 3


def test_trips_encode_and_decode():
    t = Trip(12.5, "shape", "c:abc|def")
    assert Trip.decode(t.encode().encode()) == t
