"""`memory://` for the rate limits, with expired entries swept once a second.

limits' MemoryStorage starts a thread 10 ms after a hit whenever none is running, and that
thread walks every key it holds. Sign-ins from many addresses leave thousands of keys alive
for their minute, so a busy server started a thread and walked them all about 100 times a
second: measured 2-9 ms of CPU per sign-in, growing with the number of addresses seen.
Expired entries are already ignored when read (`get` checks the expiry, moving windows
compare timestamps), so the sweep only frees memory and can wait: once every
SWEEP_SECONDS, in a daemon thread that never holds up the process's exit.

Importing this module registers the class for the `memory` scheme, so Flask-Limiter,
counters.py and the loop guard all get it from `memory://`. It overrides a private method
of MemoryStorage: limits is pinned to a minor version in pyproject.toml and
tests/unit/test_memory_limits.py fails when upstream renames it.
"""
from __future__ import annotations

import threading

from limits.storage import MemoryStorage

SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    STORAGE_SCHEME = ["memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.timer.cancel()  # the first 10 ms sweep; the next hit schedules ours
        self._sweep_lock = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # called on every hit
        if self.timer.is_alive():
            return
        with self._sweep_lock:
            if not self.timer.is_alive():
                timer = threading.Timer(SWEEP_SECONDS, self._MemoryStorage__expire_events)
                timer.daemon = True
                timer.start()
                self.timer = timer
