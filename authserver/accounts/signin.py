"""Sign-ins in progress (SPEC section 8): a server-side record, the cookie holds only its id.

A sign-in begins when a first factor is verified (today the password) and ends when a
browser session is opened, when it runs out (15 minutes at most), or when something ends
it: logout, *Sign out everywhere*, an administrator's action on the account
(`end_for_users`, called by `sessions.end_sessions`), too many wrong codes, or a change of
the account seen at the next step.

The record keeps what the account looked like when the sign-in began (state, password
version, second-step version). `resume` re-reads the account at every step; any difference
ends the sign-in, on the state's own page where there is one ("inactive", "reset").

`next_step` is the one home of "what comes next" (forced change, second step, enrolment
under the MFA policy, done). Views only map its answer to a page (login_flow.respond).

Factors plug in through one call. A module under accounts/factors/ (totp, recovery; later
passkeys, upstream accounts) checks its factor, then reports it:

    decision = signin.complete_factor(record, "mfa", ["otp", "mfa"])

`step` is the step the factor satisfies ("pwd", "change", "mfa", "enrol"); `amr` holds the
RFC 8176 values it adds. The step is claimed by one conditional UPDATE (`step = <this step>
AND ended_at IS NULL`), so a step is used once even by two browsers holding copies of the
cookie, and the last step ends the record in the same UPDATE. A factor never decides
routing: it returns what `complete_factor` decided.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from .. import clock, security
from ..audit import security_event
from ..errors import AuthserverError
from ..extensions import db
from .models import SignIn, User
from .states import AccountState

TTL = 900  # seconds: a sign-in lives 15 minutes at most, whatever its steps
POLICIES = ("none", "admins", "all")

# Steps a sign-in can wait at, and the pages that end it.
STEPS = ("change", "mfa", "enrol")
OVER = ("inactive", "reset", "over")


class SignInOver(AuthserverError):
    """The sign-in is unknown, finished, ended or stale; `page` says where the user goes."""

    def __init__(self, page: str = "over", user: User | None = None):
        super().__init__("Your sign-in has ended. Sign in again.")
        self.page = page
        self.user = user


@dataclass(frozen=True)
class Next:
    """What comes after a step: a step name, "finish", or a page in OVER."""

    step: str
    user: User
    amr: tuple[str, ...] = ()
    next_url: str | None = None


def mfa_policy_covers(user: User) -> bool:
    """AUTHSERVER_MFA_REQUIRED: none (default), admins, or all."""
    policy = str(current_app.config.get("MFA_REQUIRED") or "none").lower()
    return policy == "all" or (policy == "admins" and user.is_admin)


def next_step(user: User, done: Iterable[str]) -> str:
    """The one rule of what a sign-in needs next, from the account as it is now."""
    done = set(done)
    if user.state == AccountState.DISABLED:
        return "inactive"
    if user.state == AccountState.RESET_REQUIRED:
        return "reset"
    if user.state == AccountState.FORCE_CHANGE_PASSWORD:
        return "over" if "change" in done else "change"
    if user.has_second_step and not done & {"mfa", "enrol"}:  # enrolling proved the new app
        return "mfa"
    if mfa_policy_covers(user) and not user.has_second_step:
        return "enrol"
    return "finish"


def _versions(user: User) -> dict:
    return {"seen_state": user.state, "seen_password_version": user.password_version or 0,
            "seen_mfa_version": user.mfa_version or 0}


def _hash(raw: str) -> str:
    return security.keyed_hash(raw, "sign-in")


def begin(user: User, amr: list[str], next_url: str | None,
          done: Iterable[str] = ("pwd",)) -> tuple[str | None, Next]:
    """A first factor was verified: decide what follows, and keep a record when a step does.

    `done` names the steps the first factor satisfied (a password: "pwd"; a passkey with
    user verification would add "mfa"). Returns (the raw id for the cookie or None, the
    decision). Commits what the caller's transaction holds (the password check's outcome, an
    earlier sign-in ended), except on "finish": opening the browser session
    (services.start_session) commits it then, one commit for the whole sign-in.
    """
    now = clock.now()
    next_url = security.safe_next(next_url)
    done = list(done)
    step = next_step(user, done)
    if step not in STEPS:  # nothing to ask: finish at once, or the state's own page
        if step != "finish":
            db.session.commit()
        return None, Next(step, user, tuple(amr), next_url)
    raw = security.random_token(32)
    db.session.add(SignIn(id_hash=_hash(raw), user_id=user.id, step=step, done=done,
                          amr=list(amr), next_url=next_url, otp_tries=0, created_at=now,
                          expires_at=now + timedelta(seconds=TTL), **_versions(user)))
    security_event("sign_in_started", user_id=user.id, step=step)
    db.session.commit()
    return raw, Next(step, user, tuple(amr), next_url)


def _lookup(raw: str | None) -> SignIn | None:
    if not raw or not isinstance(raw, str) or len(raw) > 100:
        return None
    return db.session.scalar(select(SignIn).where(SignIn.id_hash == _hash(raw)))


def _live(record: SignIn | None) -> bool:
    return record is not None and record.ended_at is None and clock.now() < record.expires_at


def find(raw: str | None) -> SignIn | None:
    """The live sign-in for a cookie value, or None. A lookup: nothing is written."""
    record = _lookup(raw)
    return record if _live(record) else None


def resume(raw: str | None, step: str) -> tuple[SignIn, User]:
    """The sign-in waiting at `step`, with the account read again; SignInOver otherwise.

    A sign-in waiting at another step raises SignInOver with that step as `page`, so the
    browser is sent where it belongs. An account that changed since the sign-in began
    (state, password, second step) ends the sign-in here (committed). An ended sign-in of
    an account that is now disabled or must reset shows that state's own page.
    """
    record = _lookup(raw)
    if record is None:
        raise SignInOver()
    user = db.session.get(User, record.user_id, populate_existing=True)
    page = next_step(user, ()) if user is not None else "over"
    page = page if page in OVER else "over"
    if not _live(record):
        raise SignInOver(page, user)
    if user is None or any(getattr(record, k) != v for k, v in _versions(user).items()):
        mark_ended(record.id, "account_changed")
        security_event("sign_in_ended", user_id=record.user_id, reason="account_changed")
        db.session.commit()
        raise SignInOver(page, user)
    if record.step != step:
        raise SignInOver(record.step if record.step in STEPS else "over")
    return record, user


def complete_factor(record: SignIn, step: str, amr: Iterable[str]) -> Next:
    """Report a verified factor for this sign-in's waiting step; returns what comes next.

    The step is claimed by one conditional UPDATE, so it counts once; a lost race or an
    ended sign-in raises SignInOver. Reaching "finish" ends the record in the same UPDATE
    (the caller opens the browser session). Commits.
    """
    user = db.session.get(User, record.user_id, populate_existing=True)
    done = list(dict.fromkeys([*record.done, step]))
    amr = list(dict.fromkeys([*record.amr, *amr]))
    nxt = next_step(user, done)
    now = clock.now()
    values = {"step": nxt, "done": done, "amr": amr, **_versions(user)}
    if nxt not in STEPS:
        values.update(ended_at=now, ended_reason="finished" if nxt == "finish" else nxt)
    won = db.session.execute(
        update(SignIn).where(SignIn.id == record.id, SignIn.step == step,
                             SignIn.ended_at.is_(None), SignIn.expires_at > now)
        .values(**values).execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    if not won:
        raise SignInOver()
    return Next(nxt, user, tuple(amr), record.next_url)


def end(record: SignIn, reason: str) -> bool:
    """End one sign-in (its cookie no longer works); True if this call ended it. Commits."""
    ended = mark_ended(record.id, reason)
    db.session.commit()
    return ended


def mark_ended(record_id: int, reason: str) -> bool:
    """End one sign-in in the caller's transaction; True if this call ended it."""
    return db.session.execute(
        update(SignIn).where(SignIn.id == record_id, SignIn.ended_at.is_(None))
        .values(ended_at=clock.now(), ended_reason=reason[:32])
        .execution_options(synchronize_session=False)).rowcount == 1


def end_for_users(user_ids: Iterable[int], reason: str) -> int:
    """End every sign-in in progress of these users (in the caller's transaction)."""
    ids = sorted({int(u) for u in user_ids if u is not None})
    if not ids:
        return 0
    return db.session.execute(
        update(SignIn).where(SignIn.user_id.in_(ids), SignIn.ended_at.is_(None))
        .values(ended_at=clock.now(), ended_reason=reason[:32])
        .execution_options(synchronize_session=False)).rowcount
