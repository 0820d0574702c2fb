"""Verification-code rules: 6 digits, single use, TTL, 5 wrong tries, newest supersedes.

Every counter moves with a conditional UPDATE, so concurrent requests on any number of
processes cannot add a sixth try or use a code twice.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from .. import security
from ..errors import AuthserverError
from ..extensions import db
from .models import ResetCode


class CodeRejected(AuthserverError):
    """Wrong, expired, used or missing: the same answer for all of them."""


class CodeDead(AuthserverError):
    """Too many wrong tries on this code: ask for a new one."""


def _digest(user_id: int, code: str) -> str:
    return security.keyed_hash(f"{user_id}:{code}", "reset_code")


def issue_code(user, now: datetime) -> str:
    """A fresh code for the user; any earlier live code stops working."""
    db.session.execute(update(ResetCode).where(ResetCode.user_id == user.id,
                                               ResetCode.used_at.is_(None),
                                               ResetCode.superseded_at.is_(None))
                       .values(superseded_at=now).execution_options(synchronize_session=False))
    code = security.random_code(6)
    ttl = int(current_app.config["RESET_CODE_TTL"])
    db.session.add(ResetCode(user_id=user.id, code_hash=_digest(user.id, code),
                             expires_at=now + timedelta(seconds=ttl), failed_tries=0,
                             created_at=now))
    return code


def check_code(user, code: str, now: datetime) -> None:
    """Use the user's current code once; raise CodeRejected or CodeDead otherwise."""
    max_tries = int(current_app.config["RESET_CODE_MAX_TRIES"])
    row = db.session.scalar(select(ResetCode).where(
        ResetCode.user_id == user.id, ResetCode.used_at.is_(None),
        ResetCode.superseded_at.is_(None)).order_by(ResetCode.id.desc()).limit(1))
    if row is None or now >= row.expires_at:
        raise CodeRejected("This code is not valid. Check it, or ask for a new one.")
    if row.failed_tries >= max_tries:
        raise CodeDead("Too many wrong tries on this code. Ask for a new code.")
    ok = security.equal(row.code_hash, _digest(user.id, (code or "").strip()))
    if ok:
        used = db.session.execute(
            update(ResetCode).where(ResetCode.id == row.id, ResetCode.used_at.is_(None),
                                    ResetCode.failed_tries < max_tries)
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
        if used == 1:
            return
        raise CodeDead("Too many wrong tries on this code. Ask for a new code.")
    counted = db.session.execute(
        update(ResetCode).where(ResetCode.id == row.id, ResetCode.failed_tries < max_tries)
        .values(failed_tries=ResetCode.failed_tries + 1)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    db.session.refresh(row)
    if not counted or row.failed_tries >= max_tries:
        raise CodeDead("Too many wrong tries on this code. Ask for a new code.")
    raise CodeRejected("This code is not valid. Check it, or ask for a new one.")
