"""The redirect-loop guard for /authorize and /refresh (SPEC section 7, story 5).

It reads a decision (decisions.py) before any response exists. Only silent round trips count:
a code or an error sent straight back to the app. A page for the user (login, consent, the
second step, an error page) passes untouched and is never replaced.

A loop is the same request (decisions.request_shape: the parameters apart from state, nonce
and code_challenge) coming back silently again and again, per browser and client:
- its codes are never redeemed at /token, or it gets the same error each time: the
  (LOOP_MAX_TRIPS + 1)th within LOOP_WINDOW seconds is the loop page;
- every code is redeemed and the app still comes straight back: the
  (LOOP_REDEEMED_MAX_TRIPS + 1)th within LOOP_REDEEMED_WINDOW seconds.
So a relying party's test run (many different requests, a few codes deliberately unused) and
five tabs refreshing at once pass, and a real loop stops within seconds.

The browser key is a random id kept in the session cookie, plus the browser session's id: a
sign-in completed by the user starts a new session, so the counts start afresh; so does a
consent given by the user. A browser that keeps sending an old cookie but never stores a new
one gets an id derived from that cookie, the same on every trip. A request with no cookie at
all (cookies blocked) is counted under the client address, User-Agent, Accept-Language and
client; it can only loop on errors, since a code needs a session.

The trips live in loop_store.py (this process's memory, or Redis shared by every process).
When Redis is down, the guard logs once, counts in this process's memory and tries Redis again
STORAGE_RETRY seconds later: refusing sign-ins would be worse than a loose count.
"""
from __future__ import annotations

import logging

from flask import current_app, request, session
from limits.storage import storage_from_string

from .. import clock, security
from ..accounts.models import BrowserSession
from . import services
from .decisions import Decision, IssueCode, LoopPage, is_silent, request_shape
from .loop_store import MemoryTrips, SharedTrips, Trip

log = logging.getLogger("authserver.loop_guard")

STORAGE_RETRY = 30
STORE_EXT = "authserver.loop_store"
FALLBACK_EXT = "authserver.loop_store_fallback"
DOWN_EXT = "authserver.loop_store_down_until"


def inspect(decision: Decision, bs: BrowserSession | None) -> Decision:
    """The decision, or the loop page (recorded as a security event, by a service, before
    it is rendered) when this silent round trip closes a loop; `bs` is the browser session
    the decision was made for."""
    if not is_silent(decision) or not decision.client_id:
        return decision
    client_key = decision.client_id[:64]
    if isinstance(decision, IssueCode):
        outcome = "c:" + decision.code_hash
    else:
        outcome = "e:" + decision.error.error
    browser = _browser_key()
    key = _anonymous_key(client_key) if browser is None else \
        f"b:{browser}:{bs.id if bs is not None else 0}"
    now = clock.now().timestamp()
    trip = Trip(now, request_shape(request.args), outcome)
    if isinstance(decision, IssueCode) and decision.user_step:
        _with_store(lambda st: st.clear(key, client_key))
    trips = _with_store(lambda st: st.add(key, client_key, trip))
    session.setdefault("lb", browser or security.random_token(18))
    reason = loop_reason(trips[:-1], trip)
    if reason is None:
        return decision
    loop = LoopPage(decision.client_id, reason, cookies_blocked=browser is None)
    services.record_redirect_loop(loop.client_id, loop.reason, loop.cookies_blocked)
    return loop


def loop_reason(before: list[Trip], trip: Trip) -> str | None:
    """Why `trip`, after the trips `before` it, closes a loop (None: it does not)."""
    cfg = current_app.config
    same = [t for t in before if t.shape == trip.shape]
    if len([t for t in same if trip.at - t.at < float(cfg["LOOP_REDEEMED_WINDOW"])]) \
            >= int(cfg["LOOP_REDEEMED_MAX_TRIPS"]):
        return "codes_rejected"
    recent = [t for t in same if trip.at - t.at < float(cfg["LOOP_WINDOW"])]
    limit = int(cfg["LOOP_MAX_TRIPS"])
    if trip.outcome.startswith("e:"):
        return "same_error" if sum(t.outcome == trip.outcome for t in recent) >= limit else None
    codes = [t.outcome[2:] for t in recent if t.outcome.startswith("c:")]
    if len(codes) >= limit and services.count_unredeemed(codes) >= limit:
        return "codes_not_redeemed"
    return None


def _browser_key() -> str | None:
    """The browser id in our cookie; None when the request carries no cookie of ours."""
    raw = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    if not raw:
        return None
    return session.get("lb") or security.keyed_hash(raw, "loop-bid")[:24]


def _anonymous_key(client_key: str) -> str:
    parts = (request.remote_addr or "", request.user_agent.string[:300],
             request.headers.get("Accept-Language", "")[:100], client_key)
    return "a:" + security.keyed_hash("\x00".join(parts), "loop-anon")[:32]


def _store() -> MemoryTrips | SharedTrips:
    store = current_app.extensions.get(STORE_EXT)
    if store is None:
        cfg = current_app.config
        uri = str(cfg["RATELIMIT_STORAGE_URI"])
        if uri.startswith("memory://"):
            store = _memory_store(STORE_EXT)
        else:
            storage = storage_from_string(uri, **(cfg.get("RATELIMIT_STORAGE_OPTIONS") or {}))
            store = SharedTrips(storage.storage, _window())
        # Two threads of a fresh worker may both get here: both keep the first one stored.
        store = current_app.extensions.setdefault(STORE_EXT, store)
    return store


def _memory_store(ext: str) -> MemoryTrips:
    return current_app.extensions.setdefault(ext, MemoryTrips(_window()))


def _window() -> float:
    cfg = current_app.config
    return max(float(cfg["LOOP_WINDOW"]), float(cfg["LOOP_REDEEMED_WINDOW"]))


def _with_store(call):
    ext = current_app.extensions
    now = clock.now().timestamp()
    if now >= ext.get(DOWN_EXT, 0):
        try:
            return call(_store())
        except Exception:  # noqa: BLE001 (any storage error: see the module docstring)
            log.warning("loop guard storage unavailable; counting in this process",
                        exc_info=True)
            ext[DOWN_EXT] = now + STORAGE_RETRY
    return call(_memory_store(FALLBACK_EXT))
