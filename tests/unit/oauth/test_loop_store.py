"""The loop guard's in-process store: counts inside the window only, bounded in size."""
from authserver.oauth.loop_store import MAX_STATES, MemoryTrips


def test_it_counts_trips_per_browser_and_client_inside_the_window():
    store = MemoryTrips(max_trips=3, window=20)
    for t in (0, 1, 2):
        assert not store.too_many("b:1", "app", 10 + t)
        store.record("b:1", "app", None, 10 + t)
    assert store.too_many("b:1", "app", 13)
    assert not store.too_many("b:1", "other-app", 13)
    assert not store.too_many("b:2", "app", 13)
    assert not store.too_many("b:1", "app", 30.5), "the first trip left the window at 30"


def test_a_state_is_remembered_for_the_window_only():
    store = MemoryTrips(max_trips=5, window=20)
    store.record("b:1", "app", "d1", 100)
    assert store.seen_state("b:1", "app", "d1", 119)
    assert not store.seen_state("b:1", "app", "d2", 119)
    assert not store.seen_state("b:2", "app", "d1", 119)
    assert not store.seen_state("b:1", "app", "d1", 120)


def test_a_state_sent_again_is_kept_from_its_latest_trip():
    store = MemoryTrips(max_trips=5, window=20)
    store.record("b:1", "app", "d1", 100)
    store.record("b:1", "app", "d2", 105)
    store.record("b:1", "app", "d1", 110)
    assert store.seen_state("b:1", "app", "d2", 124)
    assert store.seen_state("b:1", "app", "d1", 129)
    assert not store.seen_state("b:1", "app", "d2", 126)


def test_the_states_of_one_browser_are_bounded():
    store = MemoryTrips(max_trips=5, window=20)
    for i in range(MAX_STATES + 10):
        store.record("b:1", "app", f"d{i}", 100)
    assert not store.seen_state("b:1", "app", "d0", 100)
    assert store.seen_state("b:1", "app", f"d{MAX_STATES + 9}", 100)


def test_past_its_size_the_least_recently_used_browser_is_forgotten_first():
    store = MemoryTrips(max_trips=1, window=20, max_keys=2)
    store.record("b:1", "app", None, 100)
    store.record("b:2", "app", None, 100)
    assert store.too_many("b:1", "app", 101)  # b:1 is now the most recent
    store.record("b:3", "app", None, 101)
    assert store.too_many("b:1", "app", 102)
    assert not store.too_many("b:2", "app", 102)
    assert store.too_many("b:3", "app", 102)


def test_browsers_not_seen_for_a_window_are_dropped():
    store = MemoryTrips(max_trips=5, window=20)
    for i in range(100):
        store.record(f"b:{i}", "app", "d", 100.05 + i * 0.1)
    store.too_many("b:99", "app", 115)  # a lookup keeps b:99 recent, creates nothing
    store.record("b:new", "app", None, 125)
    assert len(store) == 51, "b:0 to b:49 were last seen 20 s or more before"
    assert not store.too_many("b:10", "app", 125)
    store.record("b:newer", "app", None, 200)
    assert len(store) == 1
