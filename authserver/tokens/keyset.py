"""The rules of an issuer's signing key set, with no storage: entries, new keys, the schedule.

State is computed from the clock, never stored: a key is published while now < retires_at
and signs when it is the newest of its alg with activates_at <= now. Rotation publishes the
next key a JWKS cache lifetime before it signs (OIDC Core 10.1.1, RFC 7517 section 5).
Where a key set is kept (the database, a keys folder, an export file) is another module's job.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import AuthserverError

ALGS = ("RS256", "ES256")
RSA_MIN_BITS = 2048
KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # the kid is also a file name


class KeyTooWeak(AuthserverError):
    """A key is below the minimum strength (RSA under 2048 bits)."""


class KeyFileInvalid(AuthserverError):
    """A key entry or its private key is missing, malformed or of the wrong type."""


class RotationPending(AuthserverError):
    """A rotation is refused while the keys of the previous one have not started signing."""

    def __init__(self, pending: list[KeyEntry], now: datetime):
        starts = min(entry.activates_at for entry in pending)
        wait = max(1, -(-int((starts - now).total_seconds()) // 60))
        super().__init__(
            f"A rotation is already pending: the new keys {', '.join(e.kid for e in pending)} "
            f"are published and start signing at {format_time(starts)} (in {wait} minute"
            f"{'' if wait == 1 else 's'}). "
            "Rotating again now would retire them before they ever sign. Run `authserver keys "
            "rotate` again after that time; `authserver keys list` shows the schedule.",
            pending=[entry.kid for entry in pending], starts=starts)


@dataclass(frozen=True)
class KeyEntry:
    """One key's metadata (keys.json, a signing_keys row); times are aware UTC datetimes."""

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
            times = [None if item.get(name) is None else utc(datetime.fromisoformat(item[name]))
                     for name in ("created_at", "activates_at", "retires_at")]
            entry = cls(item["kid"], item["alg"], *times)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise KeyFileInvalid(f"malformed key entry {item!r}") from exc
        entry.check()
        return entry

    def check(self) -> None:
        if self.alg not in ALGS or not KID.match(str(self.kid)) or None in (
                self.created_at, self.activates_at):
            raise KeyFileInvalid(f"bad key entry {self.to_json()!r}")


class StoredKey(NamedTuple):
    """A key as every store keeps it: the entry and the PKCS#8 PEM of the private key."""

    entry: KeyEntry
    pem: bytes


def format_time(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z suffix (None stays None)."""
    return None if value is None else utc(value).isoformat().replace("+00:00", "Z")


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: use clock.now()")
    return value.astimezone(UTC)


def signing_entries(entries: list[KeyEntry], now: datetime) -> dict[str, KeyEntry]:
    """The entry that signs each alg at `now`: the newest active, still published one."""
    signing: dict[str, KeyEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.activates_at, e.created_at, e.kid)):
        if entry.activates_at <= now and entry.published(now):
            signing[entry.alg] = entry
    return signing


def status(entry: KeyEntry, signing: dict[str, KeyEntry], now: datetime) -> str:
    """next (published, not signing yet), signing, published (verifies only) or retired."""
    if not entry.published(now):
        return "retired"
    if signing.get(entry.alg) == entry:
        return "signing"
    return "next" if entry.activates_at > now else "published"


def pending_entries(entries: list[KeyEntry], now: datetime) -> list[KeyEntry]:
    """The published keys that do not sign yet (a rotation's "next" keys)."""
    return sorted((e for e in entries if e.activates_at > now and e.published(now)),
                  key=lambda e: (e.activates_at, e.alg, e.kid))


def missing_algs(entries: list[KeyEntry], now: datetime) -> list[str]:
    """The algs without any published key (a first start, or every key of it retired)."""
    return [alg for alg in ALGS if not any(e.alg == alg and e.published(now) for e in entries)]


def new_key(alg: str, now: datetime, activates_at: datetime, taken: set[str]) -> StoredKey:
    """A fresh RSA 2048 (RS256) or P-256 (ES256) key with a date-based kid not in `taken`."""
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
    return StoredKey(KeyEntry(kid, alg, now, activates_at), pem)


def new_key_set(now: datetime) -> list[StoredKey]:
    """One RS256 and one ES256 key that sign at once (a first start)."""
    now = utc(now).replace(microsecond=0)
    taken: set[str] = set()
    return [new_key(alg, now, now, taken) for alg in ALGS]


def complete(entries: list[KeyEntry], now: datetime) -> list[StoredKey]:
    """New keys, signing at once, for each alg that has no published key."""
    now = utc(now).replace(microsecond=0)
    taken = {entry.kid for entry in entries}
    return [new_key(alg, now, now, taken) for alg in missing_algs(entries, now)]


def rotation(entries: list[KeyEntry], now: datetime, *, jwks_cache_ttl: int, max_token_ttl: int,
             slack: int) -> tuple[list[KeyEntry], list[StoredKey]]:
    """(the entries with their new retires_at, the new keys) of a rotation at `now`.

    A new key per alg signs from now + jwks_cache_ttl. Every older key without a retires_at
    (the signing one) retires at new.activates_at + max_token_ttl + slack, after the last
    token it can have signed expires. A retires_at already set is kept. RotationPending while
    the keys of an earlier rotation do not sign yet: rotating then would retire them unused
    and pile up keys in the JWKS (at most one "next" key per alg, as in Auth0).
    """
    now = utc(now).replace(microsecond=0)
    pending = pending_entries(entries, now)
    if pending:
        raise RotationPending(pending, now)
    activates_at = now + timedelta(seconds=jwks_cache_ttl)
    retires_at = activates_at + timedelta(seconds=max_token_ttl + slack)
    updated = [entry if entry.retires_at is not None else replace(entry, retires_at=retires_at)
               for entry in entries]
    taken = {entry.kid for entry in entries}
    return updated, [new_key(alg, now, activates_at, taken) for alg in ALGS]


def load_private_key(key: StoredKey, where: str, *, sealed: bool = False):
    """The `cryptography` private key of a stored key, checked against its entry's alg.

    sealed=True (a key read from the database, authenticated by its AES-GCM seal, so checked
    when it entered the set) skips OpenSSL's RSA consistency check, the slow part of a load.
    """
    key.entry.check()
    try:
        native = serialization.load_pem_private_key(key.pem, password=None,
                                                    unsafe_skip_rsa_key_validation=sealed)
    except (ValueError, TypeError) as exc:
        raise KeyFileInvalid(f"{where} is not an unencrypted PEM private key") from exc
    if key.entry.alg == "RS256":
        if not isinstance(native, rsa.RSAPrivateKey):
            raise KeyFileInvalid(f"{where} is not an RSA key but its entry says RS256")
        if native.key_size < RSA_MIN_BITS:
            raise KeyTooWeak(f"{where} is RSA {native.key_size} bits; {RSA_MIN_BITS} is the "
                             "minimum")
    elif not (isinstance(native, ec.EllipticCurvePrivateKey)
              and isinstance(native.curve, ec.SECP256R1)):
        raise KeyFileInvalid(f"{where} is not a P-256 key but its entry says ES256")
    return native


def public_der(key: StoredKey) -> bytes:
    """The SubjectPublicKeyInfo of a stored key: equal for the same key however it was stored
    (a comparison only: load_private_key is what checks a key)."""
    native = serialization.load_pem_private_key(key.pem, password=None,
                                                unsafe_skip_rsa_key_validation=True)
    return native.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
