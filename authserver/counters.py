"""Counters in the rate-limit storage (RATELIMIT_STORAGE_URI: memory:// or Redis), for the
limits that Flask-Limiter's per-route decorators cannot express: failed sign-ins per address,
per network prefix and for the whole deployment, failed client authentication per client.

With Redis every process of every machine shares the counts. Like Flask-Limiter
(RATELIMIT_SWALLOW_ERRORS), a storage outage fails open: it is logged, the limits stop
counting for STORAGE_RETRY seconds, and the database's per-name throttle still holds.
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from . import clock

log = logging.getLogger("authserver.counters")

STORAGE_RETRY = 30
_LOCK = threading.Lock()


def _limiter() -> FixedWindowRateLimiter:
    ext = current_app.extensions
    limiter = ext.get("authserver.counters")
    if limiter is None:
        cfg = current_app.config
        storage: Storage = storage_from_string(str(cfg["RATELIMIT_STORAGE_URI"]),
                                               **(cfg.get("RATELIMIT_STORAGE_OPTIONS") or {}))
        with _LOCK:
            limiter = ext.setdefault("authserver.counters", FixedWindowRateLimiter(storage))
    return limiter


def enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED"))


def _item(setting: str) -> RateLimitItem | None:
    value = current_app.config.get(setting)
    return _parse(str(value)) if value else None


@lru_cache(maxsize=64)
def _parse(value: str) -> RateLimitItem:
    return parse(value)


def _keys(setting: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    return (str(current_app.config.get("RATELIMIT_KEY_PREFIX") or ""), setting, *keys)


def _call(fn, default):
    ext = current_app.extensions
    now = clock.timestamp()
    if now < ext.get("authserver.counters_down_until", 0):
        return default
    try:
        return fn(_limiter())
    except Exception:  # noqa: BLE001 - any storage error fails open (see above)
        log.warning("rate-limit storage unavailable; counters off for %s s", STORAGE_RETRY,
                    exc_info=True)
        ext["authserver.counters_down_until"] = now + STORAGE_RETRY
        return default


def retry_after(setting: str, *keys: str) -> int | None:
    """Seconds until the limit named by `setting` ("20 per minute") has room again for
    `keys`, or None while it has room (or is unset, or limits are off)."""
    item = _item(setting)
    if item is None or not enabled():
        return None

    def check(limiter: FixedWindowRateLimiter) -> int | None:
        if limiter.test(item, *_keys(setting, keys)):
            return None
        reset, _ = limiter.get_window_stats(item, *_keys(setting, keys))
        return max(1, int(reset - clock.timestamp()) + 1)

    return _call(check, None)


def hit(setting: str, *keys: str) -> None:
    """Count one event against the limit named by `setting` for `keys`."""
    item = _item(setting)
    if item is not None and enabled():
        _call(lambda limiter: limiter.hit(item, *_keys(setting, keys)), None)
