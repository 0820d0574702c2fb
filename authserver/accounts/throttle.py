"""Limits on password checks: per typed name in the database, and per address, per network
prefix and for the whole deployment in the rate-limit storage. See docs/limits.md.

- Per typed name (normalised; names without an account alike), in `login_throttles`, a
  small state machine. Every try claims itself with one statement that creates the name's
  row or counts one more on it while `locked_until` is empty or past (INSERT ... ON CONFLICT
  DO UPDATE ... WHERE), committed *before* the password is hashed; only a try whose claim
  succeeded is evaluated. A claim counts as a failure until the password proves right; the
  claim that reaches LOGIN_MAX_FAILURES locks the name with a delay that doubles each time.
  The right password resets the count and ends the lock at the moment of its verdict, with
  an UPDATE (never a DELETE): tries that began before that moment, racing it, stay refused;
  any try that begins after is claimed afresh. So N parallel tries in the instant a lock expires
  evaluate at most one: the first claim locks again and the others find it locked
  (PostgreSQL re-reads the row after waiting on the first claim's row lock; SQLite runs
  one writer at a time), whether that first one turns out wrong or right.
- Per client address and per network prefix (/24 IPv4, /56 IPv6): failed password checks in
  a window; over either, the check is refused with a 429 before any hashing.
- For the deployment: a budget of failed password checks (and busy answers) per window.
  Once spent, a name
  without an account is answered without hashing (security.imitate_verify: the same answer
  after about the same time, no CPU), so a flood of made-up names from many addresses cannot
  take the machine; names with an account are still checked, bounded by their own throttle.
"""
from __future__ import annotations

import ipaddress
from contextlib import contextmanager
from datetime import datetime, timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import case, literal, or_, select, update

from .. import clock, counters, security
from ..db import dialect_insert
from ..errors import AuthserverError, RetryLater
from ..extensions import db
from .models import LoginThrottle

ADDRESS = "RATELIMIT_LOGIN_FAILURES_ADDRESS"
PREFIX = "RATELIMIT_LOGIN_FAILURES_PREFIX"
GLOBAL = "RATELIMIT_LOGIN_FAILURES_GLOBAL"


class LoginThrottled(AuthserverError):
    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed attempts. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


class TooManyFailures(RetryLater):
    """Too many failed password checks from this address or its network."""

    def __init__(self, retry_after: int):
        super().__init__("Too many failed sign-ins from your network. Wait a little and try "
                         "again.", retry_after)


# --- per address, per prefix, global (rate-limit storage) --------------------------------------

def client_address() -> str:
    return (request.remote_addr or "") if has_request_context() else ""


def network_of(address: str) -> str:
    """The /24 (IPv4) or /56 (IPv6) network an address belongs to; the address itself when it
    is not one (a unix socket, a test client)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 56
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def check_source() -> None:
    """Raise TooManyFailures while this address or its network is over its failure limit."""
    address = client_address()
    waits = [counters.retry_after(ADDRESS, address),
             counters.retry_after(PREFIX, network_of(address))]
    waits = [w for w in waits if w]
    if waits:
        raise TooManyFailures(max(waits))


def budget_spent() -> bool:
    """Whether the deployment's failed-sign-in budget for this window is used up."""
    return counters.retry_after(GLOBAL, "all") is not None


@contextmanager
def counting_busy():
    """A busy answer (no hashing slot) counts against the deployment's budget, not against
    the name, the address or the network: under overload, names without an account switch
    to the cheap path sooner and leave the slots to people who have one."""
    try:
        yield
    except security.HashingBusy:
        counters.hit(GLOBAL, "all")
        raise


def count_failure() -> None:
    """A password check failed: count it for the address, its network and the deployment."""
    address = client_address()
    counters.hit(ADDRESS, address)
    counters.hit(PREFIX, network_of(address))
    counters.hit(GLOBAL, "all")


# --- per typed name (database) -----------------------------------------------------------------

def _key(login: str) -> str:
    return security.keyed_hash(security.normalise_login(login), "login-throttle")


def claim_attempt(login: str, now: datetime) -> None:
    """Claim one password check for the typed name, begun at `now`, counted as a failure
    until it proves right (clear_failures); raise LoginThrottled while the name is locked.
    Commits, so other processes see the claim before this one starts hashing."""
    key = _key(login)
    failures = _bump(key, now)
    if failures is None:
        locked = db.session.scalar(select(LoginThrottle.locked_until)
                                   .where(LoginThrottle.key_hash == key))
        db.session.commit()
        wait = (locked - now).total_seconds() if locked else 1
        raise LoginThrottled(max(1, int(wait) + 1))
    over = failures - int(current_app.config["LOGIN_MAX_FAILURES"])
    if over >= 0:
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key_hash == key)
                           .values(locked_until=now + timedelta(seconds=_delay(over)))
                           .execution_options(synchronize_session=False))
    db.session.commit()


def _bump(key: str, now: datetime) -> int | None:
    """Count one more failure unless the name is locked; the new count, or None. One
    statement: the name's first try creates its row with a count of one, any later one
    updates it only while unlocked (PostgreSQL takes the row lock and tests the condition on
    the newest version, as an UPDATE does; SQLite runs one writer at a time)."""
    unlocked = or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now)
    stmt = (dialect_insert(db.session, LoginThrottle)
            .values(key_hash=key, failures=1, updated_at=now)
            .on_conflict_do_update(index_elements=["key_hash"], where=unlocked,
                                   set_={"failures": LoginThrottle.failures + 1,
                                         "updated_at": now})
            .returning(LoginThrottle.failures))
    return db.session.execute(stmt).scalar()


def _delay(over: int) -> int:
    cfg = current_app.config
    return min(int(cfg["LOGIN_THROTTLE_BASE"]) * 2 ** min(over, 30),
               int(cfg["LOGIN_THROTTLE_MAX"]))


def clear_failures(login: str) -> None:
    """The password was right: the count starts afresh, and a lock the name holds ends now,
    not before. A try that began earlier (raced this one, counted on the lock) is still
    refused; the owner signing in again at once is not. An UPDATE of the row, never a
    DELETE: a racing try must find the row, not create a fresh unlocked one. The caller
    commits."""
    now = clock.now()
    col = LoginThrottle.locked_until
    db.session.execute(update(LoginThrottle).where(LoginThrottle.key_hash == _key(login))
                       .values(failures=0, updated_at=now,
                               locked_until=case((col > now, literal(now, col.type)),
                                                 else_=col))
                       .execution_options(synchronize_session=False))
