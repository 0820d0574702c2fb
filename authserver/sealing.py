"""Secrets that must be read back (authenticator secrets, private signing keys, upstream
client secrets) are sealed at rest with AES-256-GCM under a key derived from the secret key.

A sealed value is `v1.<base64url(nonce || ciphertext)>`; the purpose string is bound in as
associated data, so a value sealed for one column cannot be moved to another. Values sealed
under an earlier secret key still open while that key is listed in SECRET_KEY_FALLBACKS;
`SEALED` names every sealed column so one command can re-seal them all under the new key.
"""
from __future__ import annotations

import base64
import os
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, update

from .errors import AuthserverError

PREFIX = "v1."

# (table, column, purpose) of every sealed column; modules that seal a column add it here.
SEALED: list[tuple[str, str, str]] = []


class SealBroken(AuthserverError):
    """A sealed value that no configured secret key opens (wrong key, or tampered)."""


def register(table: str, column: str, purpose: str) -> str:
    """Declare a sealed column (for re-sealing after a secret-key change); returns purpose."""
    if (table, column, purpose) not in SEALED:
        SEALED.append((table, column, purpose))
    return purpose


def _derive(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"authserver sealing v1",
                info=b"aes-256-gcm").derive(str(secret_key).encode())


def _keys(config: Mapping) -> Iterable[bytes]:
    yield _derive(config["SECRET_KEY"])
    for old in config.get("SECRET_KEY_FALLBACKS") or ():
        yield _derive(old)


def seal(config: Mapping, plaintext: bytes, purpose: str) -> str:
    """Encrypt and authenticate plaintext for one purpose under the current secret key."""
    nonce = os.urandom(12)
    box = AESGCM(_derive(config["SECRET_KEY"])).encrypt(nonce, plaintext, purpose.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + box).decode()


def unseal(config: Mapping, sealed: str, purpose: str) -> bytes:
    """Open a sealed value with the current secret key or a fallback; SealBroken otherwise."""
    if not isinstance(sealed, str) or not sealed.startswith(PREFIX):
        raise SealBroken("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(PREFIX):].encode())
    except ValueError as exc:
        raise SealBroken("not a sealed value") from exc
    for key in _keys(config):
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], purpose.encode())
        except (InvalidTag, ValueError):
            continue
    raise SealBroken("no configured secret key opens this value")


def reseal(config: Mapping, sealed: str, purpose: str) -> str:
    """The same plaintext sealed under the current secret key (after a key change)."""
    return seal(config, unseal(config, sealed, purpose), purpose)


def reseal_all(session, tables: Mapping, config: Mapping) -> dict[str, int]:
    """Re-seal every value of every SEALED column under the current secret key, in the
    caller's transaction; returns {"table.column": values re-sealed}.

    A value that the current key already opens is left as it is, so running it again
    changes nothing; a value no configured key opens raises SealBroken (nothing is written
    once the caller rolls back). `tables` maps table names to SQLAlchemy Tables.
    """
    current = {**config, "SECRET_KEY_FALLBACKS": ()}
    counts: dict[str, int] = {}
    for table_name, column, purpose in SEALED:
        table = tables[table_name]
        keys, target = list(table.primary_key.columns), table.c[column]
        count = 0
        for row in session.execute(select(*keys, target).where(target.is_not(None))).all():
            if _opens(current, row[-1], purpose):
                continue
            try:
                new = reseal(config, row[-1], purpose)
            except SealBroken as exc:
                raise SealBroken(f"{table_name}.{column} {tuple(row[:-1])}: {exc}") from exc
            session.execute(update(table).where(*[key == value for key, value in zip(keys, row)])
                            .values({column: new}))
            count += 1
        counts[f"{table_name}.{column}"] = count
    return counts


def _opens(config: Mapping, sealed: str, purpose: str) -> bool:
    try:
        unseal(config, sealed, purpose)
    except SealBroken:
        return False
    return True
