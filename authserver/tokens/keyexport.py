"""Key set export files: every key of the set, sealed under a passphrase (scrypt + AES-GCM).

A passphrase, not the secret key: the file moves a key set between installations (SQLite to
PostgreSQL, one issuer to its replacement) that need not share AUTHSERVER_SECRET_KEY. The
file is JSON: a header (format, KDF parameters, salt, nonce) that is bound to the ciphertext
as associated data, and the ciphertext of the keys (entries with their PKCS#8 PEMs).
"""
from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import AuthserverError
from .keyset import KeyEntry, StoredKey

FORMAT = "authserver-keys"
VERSION = 1
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}  # 32 MiB and about 0.1 s per try
PASSPHRASE_MIN_LENGTH = 12


class ExportFileInvalid(AuthserverError):
    """Not a key export, a wrong passphrase, or a file that was changed after export."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode())


def _derive(passphrase: str, salt: bytes, kdf: dict) -> bytes:
    return Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]),
                  p=int(kdf["p"])).derive(passphrase.encode())


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal_keys(keys: list[StoredKey], passphrase: str) -> bytes:
    """The export file's bytes: the keys encrypted under a key derived from the passphrase."""
    if len(passphrase) < PASSPHRASE_MIN_LENGTH:
        raise ExportFileInvalid(f"the passphrase must be at least {PASSPHRASE_MIN_LENGTH} "
                                "characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {"format": FORMAT, "version": VERSION, "cipher": "A256GCM", "nonce": _b64(nonce),
              "kdf": {"name": "scrypt", "salt": _b64(salt), **SCRYPT}}
    body = json.dumps({"keys": [{**key.entry.to_json(), "pem": key.pem.decode()}
                                for key in keys]}).encode()
    box = AESGCM(_derive(passphrase, salt, header["kdf"])).encrypt(nonce, body, _aad(header))
    return (json.dumps({**header, "ciphertext": _b64(box)}, indent=2) + "\n").encode()


def open_keys(data: bytes, passphrase: str) -> list[StoredKey]:
    """The keys of an export file; ExportFileInvalid for a wrong passphrase or a changed file."""
    try:
        doc = json.loads(data)
        header = {k: doc[k] for k in ("format", "version", "cipher", "nonce", "kdf")}
        if (header["format"], header["version"], header["kdf"].get("name")) != (
                FORMAT, VERSION, "scrypt"):
            raise ExportFileInvalid("not an authserver key export (version 1)")
        key = _derive(passphrase, _unb64(header["kdf"]["salt"]), header["kdf"])
        body = AESGCM(key).decrypt(_unb64(header["nonce"]), _unb64(doc["ciphertext"]),
                                   _aad(header))
    except InvalidTag as exc:
        raise ExportFileInvalid("wrong passphrase, or the file was changed after export") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExportFileInvalid("not an authserver key export") from exc
    items = json.loads(body)["keys"]
    return [StoredKey(KeyEntry.from_json(item), item["pem"].encode()) for item in items]
