"""memory:// sweeps expired rate-limit entries once a second, not a thread per 10 ms of hits
(authserver/memory_limits.py), and still forgets an expired count at once."""
from __future__ import annotations

import time
from importlib.metadata import version

from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from authserver import counters, memory_limits
from authserver.app import create_app
from authserver.extensions import limiter


def test_limits_is_the_pinned_minor_with_the_private_methods_we_override():
    assert version("limits").startswith("5.8."), \
        "limits changed minor version: re-read MemoryStorage, then move the pin in pyproject.toml"
    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))
    assert callable(getattr(MemoryStorage, "_MemoryStorage__expire_events", None))


def test_memory_uri_gives_the_swept_storage(settings):
    settings.update(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://")
    app = create_app(settings)
    assert isinstance(storage_from_string("memory://"), memory_limits.SweptMemoryStorage)
    with app.app_context():
        assert isinstance(limiter.storage, memory_limits.SweptMemoryStorage)
        assert isinstance(counters._limiter().storage, memory_limits.SweptMemoryStorage)


def test_many_hits_on_many_keys_start_one_sweeping_thread():
    storage = storage_from_string("memory://")
    limiter = FixedWindowRateLimiter(storage)
    item = parse("5 per minute")
    cancelled_at_start = storage.timer  # upstream's own 10 ms timer, stopped in __init__
    timers = set()
    deadline = time.monotonic() + 0.3  # 30 sweeps' worth of time for the old 10 ms timer
    hits = 0
    while time.monotonic() < deadline:
        limiter.hit(item, f"10.0.{hits // 250}.{hits % 250}")
        timers.add(storage.timer)  # the sweep this storage has scheduled
        hits += 1
    assert hits > 100
    assert not cancelled_at_start.is_alive()
    timers.discard(cancelled_at_start)
    assert len(timers) == 1
    (timer,) = timers
    assert timer.is_alive() and timer.daemon


def test_an_expired_count_is_forgotten_when_read_and_swept_later(monkeypatch):
    monkeypatch.setattr(memory_limits, "SWEEP_SECONDS", 0.2)
    storage = storage_from_string("memory://")
    fixed = FixedWindowRateLimiter(storage)  # the strategy Flask-Limiter and counters.py use
    item = parse("1 per 1 second")
    assert fixed.hit(item, "a") and not fixed.hit(item, "a")
    time.sleep(1.1)
    assert fixed.test(item, "a")  # expired: allowed again at once, before any sweep
    assert fixed.hit(item, "a")
    time.sleep(1.2)  # that window ends too; the next hit schedules a sweep
    fixed.hit(item, "c")
    deadline = time.monotonic() + 2

    def left() -> set:
        return {key for key in storage.storage if "/a/" in key}
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left()
