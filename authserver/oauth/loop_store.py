"""Where the loop guard keeps its server-side counts (see loop_guard.py).

Two stores with one interface, chosen by RATELIMIT_STORAGE_URI:

- `MemoryTrips` (memory://, one process): a dict of small per-(browser, client) entries,
  pruned as they are touched, dropped once unseen for a whole window, and evicted least
  recently used first past MAX_KEYS. Every call is O(1) amortised and no thread runs beside
  the requests. (limits' MemoryStorage would need
  one counter key per state and a timer thread that scans every key 100 times a second,
  which cost /refresh about 10 % of a core at a few hundred requests per second.)
- `SharedTrips` (redis:// and the other `limits` storages): a moving window per
  (browser, client) and a key per state digest, shared by every process of the issuer.
"""
from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

MAX_KEYS = 100_000
MAX_STATES = 64


class MemoryTrips:
    """Round trips and state digests per (browser, client), in this process's memory."""

    def __init__(self, max_trips: int, window: float, max_keys: int = MAX_KEYS):
        self.max_trips, self.window, self.max_keys = max_trips, window, max_keys
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def too_many(self, key: str, client: str, now: float) -> bool:
        with self._lock:
            entry = self._touch(key, client, now, create=False)
            return entry is not None and len(entry.times) >= self.max_trips

    def seen_state(self, key: str, client: str, digest: str, now: float) -> bool:
        with self._lock:
            entry = self._touch(key, client, now, create=False)
            return entry is not None and digest in entry.states

    def record(self, key: str, client: str, digest: str | None, now: float) -> None:
        with self._lock:
            entry = self._touch(key, client, now, create=True)
            entry.times.append(now)
            if len(entry.times) > self.max_trips:  # one more than the limit is all a check needs
                del entry.times[0]
            if digest:
                entry.states.pop(digest, None)  # re-inserted, so the dict stays in time order
                entry.states[digest] = now
                while len(entry.states) > MAX_STATES:
                    entry.states.pop(next(iter(entry.states)))

    def _touch(self, key: str, client: str, now: float, *, create: bool) -> _Entry | None:
        """The entry, with what fell out of the window dropped, as the most recent one.

        Entries not seen for a whole window are dropped from the least recent end as new ones
        arrive, so the table holds only the last window's browsers (and at most max_keys).
        """
        ident = (key, client)
        entry = self._entries.get(ident)
        if entry is None:
            if not create:
                return None
            self._drop_stale(now)
            entry = self._entries[ident] = _Entry(now)
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(ident)
            entry.seen = now
        entry.prune(now - self.window)
        return entry

    def _drop_stale(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.seen > now - self.window:
                return
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class _Entry:
    __slots__ = ("times", "states", "seen")

    def __init__(self, now: float):
        self.times: list[float] = []
        self.states: dict[str, float] = {}
        self.seen = now

    def prune(self, since: float) -> None:
        del self.times[:bisect.bisect_right(self.times, since)]
        while self.states and next(iter(self.states.values())) <= since:
            self.states.pop(next(iter(self.states)))


class SharedTrips:
    """The same counts in a `limits` storage (Redis), shared by every process."""

    def __init__(self, storage: Storage, max_trips: int, window: float):
        self.storage, self.window = storage, int(window)
        self.item = RateLimitItemPerSecond(max_trips, self.window, namespace="LOOP")
        self.limiter = MovingWindowRateLimiter(storage)

    def too_many(self, key: str, client: str, now: float) -> bool:
        return not self.limiter.test(self.item, key, client)

    def seen_state(self, key: str, client: str, digest: str, now: float) -> bool:
        return self.storage.get(self._state_key(key, client, digest)) > 0

    def record(self, key: str, client: str, digest: str | None, now: float) -> None:
        self.limiter.hit(self.item, key, client)
        if digest:
            self.storage.incr(self._state_key(key, client, digest), self.window)

    @staticmethod
    def _state_key(key: str, client: str, digest: str) -> str:
        return f"LOOP/state/{key}/{client}/{digest}"
