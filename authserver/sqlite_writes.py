"""SQLite: one writer at a time, and the next one woken as soon as the last one commits.

SQLite lets one connection write at a time. When a second one tries, its busy handler
sleeps and retries, with sleeps growing to 100 ms (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
100, 100, ... ms), so under load a refresh-token rotation waits up to a tenth of a second
after the database is free again: that, not the work itself, made the token endpoint's p99
on SQLite several times PostgreSQL's.

Here writers queue instead. A connection about to write (the first INSERT, UPDATE, DELETE,
REPLACE or DDL of its transaction) takes this process's writer lock (a `threading.RLock`:
threads of one worker wake in turn at once) and then an `flock` on `<database>-writer`
beside the file (between the worker processes: polled every 0.2-2 ms, only by the one
thread per process that holds the thread lock), and gives both back right after its
commit or rollback. Readers never wait (WAL). A writer that cannot get the lock within
LOCK_WAIT seconds goes on without it and SQLite's own busy handling (and timeout) applies,
so nothing here can deadlock or fail a request that would have worked without it.

Used only for file databases, by passing `factory=WriterQueueConnection` to
`sqlite3.connect` (config.py's engine options).
"""
from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
import time

LOCK_WAIT = 2.0
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class _ProcessLock:
    """The writer lock of one database file in this process: thread lock, then flock."""

    def __init__(self, path: str):
        self.path = path
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.owner: int | None = None
        self.fd: int | None = None
        self.pid = os.getpid()

    def acquire(self) -> bool:
        deadline = time.monotonic() + LOCK_WAIT
        if not self.thread_lock.acquire(timeout=LOCK_WAIT):
            return False
        if self.depth == 0 and not self._flock(deadline):
            self.thread_lock.release()
            return False
        self.depth += 1
        self.owner = threading.get_ident()
        return True

    def release(self) -> None:
        if threading.get_ident() != self.owner:  # closed from another thread (garbage
            return                               # collection): the owner lets go itself
        self.depth -= 1
        if self.depth == 0:
            self.owner = None
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.thread_lock.release()

    def _flock(self, deadline: float) -> bool:
        if self.fd is None or self.pid != os.getpid():  # first use, or a forked worker
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self.pid = os.getpid()
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)


_locks: dict[str, _ProcessLock] = {}
_locks_guard = threading.Lock()


def _lock_for(database: str) -> _ProcessLock:
    path = os.path.abspath(database) + "-writer"
    with _locks_guard:
        return _locks.setdefault(path, _ProcessLock(path))


class WriterQueueCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=()):
        self.connection._before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection._after()

    def executemany(self, sql, seq_of_parameters):
        self.connection._before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection._after()


class WriterQueueConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its file's writer lock from its first write until the
    end of that transaction."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self._writer = _lock_for(str(database))
        self._holding = False

    def cursor(self, factory=WriterQueueCursor):
        return super().cursor(factory)

    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def commit(self):
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self):
        try:
            super().close()
        finally:
            self._let_go()

    def _before(self, sql: str) -> None:
        if not self._holding and _WRITE.match(sql):
            self._holding = self._writer.acquire()

    def _after(self) -> None:
        if self._holding and not self.in_transaction:  # the statement committed itself
            self._let_go()

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            self._writer.release()
