"""The issuer's signing key set in the database: the one source every node loads and signs from.

Private keys are sealed under the secret key (sealing.py). The single `key_set` row is the
set's lock and version: its primary key lets exactly one of two racing first starts create
the set (the other adopts it), every change takes its row lock first (on SQLite, the
database write lock) and bumps its generation, and a node compares that one integer to know
whether its cached keyring is current. Each function here is one use case in its own
transaction on its own session, so a request's pending work is never committed with it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import sealing
from ..errors import AuthserverError
from . import keyset
from .keyset import KeyEntry, StoredKey
from .models import KeySetState, SigningKey

PURPOSE = sealing.register("signing_keys", "private_key", "signing key")
STATE_ID = 1


class KeySetMissing(AuthserverError):
    """The database holds no key set yet (run `authserver init`)."""


class KeySetConflict(AuthserverError):
    """An import would drop or replace keys of the issuer's current set."""


def read_generation(conn: Connection) -> int | None:
    """The key set's generation, or None when there is no set yet: one indexed row."""
    return conn.execute(select(KeySetState.generation)
                        .where(KeySetState.id == STATE_ID)).scalar_one_or_none()


def read_key_set(conn: Connection, config: Mapping) -> tuple[int | None, list[StoredKey]]:
    """(generation, keys) with the private keys unsealed; SealBroken under a wrong secret key.

    The generation is read first: a change committed between the two reads is seen as a
    newer generation at the next check, never missed.
    """
    generation = read_generation(conn)
    rows = conn.execute(select(SigningKey.__table__)).all()
    return generation, [_stored(row, config) for row in rows]


def _entry(row) -> KeyEntry:
    return KeyEntry(row.kid, row.alg, row.created_at, row.activates_at, row.retires_at)


def _stored(row, config: Mapping) -> StoredKey:
    try:
        return StoredKey(_entry(row), sealing.unseal(config, row.private_key, PURPOSE))
    except sealing.SealBroken as exc:
        raise sealing.SealBroken(
            f"signing key {row.kid} in the database is sealed under another secret key: set "
            "AUTHSERVER_SECRET_KEY to the one every other node uses (after a secret-key "
            "change, list the old key in AUTHSERVER_SECRET_KEY_FALLBACKS and run "
            "`authserver secret-key reseal`)") from exc


def _lock(session: Session) -> bool:
    """Take the key set's lock (row lock on PostgreSQL, write lock on SQLite); False if none."""
    result = session.execute(update(KeySetState).where(KeySetState.id == STATE_ID)
                             .values(generation=KeySetState.generation))
    return result.rowcount == 1


def _claim(session: Session, now: datetime) -> bool:
    """Lock the key set, creating its row if there is none; True if this call created it."""
    if _lock(session):
        return False
    session.add(KeySetState(id=STATE_ID, generation=1, updated_at=now))
    try:
        session.flush()
        return True
    except IntegrityError:  # another node created it first: wait for it, then use its set
        session.rollback()
        _lock(session)
        return False


def _bump(session: Session, now: datetime) -> None:
    session.execute(update(KeySetState).where(KeySetState.id == STATE_ID)
                    .values(generation=KeySetState.generation + 1, updated_at=now))


def _add(session: Session, config: Mapping, key: StoredKey) -> None:
    e = key.entry
    session.add(SigningKey(kid=e.kid, alg=e.alg, private_key=sealing.seal(config, key.pem, PURPOSE),
                           created_at=e.created_at, activates_at=e.activates_at,
                           retires_at=e.retires_at))


def ensure_key_set(engine: Engine, config: Mapping, seed: Callable[[], list[StoredKey]],
                   now: datetime) -> str:
    """Make sure the issuer has a key set; returns what it did.

    "present": a set exists (this node adopts it). "seeded": the database had no key, so
    `seed()` (the local keys folder, an install from before keys lived in the database)
    became the set. "created": no key anywhere, a new RS256 and ES256 key sign at once.
    "completed": an alg had no published key left and got one. Racing starts create one set.
    """
    with Session(engine) as session:
        created = _claim(session, now)
        entries = [_entry(row) for row in session.scalars(select(SigningKey))]
        outcome, added = "completed", []
        if not entries:
            added = seed()
            outcome = "seeded" if added else "created"
        added += keyset.complete(entries + [key.entry for key in added], now)
        if not added:
            session.rollback()
            return "present"
        for key in added:
            _add(session, config, key)
        if not created:
            _bump(session, now)
        session.commit()
        return outcome


def rotate_key_set(engine: Engine, config: Mapping, now: datetime, *, jwks_cache_ttl: int,
                   max_token_ttl: int, slack: int) -> tuple[list[KeyEntry], list[KeyEntry]]:
    """Add a new key per alg that signs from now + jwks_cache_ttl (keyset.rotation); returns
    (the new keys, the keys whose retirement this rotation scheduled)."""
    with Session(engine) as session:
        if not _lock(session):
            raise KeySetMissing("no key set in the database yet: run `authserver init` first")
        rows = {row.kid: row for row in session.scalars(select(SigningKey))}
        updated, new = keyset.rotation([_entry(row) for row in rows.values()], now,
                                       jwks_cache_ttl=jwks_cache_ttl,
                                       max_token_ttl=max_token_ttl, slack=slack)
        retiring = [entry for entry in updated if rows[entry.kid].retires_at is None]
        for entry in retiring:
            rows[entry.kid].retires_at = entry.retires_at
        for key in new:
            _add(session, config, key)
        _bump(session, now)
        session.commit()
        return [key.entry for key in new], retiring


def import_key_set(engine: Engine, config: Mapping, keys: list[StoredKey], now: datetime, *,
                   replace: bool = False) -> tuple[list[str], list[str]]:
    """Make `keys` (an export, another install's folder) the issuer's key set, with their own
    schedule; returns (kids added or updated, kids dropped).

    Keys of the current set that are not in `keys` are dropped only with replace=True
    (tokens they signed stop verifying); a kid present on both sides with other key
    material is refused. One transaction: every node sees the old set or the new one.
    """
    if not keys:
        raise KeySetConflict("nothing to import: the file or folder holds no key")
    for key in keys:
        keyset.load_private_key(key, f"key {key.entry.kid}")
    incoming = {key.entry.kid: key for key in keys}
    with Session(engine) as session:
        created = _claim(session, now)
        rows = {row.kid: row for row in session.scalars(select(SigningKey))}
        clash = sorted(kid for kid in set(rows) & set(incoming) if keyset.public_der(
            _stored(rows[kid], config)) != keyset.public_der(incoming[kid]))
        if clash:
            raise KeySetConflict(f"kid {', '.join(clash)} exists here with other key material")
        extra = sorted(set(rows) - set(incoming))
        if extra and not replace:
            raise KeySetConflict(
                f"this installation's key set has keys that are not in the import "
                f"({', '.join(extra)}); re-run with --replace to drop them (tokens they "
                "signed stop verifying)")
        for kid in extra:
            session.delete(rows[kid])
        for kid, key in incoming.items():
            if kid in rows:
                rows[kid].activates_at, rows[kid].retires_at = (key.entry.activates_at,
                                                                key.entry.retires_at)
            else:
                _add(session, config, key)
        if not created:
            _bump(session, now)
        session.commit()
        return sorted(incoming), extra
