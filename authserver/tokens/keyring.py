"""Signing keys in keys/: generation, time-based rotation and the public JWKS.

State is computed from the clock, never stored: a key is published while now < retires_at
and signs when it is the newest of its alg with activates_at <= now. Rotation publishes the
next key a JWKS cache lifetime before it signs (OIDC Core 10.1.1, RFC 7517 section 5).
"""
from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, current_app
from joserfc.jwk import ECKey, KeySet, RSAKey

from .. import clock
from ..errors import AuthserverError

ALGS = ("RS256", "ES256")
MANIFEST = "keys.json"
EXTENSION = "authserver.keyring"
RSA_MIN_BITS = 2048
RELOAD_CHECK_INTERVAL = 1.0  # seconds between two stat() calls on the manifest
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the kid is also a file name

log = logging.getLogger("authserver")


class KeyFileTooOpen(AuthserverError):
    """A private key file can be read or written by group or others."""


class KeyTooWeak(AuthserverError):
    """A key is below the minimum strength (RSA under 2048 bits)."""


class KeyFileInvalid(AuthserverError):
    """The manifest or a key file is missing, malformed or of the wrong type."""


class SigningKeyMissing(AuthserverError):
    """No key of the requested alg may sign at this moment."""


@dataclass(frozen=True)
class KeyEntry:
    """One item of keys.json; times are aware UTC datetimes."""

    kid: str
    alg: str
    created_at: datetime
    activates_at: datetime
    retires_at: datetime | None = None

    def published(self, now: datetime) -> bool:
        """In the JWKS until retires_at, including before it signs."""
        return self.retires_at is None or now < self.retires_at

    def to_json(self) -> dict:
        return {"kid": self.kid, "alg": self.alg, "created_at": format_time(self.created_at),
                "activates_at": format_time(self.activates_at),
                "retires_at": format_time(self.retires_at)}

    @classmethod
    def from_json(cls, item: dict) -> KeyEntry:
        try:
            times = [None if item.get(name) is None else _utc(datetime.fromisoformat(item[name]))
                     for name in ("created_at", "activates_at", "retires_at")]
            entry = cls(item["kid"], item["alg"], *times)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise KeyFileInvalid(f"{MANIFEST}: malformed entry {item!r}") from exc
        if entry.alg not in ALGS or not _KID.match(str(entry.kid)) or None in times[:2]:
            raise KeyFileInvalid(f"{MANIFEST}: bad entry {item!r}")
        return entry


def format_time(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z suffix (None stays None)."""
    return None if value is None else _utc(value).isoformat().replace("+00:00", "Z")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: use clock.now()")
    return value.astimezone(timezone.utc)


def _signing_entries(entries: list[KeyEntry], now: datetime) -> dict[str, KeyEntry]:
    signing: dict[str, KeyEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.activates_at, e.created_at, e.kid)):
        if entry.activates_at <= now and entry.published(now):
            signing[entry.alg] = entry  # the newest active one wins
    return signing


def _status(entry: KeyEntry, signing: dict[str, KeyEntry], now: datetime) -> str:
    if not entry.published(now):
        return "retired"
    if signing.get(entry.alg) is entry:
        return "signing"
    return "next" if entry.activates_at > now else "published"


def read_manifest(keys_dir: str) -> list[KeyEntry]:
    """The entries of keys.json, or [] when there is none yet."""
    try:
        with open(os.path.join(keys_dir, MANIFEST), "rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise KeyFileInvalid(f"{MANIFEST} is not valid JSON") from exc
    if not isinstance(data, list):
        raise KeyFileInvalid(f"{MANIFEST} must hold a list of keys")
    return [KeyEntry.from_json(item) for item in data]


def _write_atomic(path: str, data: bytes) -> None:
    """Write a 0600 temp file in the same directory, then rename it over the target."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(keys_dir: str) -> Iterator[list[KeyEntry]]:
    """Exclusive flock on keys_dir/.lock (two processes never write keys at once)."""
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(keys_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield read_manifest(keys_dir)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _write_manifest(keys_dir: str, entries: list[KeyEntry]) -> None:
    body = json.dumps([entry.to_json() for entry in entries], indent=2) + "\n"
    _write_atomic(os.path.join(keys_dir, MANIFEST), body.encode())


def _new_key(keys_dir: str, alg: str, now: datetime, activates_at: datetime,
             taken: set[str]) -> KeyEntry:
    kid = f"{now:%Y-%m-%d}-{alg.lower()}-{secrets.token_hex(2)}"
    while kid in taken:
        kid = f"{now:%Y-%m-%d}-{alg.lower()}-{secrets.token_hex(2)}"
    taken.add(kid)
    if alg == "RS256":
        native = rsa.generate_private_key(public_exponent=65537, key_size=RSA_MIN_BITS)
    else:
        native = ec.generate_private_key(ec.SECP256R1())
    pem = native.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    _write_atomic(os.path.join(keys_dir, f"{kid}.pem"), pem)  # PEM first, manifest last
    return KeyEntry(kid, alg, now, activates_at)


def ensure_keys(keys_dir: str, now: datetime) -> bool:
    """Create keys_dir (0700) and an RS256 and an ES256 key when none is published.

    Keys made here sign at once (first start). Runs under an exclusive lock, so
    racing processes create one set. Returns True if it wrote a key.
    """
    now = _utc(now).replace(microsecond=0)
    with _locked(keys_dir) as entries:
        missing = [alg for alg in ALGS
                   if not any(e.alg == alg and e.published(now) for e in entries)]
        if missing:
            taken = {entry.kid for entry in entries}
            new = [_new_key(keys_dir, alg, now, now, taken) for alg in missing]
            _write_manifest(keys_dir, entries + new)
    return bool(missing)


def rotate(keys_dir: str, now: datetime, *, jwks_cache_ttl: int, max_token_ttl: int,
           slack: int) -> list[str]:
    """Write a new key per alg that signs from now + jwks_cache_ttl; return the new kids.

    Every older key without a retires_at (the signing one, and a pending one from
    an earlier rotation) retires at new.activates_at + max_token_ttl + slack, after
    the last token it can have signed expires. A retires_at already set is kept.
    """
    now = _utc(now).replace(microsecond=0)
    activates_at = now + timedelta(seconds=jwks_cache_ttl)
    retires_at = activates_at + timedelta(seconds=max_token_ttl + slack)
    with _locked(keys_dir) as entries:
        entries = [entry if entry.retires_at is not None else replace(entry, retires_at=retires_at)
                   for entry in entries]
        taken = {entry.kid for entry in entries}
        new = [_new_key(keys_dir, alg, now, activates_at, taken) for alg in ALGS]
        _write_manifest(keys_dir, entries + new)
    return [entry.kid for entry in new]


def _read_private_key(path: str):
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode  # of the file we read, not a path race
            if mode & 0o077:
                raise KeyFileTooOpen(f"{path} has mode {mode & 0o777:o}: run chmod 600 {path}")
            return serialization.load_pem_private_key(fh.read(), password=None)
    except FileNotFoundError as exc:
        raise KeyFileInvalid(f"missing key file {path}") from exc
    except (ValueError, TypeError) as exc:
        raise KeyFileInvalid(f"{path} is not an unencrypted PEM private key") from exc


def _check_key(native, entry: KeyEntry, path: str) -> None:
    if entry.alg == "RS256":
        if not isinstance(native, rsa.RSAPrivateKey):
            raise KeyFileInvalid(f"{path} is not an RSA key but the manifest says RS256")
        if native.key_size < RSA_MIN_BITS:
            raise KeyTooWeak(f"{path} is RSA {native.key_size} bits; {RSA_MIN_BITS} is the minimum")
    elif not (isinstance(native, ec.EllipticCurvePrivateKey)
              and isinstance(native.curve, ec.SECP256R1)):
        raise KeyFileInvalid(f"{path} is not a P-256 key but the manifest says ES256")


class _LoadedKey(NamedTuple):
    entry: KeyEntry
    private: RSAKey | ECKey
    public: RSAKey | ECKey
    jwk: dict


class _View(NamedTuple):
    jwks: dict
    keyset: KeySet
    signing: dict


def _load_key(keys_dir: str, entry: KeyEntry) -> _LoadedKey:
    path = os.path.join(keys_dir, f"{entry.kid}.pem")
    native = _read_private_key(path)
    _check_key(native, entry, path)
    params = {"kid": entry.kid, "alg": entry.alg, "use": "sig"}
    key_cls = RSAKey if entry.alg == "RS256" else ECKey
    public = key_cls.import_key(native.public_key(), parameters=params)
    jwk = {k: v for k, v in public.as_dict(private=False).items() if k not in PRIVATE_MEMBERS}
    return _LoadedKey(entry, key_cls.import_key(native, parameters=params), public, jwk)


class Keyring:
    """The loaded keys. Answers depend on `now` and are cached per key state: the state
    only changes at an activates_at or retires_at instant, so a view is keyed by how
    many of those instants have passed (a bisect and a dict lookup per call)."""

    def __init__(self, keys: list[_LoadedKey]):
        self._keys = {key.entry.kid: key for key in keys}
        self._instants = sorted({key.entry.activates_at for key in keys}
                                | {key.entry.retires_at for key in keys if key.entry.retires_at})
        self._views: dict[int, _View] = {}

    @classmethod
    def load(cls, keys_dir: str) -> Keyring:
        """Read keys.json and every PEM; refuse files more open than 0600 and weak keys."""
        return cls([_load_key(keys_dir, entry) for entry in read_manifest(keys_dir)])

    def _view(self, now: datetime) -> _View:
        index = bisect.bisect_right(self._instants, now)
        view = self._views.get(index)
        if view is None:
            published = [key for key in self._keys.values() if key.entry.published(now)]
            signing = _signing_entries([key.entry for key in self._keys.values()], now)
            view = self._views.setdefault(index, _View(
                {"keys": [dict(key.jwk) for key in published]},
                KeySet([key.public for key in published]),
                {alg: self._keys[entry.kid].private for alg, entry in signing.items()}))
        return view

    def signing_key(self, alg: str, now: datetime) -> RSAKey | ECKey:
        """The private key that signs `alg` tokens now; its .kid goes in the JWS header."""
        key = self._view(now).signing.get(alg)
        if key is None:
            raise SigningKeyMissing(f"no {alg} key may sign at {format_time(now)}; "
                                    "check keys.json or run `authserver keys rotate`")
        return key

    def public_jwks(self, now: datetime) -> dict:
        """The JWKS (RFC 7517 section 5): public members only. Shared: do not mutate."""
        return self._view(now).jwks

    def verification_keyset(self, now: datetime) -> KeySet:
        """Public keys of every published key, to verify the tokens we signed."""
        return self._view(now).keyset

    def entries(self, now: datetime) -> list[dict]:
        """Every key with its computed status: next, signing, published or retired."""
        manifest = sorted((key.entry for key in self._keys.values()),
                          key=lambda e: (e.created_at, e.alg, e.kid))
        signing = _signing_entries(manifest, now)
        return [{"kid": e.kid, "alg": e.alg, "created_at": e.created_at,
                 "activates_at": e.activates_at, "retires_at": e.retires_at,
                 "status": _status(e, signing, now)} for e in manifest]


def _manifest_signature(keys_dir: str) -> tuple | None:
    try:
        stat = os.stat(os.path.join(keys_dir, MANIFEST))
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_ino, stat.st_size)


class _KeyringCache:
    """One Keyring per app, reloaded when keys.json changes (checked at most once a second)."""

    def __init__(self, keys_dir: str):
        self.keys_dir = keys_dir
        self._lock = threading.Lock()
        self._keyring: Keyring | None = None
        self._signature: tuple | None = None
        self._checked_at = 0.0

    def _fresh(self) -> bool:
        # A monotonic clock going backwards (only freezegun does that) counts as stale.
        return 0 <= time.monotonic() - self._checked_at < RELOAD_CHECK_INTERVAL

    def get(self) -> Keyring:
        keyring = self._keyring
        if keyring is not None and self._fresh():
            return keyring
        with self._lock:
            if self._keyring is None or not self._fresh():
                self._refresh()
            return self._keyring

    def _refresh(self) -> None:
        signature = _manifest_signature(self.keys_dir)  # before loading: never miss a change
        if self._keyring is None or signature != self._signature:
            try:
                self._keyring, self._signature = Keyring.load(self.keys_dir), signature
            except AuthserverError:
                if self._keyring is None:
                    raise
                log.exception("keyring reload failed; still using the previous keys")
        self._checked_at = time.monotonic()

    def invalidate(self) -> None:
        """Reload on the next get(), e.g. right after this process rotated the keys."""
        with self._lock:
            self._signature, self._checked_at = None, float("-inf")


def init_app(app: Flask) -> None:
    """Create the keys on first start, load them (failing fast) and cache them on the app."""
    cache = _KeyringCache(app.config["KEYS_DIR"])
    ensure_keys(cache.keys_dir, clock.now())
    cache.get()
    app.extensions[EXTENSION] = cache


def keyring_for(app: Flask) -> Keyring:
    """The app's Keyring, reloaded when another process rotated the keys."""
    return app.extensions[EXTENSION].get()


def current_keyring() -> Keyring:
    """The Keyring of the current app."""
    return keyring_for(current_app)


def rotate_app(app: Flask, now: datetime) -> list[str]:
    """rotate() with the app's settings; old keys outlive the longer token lifetime."""
    config = app.config
    kids = rotate(config["KEYS_DIR"], now, jwks_cache_ttl=int(config["JWKS_CACHE_TTL"]),
                  max_token_ttl=max(int(config["ACCESS_TOKEN_TTL"]), int(config["ID_TOKEN_TTL"])),
                  slack=int(config["KEY_RETIRE_SLACK"]))
    if EXTENSION in app.extensions:
        app.extensions[EXTENSION].invalidate()
    return kids
