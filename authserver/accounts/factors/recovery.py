"""Recovery codes: 10 per user, 80 bits each (16 base32 characters, shown in groups of 4),
shown once, stored only as keyed hashes. A code is spent by one DELETE: of two requests
racing with the same code, exactly one deletes the row and passes."""
from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select

from ... import clock, security
from ...extensions import db
from ..models import RecoveryCode, User

COUNT = 10
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32: 5 bits a character
LENGTH = 16  # 80 bits
MAX_INPUT = 64


def normalise(code: str) -> str:
    """What is hashed: upper case, without the spaces and dashes of the groups."""
    return "".join(c for c in (code or "")[:MAX_INPUT].upper() if c not in " -\t")


def _hash(code: str) -> str:
    return security.keyed_hash(normalise(code), "recovery")


def new_codes(user: User) -> list[str]:
    """Replace the user's recovery codes with 10 new ones; returns them (the caller commits)."""
    codes = ["".join(secrets.choice(ALPHABET) for _ in range(LENGTH)) for _ in range(COUNT)]
    remove(user)
    now = clock.now()
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(c), created_at=now)
                       for c in codes)
    return ["-".join(c[i:i + 4] for i in range(0, LENGTH, 4)) for c in codes]


def spend(user: User, code: str) -> bool:
    """Use a recovery code once: True only for the request whose DELETE removed it."""
    if not normalise(code):
        return False
    return db.session.execute(
        delete(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                   RecoveryCode.code_hash == _hash(code))
        .execution_options(synchronize_session=False)).rowcount == 1


def remaining(user: User) -> int:
    return int(db.session.scalar(select(func.count(RecoveryCode.id))
                                 .where(RecoveryCode.user_id == user.id)) or 0)


def remove(user: User) -> None:
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id)
                       .execution_options(synchronize_session=False))
