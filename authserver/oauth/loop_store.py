"""Where the loop guard keeps its round trips (see loop_guard.py).

A round trip is a `Trip(at, shape, outcome)`, kept per (browser key, client) for the longest
window the guard looks at. `add` appends one and returns the list up to and including it, in
one atomic step, so two tabs racing each other are counted exactly.

- `MemoryTrips` (memory://, one process): a dict of small per-key lists, pruned as they are
  touched, dropped once unseen for a whole window, least recently used first past MAX_KEYS.
  O(1) amortised per call, no thread beside the requests.
- `SharedTrips` (redis://): one Redis list per key (RPUSH, LTRIM, EXPIRE, LRANGE in one
  MULTI), shared by every process of the issuer.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import NamedTuple

MAX_KEYS = 100_000
MAX_TRIPS_KEPT = 64


class Trip(NamedTuple):
    at: float
    shape: str
    outcome: str  # "c:<code hash>" for a code, "e:<error>" for an error

    def encode(self) -> str:
        return f"{self.at:.3f}|{self.shape}|{self.outcome}"

    @classmethod
    def decode(cls, raw: str | bytes) -> Trip:
        text = raw.decode() if isinstance(raw, bytes) else raw
        at, shape, outcome = text.split("|", 2)
        return cls(float(at), shape, outcome)


class MemoryTrips:
    """Round trips per (browser key, client), in this process's memory."""

    def __init__(self, window: float, max_keys: int = MAX_KEYS):
        self.window, self.max_keys = window, max_keys
        self._entries: OrderedDict[tuple[str, str], list[Trip]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, client: str, trip: Trip) -> list[Trip]:
        with self._lock:
            ident = (key, client)
            trips = self._entries.pop(ident, None)
            if trips is None:
                self._drop_stale(trip.at)
                trips = []
            trips = [t for t in trips if trip.at - t.at < self.window][-(MAX_TRIPS_KEPT - 1):]
            trips.append(trip)
            self._entries[ident] = trips
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
            return list(trips)

    def clear(self, key: str, client: str) -> None:
        with self._lock:
            self._entries.pop((key, client), None)

    def _drop_stale(self, now: float) -> None:
        """Keys unseen for a whole window go, from the least recent end."""
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest and now - oldest[-1].at < self.window:
                return
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class SharedTrips:
    """The same lists in Redis (the rate limiter's storage), shared by every process."""

    def __init__(self, redis_client, window: float, prefix: str = "LOOP2"):
        self.redis, self.window, self.prefix = redis_client, window, prefix

    def add(self, key: str, client: str, trip: Trip) -> list[Trip]:
        name = self._name(key, client)
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(name, trip.encode())
        pipe.ltrim(name, -MAX_TRIPS_KEPT, -1)
        pipe.expire(name, math.ceil(self.window))
        pipe.lrange(name, 0, -1)
        raw = pipe.execute()[-1]
        trips = [Trip.decode(r) for r in raw]
        return [t for t in trips if trip.at - t.at < self.window or t is trips[-1]]

    def clear(self, key: str, client: str) -> None:
        self.redis.delete(self._name(key, client))

    def _name(self, key: str, client: str) -> str:
        return f"{self.prefix}/{key}/{client}"
