"""Secrets at rest and in comparison: argon2id, keyed hashes, random values, safe redirects."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from functools import lru_cache
from urllib.parse import urlsplit

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                          parallelism=parallelism, type=Type.ID)


def _current_hasher() -> PasswordHasher:
    cfg = current_app.config
    return _hasher(int(cfg["PASSWORD_HASH_TIME_COST"]), int(cfg["PASSWORD_HASH_MEMORY_COST"]),
                   int(cfg["PASSWORD_HASH_PARALLELISM"]))


def hash_password(password: str) -> str:
    """Hash with argon2id at the configured cost."""
    return _current_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash, spend the same work on a dummy so timing says nothing."""
    hasher = _current_hasher()
    target = password_hash or _dummy_hash(hasher)
    try:
        ok = hasher.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None


@lru_cache(maxsize=8)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def needs_rehash(password_hash: str) -> bool:
    return _current_hasher().check_needs_rehash(password_hash)


def _hash_key() -> bytes:
    key = current_app.extensions.get("authserver.hash_key")
    if key is None:
        key = hmac.new(str(current_app.config["SECRET_KEY"]).encode(), b"authserver keyed hash v1",
                       hashlib.sha256).digest()
        current_app.extensions["authserver.hash_key"] = key
    return key


def keyed_hash(value: str, purpose: str = "") -> str:
    """HMAC-SHA256 of a secret under the server key: codes, tokens and client secrets at rest."""
    msg = f"{purpose}\x00{value}".encode()
    return hmac.new(_hash_key(), msg, hashlib.sha256).hexdigest()


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
    """Accept only a relative path to this issuer's /authorize or /refresh; anything else is None."""
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
