"""Verification-code rules: 6 digits, single use, TTL, 5 wrong tries, newest supersedes.

Every counter moves with a conditional UPDATE, so concurrent requests on any number of
processes cannot add a sixth try or use a code twice. A name with no code to check (no
account, or one that may not reset) is answered by the same rules, counted on the typed
name, so the confirm page says the same things whether or not the account exists.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from .. import security
from ..errors import AuthserverError
from ..extensions import db
from .models import CodeSend, ResetCode

NOT_VALID = "This code is not valid. Check it, or ask for a new one."
DEAD = "Too many wrong tries on this code. Ask for a new code."


class CodeRejected(AuthserverError):
    """Wrong, expired, used or missing: the same answer for all of them."""


class CodeDead(AuthserverError):
    """Too many wrong tries on this code: ask for a new one."""


def _digest(user_id: int, code: str) -> str:
    return security.keyed_hash(f"{user_id}:{code}", "reset_code")


def send_key(login: str) -> str:
    """The send log's key for a typed name (normalised), never the name itself."""
    return security.keyed_hash(security.normalise_login(login), "code-send")


def _try_key(login: str) -> str:
    return security.keyed_hash(security.normalise_login(login), "code-try")


def account_send_key(user) -> str:
    """The send log's key for an account: every name of one account shares one budget."""
    return security.keyed_hash(str(user.id), "code-send-account")


def void_codes(user, now: datetime) -> None:
    """Stop every live code of the user (a newer code, or a new password, replaces them)."""
    db.session.execute(update(ResetCode).where(ResetCode.user_id == user.id,
                                               ResetCode.used_at.is_(None),
                                               ResetCode.superseded_at.is_(None))
                       .values(superseded_at=now).execution_options(synchronize_session=False))


def issue_code(user, now: datetime) -> str:
    """A fresh code for the user; any earlier live code stops working."""
    void_codes(user, now)
    code = security.random_code(6)
    ttl = int(current_app.config["RESET_CODE_TTL"])
    db.session.add(ResetCode(user_id=user.id, code_hash=_digest(user.id, code),
                             expires_at=now + timedelta(seconds=ttl), failed_tries=0,
                             created_at=now))
    return code


def check_code(user, code: str, now: datetime) -> None:
    """Use the user's current code once; raise CodeRejected or CodeDead otherwise.

    A wrong try is counted in the caller's transaction: the caller commits it.
    """
    max_tries = int(current_app.config["RESET_CODE_MAX_TRIES"])
    row = db.session.scalar(select(ResetCode).where(
        ResetCode.user_id == user.id, ResetCode.used_at.is_(None),
        ResetCode.superseded_at.is_(None)).order_by(ResetCode.id.desc()).limit(1))
    if row is None or now >= row.expires_at:
        raise CodeRejected(NOT_VALID)
    if row.failed_tries >= max_tries:
        raise CodeDead(DEAD)
    if security.equal(row.code_hash, _digest(user.id, (code or "").strip())):
        used = db.session.execute(
            update(ResetCode).where(ResetCode.id == row.id, ResetCode.used_at.is_(None),
                                    ResetCode.failed_tries < max_tries)
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount
        if used == 1:
            return
        raise CodeDead(DEAD)
    counted = db.session.execute(
        update(ResetCode).where(ResetCode.id == row.id, ResetCode.failed_tries < max_tries)
        .values(failed_tries=ResetCode.failed_tries + 1)
        .execution_options(synchronize_session=False)).rowcount
    tries = db.session.scalar(select(ResetCode.failed_tries).where(ResetCode.id == row.id))
    if not counted or tries >= max_tries:
        raise CodeDead(DEAD)
    raise CodeRejected(NOT_VALID)


def check_typed_code(login: str, user, code: str, now: datetime) -> None:
    """Confirm a code typed with a name; the answer depends only on the typed name.

    The account's code (check_code) counts its own wrong tries, so one account has one
    budget of tries whichever of its names is typed; but its answers are never shown: an
    account whose code died under its user name must not say so under its email address,
    or the page would link the two names (SPEC 7). The page answers from the typed name's
    counter (reject_without_code), exactly as for a name without an account. `user` is None
    when there is no account or it may not reset. The caller commits the counted tries.
    """
    if _name_tries(login, now)[1] >= int(current_app.config["RESET_CODE_MAX_TRIES"]):
        raise CodeDead(DEAD)
    if user is not None:
        try:
            check_code(user, code, now)
            return
        except (CodeRejected, CodeDead):
            pass
    reject_without_code(login, now)


def _name_tries(login: str, now: datetime) -> tuple[int | None, int]:
    """(id of the typed name's last send within RESET_CODE_TTL or None, wrong tries since)."""
    last = db.session.execute(select(CodeSend.id, CodeSend.sent_at)
                              .where(CodeSend.key_hash == send_key(login))
                              .order_by(CodeSend.id.desc()).limit(1)).first()
    ttl = int(current_app.config["RESET_CODE_TTL"])
    if last is None or now >= last.sent_at + timedelta(seconds=ttl):
        return None, 0
    return last.id, db.session.scalar(select(func.count(CodeSend.id)).where(
        CodeSend.key_hash == _try_key(login), CodeSend.id > last.id))


def reject_without_code(login: str, now: datetime) -> None:
    """Answer a wrong code on the typed name's own counter, as check_code answers for a code.

    Tries count on the typed name since its last send (Send code or Resend code), for
    RESET_CODE_TTL: "not valid" four times, then "too many wrong tries" until the next
    send. Without this, only real accounts could reach the dead-code message. Always raises;
    the caller commits the counted try.
    """
    max_tries = int(current_app.config["RESET_CODE_MAX_TRIES"])
    last_id, tries = _name_tries(login, now)
    if last_id is None:
        raise CodeRejected(NOT_VALID)
    if tries >= max_tries:
        raise CodeDead(DEAD)
    db.session.add(CodeSend(key_hash=_try_key(login), sent_at=now))
    if tries + 1 >= max_tries:
        raise CodeDead(DEAD)
    raise CodeRejected(NOT_VALID)
