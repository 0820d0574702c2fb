"""The keys folder (KEYS_DIR): a local copy of the issuer's key set, written from the database.

Files: `<kid>.pem` (PKCS#8, mode 0600, written atomically) and `keys.json`, the manifest of
`{kid, alg, created_at, activates_at, retires_at}`. The database is the source of truth; the
folder is what an operator sees and backs up, and what seeds an empty database on the first
start after an upgrade. A PEM that is not in the issuer's set (a stray key, e.g. one this
machine generated on its own before it shared a database) is moved aside, never signed with.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime

from ..errors import AuthserverError
from .keyset import KeyEntry, KeyFileInvalid, StoredKey

MANIFEST = "keys.json"
STRAY_PREFIX = "stray-"

log = logging.getLogger("authserver")


class KeyFileTooOpen(AuthserverError):
    """A private key file can be read or written by group or others."""


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


def _read_pem(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode  # of the file we read, not a path race
            if mode & 0o077:
                raise KeyFileTooOpen(f"{path} has mode {mode & 0o777:o}: run chmod 600 {path}")
            return fh.read()
    except FileNotFoundError as exc:
        raise KeyFileInvalid(f"missing key file {path}") from exc


def read_folder(keys_dir: str) -> list[StoredKey]:
    """Every key keys.json lists, with its PEM; refuses a PEM more open than 0600."""
    return [StoredKey(entry, _read_pem(os.path.join(keys_dir, f"{entry.kid}.pem")))
            for entry in read_manifest(keys_dir)]


def write_atomic(path: str, data: bytes) -> None:
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
def _locked(keys_dir: str) -> Iterator[None]:
    """Exclusive flock on keys_dir/.lock: the processes of one machine write it one at a time."""
    os.makedirs(keys_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(keys_dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _current(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _manifest_body(keys: list[StoredKey]) -> bytes:
    entries = sorted((key.entry for key in keys), key=lambda e: (e.created_at, e.alg, e.kid))
    return (json.dumps([entry.to_json() for entry in entries], indent=2) + "\n").encode()


def mirror(keys_dir: str, keys: list[StoredKey], now: datetime) -> list[str]:
    """Make keys_dir hold exactly `keys`; return the kids of stray PEMs it moved aside.

    A PEM whose kid is not in the set, or whose content differs from the set's key of that
    kid, moves to keys_dir/stray-<time>/ (kept for the operator, never loaded again). PEMs
    go first and the manifest last, each only when its content changes, so a folder that
    already matches is not touched.
    """
    wanted = {key.entry.kid: key for key in keys}
    with _locked(keys_dir):
        stray = sorted(
            name[:-4] for name in os.listdir(keys_dir)
            if name.endswith(".pem") and (name[:-4] not in wanted or _current(
                os.path.join(keys_dir, name)) != wanted[name[:-4]].pem))
        if stray:
            _set_aside(keys_dir, stray, now)
        for kid, key in wanted.items():
            path = os.path.join(keys_dir, f"{kid}.pem")
            if _current(path) != key.pem:
                write_atomic(path, key.pem)
            elif os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
                log.warning("%s was readable by others: set to mode 0600. The key may have "
                            "been exposed; consider `authserver keys rotate`.", path)
        body = _manifest_body(keys)
        if _current(os.path.join(keys_dir, MANIFEST)) != body:
            write_atomic(os.path.join(keys_dir, MANIFEST), body)
    return stray


def _set_aside(keys_dir: str, kids: list[str], now: datetime) -> None:
    target = os.path.join(keys_dir, f"{STRAY_PREFIX}{now:%Y%m%dT%H%M%S%f}")
    os.makedirs(target, mode=0o700, exist_ok=True)
    manifest = os.path.join(keys_dir, MANIFEST)
    if os.path.exists(manifest):
        with open(manifest, "rb") as fh:
            write_atomic(os.path.join(target, MANIFEST), fh.read())
    for kid in kids:
        os.replace(os.path.join(keys_dir, f"{kid}.pem"), os.path.join(target, f"{kid}.pem"))
    log.warning("keys folder %s held signing keys that are not (or no longer) in the issuer's "
                "key set (%s): moved to %s and never used. The issuer's keys live in the "
                "database and every node signs with those; to make the set-aside keys the "
                "issuer's instead, run `authserver keys import --replace %s`.", keys_dir,
                ", ".join(kids), target, target)


def write_key_set(keys_dir: str, keys: list[StoredKey]) -> None:
    """Write keys into keys_dir as a folder of PEMs and a manifest (tests, and by mirror)."""
    with _locked(keys_dir):
        for key in keys:
            write_atomic(os.path.join(keys_dir, f"{key.entry.kid}.pem"), key.pem)
        write_atomic(os.path.join(keys_dir, MANIFEST), _manifest_body(keys))
