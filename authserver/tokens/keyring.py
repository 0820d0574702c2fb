"""The keyring: the issuer's signing keys loaded for signing and the JWKS, cached per app.

The key set lives in the database (keystore.py); each app caches one Keyring built from it
and re-reads the set's generation, one indexed row, at most every KEYS_RELOAD_INTERVAL
seconds, so a rotation done on any machine reaches every machine within that interval and
no request reads the database for a key. The keys folder (keyfiles.py) gets a copy of the
set on each load. Which key signs and which are published is computed from the clock
(keyset.py), so every node running the same set follows the same schedule.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from datetime import datetime
from typing import NamedTuple

from flask import Flask, current_app
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from .. import clock
from ..errors import AuthserverError
from ..extensions import db
from . import keyfiles, keystore
from .keyset import KeyEntry, StoredKey, format_time, load_private_key, signing_entries, status

EXTENSION = "authserver.keyring"
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

log = logging.getLogger("authserver")


class SigningKeyMissing(AuthserverError):
    """No key of the requested alg may sign at this moment."""


class _LoadedKey(NamedTuple):
    entry: KeyEntry
    private: RSAKey | ECKey
    public: RSAKey | ECKey
    jwk: dict


class _View(NamedTuple):
    jwks: dict
    keyset: KeySet
    signing: dict


def _load_key(key: StoredKey, sealed: bool) -> _LoadedKey:
    entry = key.entry
    native = load_private_key(key, f"key {entry.kid}", sealed=sealed)
    params = {"kid": entry.kid, "alg": entry.alg, "use": "sig"}
    key_cls = RSAKey if entry.alg == "RS256" else ECKey
    public = key_cls.import_key(native.public_key(), parameters=params)
    jwk = {k: v for k, v in public.as_dict(private=False).items() if k not in PRIVATE_MEMBERS}
    return _LoadedKey(entry, key_cls.import_key(native, parameters=params), public, jwk)


class Keyring:
    """The loaded keys. Answers depend on `now` and are cached per key state: the state
    only changes at an activates_at or retires_at instant, so a view is keyed by how
    many of those instants have passed (a bisect and a dict lookup per call)."""

    def __init__(self, keys: list[StoredKey], *, sealed: bool = False):
        """Load and check every key (RSA under 2048 bits, or a wrong type, is refused);
        sealed=True for keys read from the database (see keyset.load_private_key)."""
        loaded = [_load_key(key, sealed) for key in keys]
        self._keys = {key.entry.kid: key for key in loaded}
        self._instants = sorted({key.entry.activates_at for key in loaded}
                                | {key.entry.retires_at for key in loaded if key.entry.retires_at})
        self._views: dict[int, _View] = {}

    @classmethod
    def from_folder(cls, keys_dir: str) -> Keyring:
        """The keys of a keys folder (keys.json and the PEMs, each 0600 at most)."""
        return cls(keyfiles.read_folder(keys_dir))

    def _view(self, now: datetime) -> _View:
        index = bisect.bisect_right(self._instants, now)
        view = self._views.get(index)
        if view is None:
            published = [key for key in self._keys.values() if key.entry.published(now)]
            signing = signing_entries([key.entry for key in self._keys.values()], now)
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
                                    "check `authserver keys list` or run `authserver keys rotate`")
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
        signing = signing_entries(manifest, now)
        return [{"kid": e.kid, "alg": e.alg, "created_at": e.created_at,
                 "activates_at": e.activates_at, "retires_at": e.retires_at,
                 "status": status(e, signing, now)} for e in manifest]


class _KeyringCache:
    """One Keyring per app, built from the database; reloaded when the key set's generation
    changes, which is checked at most once every KEYS_RELOAD_INTERVAL seconds."""

    def __init__(self, app: Flask):
        self.config = app.config
        self.keys_dir = app.config["KEYS_DIR"]
        self.interval = float(app.config["KEYS_RELOAD_INTERVAL"])
        with app.app_context():
            self.engine = db.engine
        self._lock = threading.Lock()
        self._keyring: Keyring | None = None
        self._generation: int | None = None
        self._checked_at = 0.0
        self.outcome: str | None = None

    def _fresh(self) -> bool:
        # A monotonic clock going backwards (only freezegun does that) counts as stale.
        return 0 <= time.monotonic() - self._checked_at < self.interval

    def get(self) -> Keyring:
        keyring = self._keyring
        if keyring is not None and self._fresh():
            return keyring
        with self._lock:
            if self._keyring is None:
                self._start()
            elif not self._fresh():
                self._refresh()
            return self._keyring

    def start(self) -> str:
        """Adopt (or seed, or create) the issuer's key set and load it; returns what happened."""
        with self._lock:
            return self._start()

    def _start(self) -> str:
        outcome = keystore.ensure_key_set(self.engine, self.config, self._seed, clock.now())
        self._load()
        if outcome != "present":
            log.info("signing key set %s in the database", outcome)
        if self.outcome is None or outcome != "present":
            self.outcome = outcome  # what this process did first (the app factory starts it)
        return self.outcome

    def _seed(self) -> list[StoredKey]:
        keys = keyfiles.read_folder(self.keys_dir)
        Keyring(keys)  # refuse weak or broken keys before they become the issuer's
        return keys

    def _load(self) -> None:
        with self.engine.connect() as conn:
            generation, keys = keystore.read_key_set(conn, self.config)
        if generation is None or not keys:
            raise keystore.KeySetMissing("the key set is gone from the database")
        keyring = Keyring(keys, sealed=True)
        try:
            keyfiles.mirror(self.keys_dir, keys, clock.now())
        except OSError:
            log.exception("could not write the keys folder %s (a copy only; signing goes on)",
                          self.keys_dir)
        self._keyring, self._generation = keyring, generation
        self._checked_at = time.monotonic()

    def _refresh(self) -> None:
        try:
            with self.engine.connect() as conn:
                generation = keystore.read_generation(conn)
            if generation != self._generation:
                self._load()
        except (SQLAlchemyError, AuthserverError):
            log.exception("keyring reload failed; still using the previous keys")
        self._checked_at = time.monotonic()

    def invalidate(self) -> None:
        """Check the generation on the next get(), e.g. right after this process rotated."""
        with self._lock:
            self._checked_at = float("-inf")


def _has_schema(engine) -> bool:
    try:
        return inspect(engine).has_table(keystore.KeySetState.__tablename__)
    except SQLAlchemyError:
        log.warning("database unreachable at start: the signing keys load on first use")
        return False


def init_app(app: Flask) -> None:
    """Cache the keyring on the app; load it now (failing fast) when the schema exists,
    else on first use (a fresh database before `authserver init` or wsgi's migration)."""
    cache = _KeyringCache(app)
    app.extensions[EXTENSION] = cache
    if _has_schema(cache.engine):
        cache.start()


def start_app(app: Flask) -> str:
    """Adopt, seed or create the issuer's key set now, after the schema is up to date
    (`authserver init`, `run`, wsgi.py); returns what happened. Fails fast, like a start."""
    cache = app.extensions[EXTENSION]
    outcome = cache.start()
    if cache.engine.url.database not in (None, "", ":memory:"):
        cache.engine.dispose()  # `gunicorn --preload`: no pooled connection crosses the fork
    return outcome


def keyring_for(app: Flask) -> Keyring:
    """The app's Keyring, reloaded when another process or machine changed the key set."""
    return app.extensions[EXTENSION].get()


def current_keyring() -> Keyring:
    """The Keyring of the current app."""
    return keyring_for(current_app)


def fresh_keyring(app: Flask) -> Keyring:
    """The app's Keyring after checking the database now (the `keys` commands)."""
    cache = app.extensions[EXTENSION]
    cache.invalidate()
    return cache.get()


def rotate_app(app: Flask, now: datetime) -> tuple[list[KeyEntry], list[KeyEntry]]:
    """keystore.rotate_key_set with the app's settings; (new keys, keys now retiring).

    Old keys outlive the longer token lifetime plus KEY_RETIRE_SLACK.
    """
    config = app.config
    result = keystore.rotate_key_set(
        app.extensions[EXTENSION].engine, config, now,
        jwks_cache_ttl=int(config["JWKS_CACHE_TTL"]),
        max_token_ttl=max(int(config["ACCESS_TOKEN_TTL"]), int(config["ID_TOKEN_TTL"])),
        slack=int(config["KEY_RETIRE_SLACK"]))
    fresh_keyring(app)  # this process, and this machine's keys folder, at once
    return result


def import_app(app: Flask, keys: list[StoredKey], now: datetime, *, replace: bool):
    """keystore.import_key_set on the app's database; (kids imported, kids dropped)."""
    result = keystore.import_key_set(app.extensions[EXTENSION].engine, app.config, keys, now,
                                     replace=replace)
    fresh_keyring(app)
    return result


def export_keys(app: Flask) -> list[StoredKey]:
    """Every key of the issuer's set, private parts unsealed (for `keys export` only)."""
    with app.extensions[EXTENSION].engine.connect() as conn:
        generation, keys = keystore.read_key_set(conn, app.config)
    if generation is None:
        raise keystore.KeySetMissing("no key set in the database yet: run `authserver init`")
    return keys
