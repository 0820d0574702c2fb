"""Secrets at rest and in comparison: argon2id, keyed hashes, random values, safe redirects.

Password hashing is the one expensive thing a sign-in does, so every argon2 call goes through
hash_password / verify_password here, and both take a slot from a bounded per-process
semaphore (PASSWORD_HASH_CONCURRENCY, about one per core): a request that cannot get one
within PASSWORD_HASH_WAIT_MS raises HashingBusy (a 503 "busy, try again in a moment" page)
instead of queueing, so a flood of sign-ins never holds every thread and every core while
token, discovery and JWKS requests wait behind it. See docs/capacity.md.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import secrets
import string
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from urllib.parse import urlsplit

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from nacl.exceptions import InvalidkeyError
from nacl.pwhash import argon2id as nacl_argon2id

from .errors import RetryLater


class HashingBusy(RetryLater):
    """Every password-hashing slot of this process stayed taken for PASSWORD_HASH_WAIT_MS."""

    status = 503
    title = "Busy, try again in a moment"

    def __init__(self, retry_after: int):
        super().__init__("Many people are signing in right now. Wait a moment and try "
                         "again.", retry_after)


class Argon2id:
    """argon2id at a fixed cost, with argon2-cffi's hash / verify / check_needs_rehash.

    libsodium (PyNaCl) computes it where it can: it picks AVX2 or AVX-512 code for the CPU
    it runs on and checks a password in about half the time of argon2-cffi's portable code
    (8.3 against 16.5 ms at m=7168, t=5, p=1 on the benchmark machine; docs/capacity.md).
    The cost, and so what a guess costs an attacker, is the same: only our overhead
    shrinks. Both write the same PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash,
    16-byte salt, 32-byte hash), so each verifies the other's hashes. libsodium hashes one
    lane only: with PASSWORD_HASH_PARALLELISM above 1 argon2-cffi hashes.
    """

    def __init__(self, time_cost: int, memory_cost: int, parallelism: int):
        self.time_cost, self.memory_cost, self.parallelism = time_cost, memory_cost, parallelism
        self._cffi = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                    parallelism=parallelism, type=Type.ID)

    def hash(self, password: str) -> str:
        if self.parallelism != 1:
            return self._cffi.hash(password)
        return nacl_argon2id.str(password.encode(), opslimit=self.time_cost,
                                 memlimit=self.memory_cost * 1024).decode("ascii")

    def verify(self, password_hash: str, password: str) -> bool:
        """True, or raise argon2-cffi's VerifyMismatchError / InvalidHashError."""
        if not password_hash.startswith("$argon2id$"):
            return self._cffi.verify(password_hash, password)
        try:
            return nacl_argon2id.verify(password_hash.encode("ascii"), password.encode())
        except InvalidkeyError as exc:  # a wrong password, or a hash libsodium cannot read
            raise VerifyMismatchError(str(exc)) from exc
        except (UnicodeError, ValueError) as exc:
            raise InvalidHashError(str(exc)) from exc

    def check_needs_rehash(self, password_hash: str) -> bool:
        return self._cffi.check_needs_rehash(password_hash)


@lru_cache(maxsize=8)
def _argon2(time_cost: int, memory_cost: int, parallelism: int) -> Argon2id:
    return Argon2id(time_cost, memory_cost, parallelism)


def _current_hasher():
    """The configured hasher: argon2id at the configured cost, or PASSWORD_HASHER (an object,
    or "module:name" of a class or object with argon2-cffi's hash / verify /
    check_needs_rehash; tests use it to inject a slow stub)."""
    cfg = current_app.config
    custom = cfg.get("PASSWORD_HASHER")
    if custom:
        return _resolve_hasher(custom) if isinstance(custom, str) else custom
    return _argon2(int(cfg["PASSWORD_HASH_TIME_COST"]), int(cfg["PASSWORD_HASH_MEMORY_COST"]),
                   int(cfg["PASSWORD_HASH_PARALLELISM"]))


@lru_cache(maxsize=8)
def _resolve_hasher(name: str):
    module, _, attr = name.partition(":")
    found = getattr(importlib.import_module(module), attr)
    return found() if isinstance(found, type) else found


# --- the per-process cap on concurrent password hashes -----------------------------------------

class _Slots:
    """A bounded semaphore, re-entrant per thread: a use case that takes a slot (sign-in, to
    claim its attempt before hashing) can then call verify_password and hash_password."""

    def __init__(self, size: int):
        self.size = size
        self._sem = threading.BoundedSemaphore(size)
        self._local = threading.local()

    def held(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def acquire(self, wait: float) -> bool:
        if self.held():
            self._local.depth += 1
            return True
        if not self._sem.acquire(timeout=wait):
            return False
        self._local.depth = 1
        return True

    def release(self) -> None:
        self._local.depth -= 1
        if self._local.depth == 0:
            self._sem.release()


_SLOTS_LOCK = threading.Lock()


def _slots() -> _Slots:
    ext = current_app.extensions
    slots = ext.get("authserver.hash_slots")
    if slots is None:
        size = current_app.config.get("PASSWORD_HASH_CONCURRENCY") or os.cpu_count() or 1
        with _SLOTS_LOCK:
            slots = ext.setdefault("authserver.hash_slots", _Slots(max(1, int(size))))
    return slots


@contextmanager
def hashing_slot():
    """Hold one of this process's password-hashing slots, or raise HashingBusy at once after
    PASSWORD_HASH_WAIT_MS. Every hash and verify below takes one; a caller that must do
    something between getting the slot and hashing (claim the attempt) takes it first, and
    the cheap path of a sign-in holds it while it imitates a check."""
    cfg = current_app.config
    slots = _slots()
    if not slots.acquire(int(cfg["PASSWORD_HASH_WAIT_MS"]) / 1000):
        raise HashingBusy(int(cfg["PASSWORD_HASH_BUSY_RETRY_AFTER"]))
    try:
        yield
    finally:
        slots.release()


def hash_password(password: str) -> str:
    """Hash with argon2id at the configured cost, within the hashing cap."""
    with hashing_slot():
        return _current_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password within the hashing cap; with no hash, spend the same work on a dummy
    (made at the configured cost) so timing says nothing."""
    hasher = _current_hasher()
    with hashing_slot():
        target = password_hash or _dummy_hash(hasher)
        started = time.perf_counter()
        try:
            ok = hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        _VERIFY_TIME.add(time.perf_counter() - started)
    return bool(ok) and password_hash is not None


@lru_cache(maxsize=8)
def _dummy_hash(hasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def needs_rehash(password_hash: str) -> bool:
    return _current_hasher().check_needs_rehash(password_hash)


class _RecentTime:
    """A moving average of recent verify times in this process (wall clock, slot held)."""

    def __init__(self):
        self.value: float | None = None
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.value = seconds if self.value is None else 0.8 * self.value + 0.2 * seconds


_VERIFY_TIME = _RecentTime()


def imitate_verify() -> None:
    """Take as long as a verify takes here lately, without hashing (a sleep: no CPU; the
    caller holds its slot meanwhile, as a verify would): the cheap path for names without an
    account once the failed-sign-in budget is spent. The first call in a process times one
    real verify of the dummy hash."""
    if _VERIFY_TIME.value is None:
        verify_password(None, secrets.token_urlsafe(12))
    time.sleep(_VERIFY_TIME.value or 0)


def _hash_keys() -> list[bytes]:
    """The HMAC keys derived from SECRET_KEY, then from each SECRET_KEY_FALLBACKS key."""
    keys = current_app.extensions.get("authserver.hash_key")
    if keys is None:
        secrets_ = [current_app.config["SECRET_KEY"],
                    *(current_app.config.get("SECRET_KEY_FALLBACKS") or ())]
        keys = [hmac.new(str(secret).encode(), b"authserver keyed hash v1",
                         hashlib.sha256).digest() for secret in secrets_]
        current_app.extensions["authserver.hash_key"] = keys
    return keys


def keyed_hash(value: str, purpose: str = "") -> str:
    """HMAC-SHA256 of a secret under the server key: codes, tokens and client secrets at rest."""
    msg = f"{purpose}\x00{value}".encode()
    return hmac.new(_hash_keys()[0], msg, hashlib.sha256).hexdigest()


def keyed_hash_matches(stored: str, value: str, purpose: str = "") -> bool:
    """Whether `stored` is the keyed hash of `value` under the secret key or a fallback.

    For client secrets: a secret-key change must not lock every client out while the old
    key is still listed in SECRET_KEY_FALLBACKS. Constant time per candidate key.
    """
    msg = f"{purpose}\x00{value}".encode()
    found = False
    for key in _hash_keys():
        found |= equal(stored, hmac.new(key, msg, hashlib.sha256).hexdigest())
    return found


def equal(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison for secrets."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def random_code(digits: int = 6) -> str:
    """A numeric verification code from the CSPRNG."""
    return "".join(secrets.choice(string.digits) for _ in range(digits))


def random_token(nbytes: int = 32) -> str:
    """An opaque URL-safe token with nbytes of randomness (32 bytes = 256 bits)."""
    return secrets.token_urlsafe(nbytes)


def temporary_password() -> str:
    """A strong generated password an administrator never sees: 4 groups of 5 characters."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)


SAFE_NEXT_PATHS = ("/authorize", "/refresh")


def safe_next(url: str | None) -> str | None:
    """Accept only a relative path to this issuer's /authorize or /refresh; else None."""
    if not url or len(url) > 4096:
        return None
    if "\\" in url or any(ord(c) < 32 for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith("//"):
        return None
    if parts.path not in SAFE_NEXT_PATHS:
        return None
    return url


def normalise_login(value: str | None) -> str:
    """The key a typed user name or email is compared and throttled on."""
    return (value or "").strip().lower()[:320]
