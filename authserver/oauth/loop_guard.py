"""Redirect-loop detection for /authorize and /refresh (SPEC section 7, story 5).

A round trip is a response that sends the browser back to the app: a code or an error at its
redirect_uri. A trip to the login page is not one, because the user sees a page there. Round
trips are counted per browser and client in two places:

- the signed session cookie: free, and shared by every process of the issuer;
- a server-side store (loop_store.py: this process's memory, or the rate-limit Redis when
  several processes serve one issuer), keyed on a browser id kept in that cookie. It counts
  tabs racing each other exactly (the cookie is last-write-wins), and it still counts when the
  browser keeps sending an old cookie but drops every new one (a full cookie jar, an
  extension, a proxy): the id then comes from the old cookie itself, so it stays the same.

A request with no cookie at all is a first visit or a browser that blocks our cookies. It is
counted under a key made of the client address, User-Agent, Accept-Language and client, and
only at the moment it would bounce straight back to the app (prompt=none failing, an invalid
request): a first visit that goes to the login page is never counted, so people behind one
NAT do not trip each other on ordinary sign-ins.

The (LOOP_MAX_TRIPS + 1)th round trip inside LOOP_WINDOW seconds, or a /refresh that brings
back a state already sent back to the app, ends on the loop page instead of a redirect.
"""
from __future__ import annotations

import logging
from functools import partial
from urllib.parse import urlsplit

from flask import after_this_request, current_app, g, make_response, request, session
from limits.storage import storage_from_string

from .. import clock, security
from .authorize import loop_page
from .loop_store import MemoryTrips, SharedTrips

log = logging.getLogger("authserver.loop_guard")

MAX_STATES = 8
MAX_CLIENTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


def record_trip(client_id: str | None, state: str | None = None, *, check_state: bool = False
                ) -> bool:
    """True when this trip closes a loop for a browser we know (the caller shows the loop page).

    Otherwise the response is inspected once it is built: a redirect back to the app is
    counted, and a cookieless one that closes a loop is replaced by the loop page.
    """
    if not client_id or not isinstance(client_id, str):
        return False
    client_key = client_id[:64]
    digest = _state_digest(state) if check_state and state else None
    browser = _browser_key()
    after_this_request(partial(_after_response, client_key, digest, browser))
    if browser is None:
        return False
    g.loop_reason = _loop_reason("b:" + browser, client_key, digest, _cookie_entry(client_key))
    return g.loop_reason is not None


def reset_trips(client_id: str | None = None) -> None:
    """Start clean (the loop page's button)."""
    if client_id and "trips" in session:
        trips = _load()
        trips["c"].pop(client_id[:64], None)
        session["trips"] = trips
    else:
        session.pop("trips", None)


def _after_response(client_key: str, digest: str | None, browser: str | None, response):
    if not _is_round_trip(response):
        return response
    if browser is None:
        anonymous = _anonymous_key(client_key)
        reason = _loop_reason(anonymous, client_key, digest, {"t": [], "s": []})
        if reason:
            g.loop_reason = reason
            return make_response(loop_page(client_key, cookies_blocked=True))
        _server_record(anonymous, client_key, digest)
        # A new id, so a browser that does keep cookies is counted as itself next time.
        browser = security.random_token(18)
    _cookie_record(client_key, digest, browser)
    _server_record("b:" + browser, client_key, digest)
    return response


def _is_round_trip(response) -> bool:
    """A redirect to an absolute URI leaves the issuer (our own redirects are relative)."""
    if response.status_code not in REDIRECTS:
        return False
    return bool(urlsplit(response.headers.get("Location", "")).scheme)


def _loop_reason(key: str, client_key: str, digest: str | None, entry: dict) -> str | None:
    cfg = current_app.config
    now = clock.now().timestamp()
    window = float(cfg["LOOP_WINDOW"])
    recent = [t for t in entry.get("t", []) if now - t < window]
    if len(recent) >= int(cfg["LOOP_MAX_TRIPS"]) or not _server_allows(key, client_key):
        return "too_many_round_trips"
    if digest and (any(s[0] == digest and now - s[1] < window for s in entry.get("s", []))
                   or _server_seen_state(key, client_key, digest)):
        return "state_replayed"
    return None


# --- the browser's identity --------------------------------------------------------------------

def _browser_key() -> str | None:
    """The browser id in our cookie; None when the request carries no cookie of ours.

    A cookie without one yet gets an id derived from the cookie itself, so a browser that
    never stores our new cookies keeps the same id on every trip.
    """
    raw = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    if not raw:
        return None
    return _load().get("b") or security.keyed_hash(raw, "loop-bid")[:24]


def _anonymous_key(client_key: str) -> str:
    parts = (request.remote_addr or "", request.user_agent.string[:300],
             request.headers.get("Accept-Language", "")[:100], client_key)
    return "a:" + security.keyed_hash("\x00".join(parts), "loop-anon")[:32]


def _state_digest(state: str) -> str:
    return security.keyed_hash(state[:512], "loop-state")[:16]


# --- the cookie counter --------------------------------------------------------------------------

def _load() -> dict:
    trips = session.get("trips")
    if not isinstance(trips, dict) or not isinstance(trips.get("c"), dict):
        return {"b": None, "c": {}}
    return {"b": trips.get("b"), "c": dict(trips["c"])}


def _cookie_entry(client_key: str) -> dict:
    entry = _load()["c"].get(client_key)
    return entry if isinstance(entry, dict) else {"t": [], "s": []}


def _cookie_record(client_key: str, digest: str | None, browser: str) -> None:
    """Add one trip; keep only what is inside the window, so the cookie stays small."""
    cfg = current_app.config
    now = round(clock.now().timestamp(), 1)
    window = float(cfg["LOOP_WINDOW"])
    trips = _load()
    entry = _cookie_entry(client_key)
    times = [t for t in entry.get("t", []) if now - t < window] + [now]
    states = [s for s in entry.get("s", []) if now - s[1] < window]
    if digest:
        states = (states + [[digest, now]])[-MAX_STATES:]
    trips["c"].pop(client_key, None)
    trips["c"][client_key] = {"t": times[-(int(cfg["LOOP_MAX_TRIPS"]) + 1):], "s": states}
    trips["c"] = dict(list(trips["c"].items())[-MAX_CLIENTS:])
    trips["b"] = browser
    session["trips"] = trips


# --- the server-side counter ---------------------------------------------------------------------
# When the storage fails (Redis down), the guard logs it, lets the request through and leaves
# the storage alone for STORAGE_RETRY seconds, so an outage costs one timeout, not one per
# call: the cookie counter still works, and refusing sign-ins would be worse than a missed loop.

STORAGE_RETRY = 30


def _store() -> MemoryTrips | SharedTrips:
    store = current_app.extensions.get("authserver.loop_store")
    if store is None:
        cfg = current_app.config
        uri = str(cfg["RATELIMIT_STORAGE_URI"])
        max_trips, window = int(cfg["LOOP_MAX_TRIPS"]), float(cfg["LOOP_WINDOW"])
        if uri.startswith("memory://"):
            store = MemoryTrips(max_trips, window)
        else:
            storage = storage_from_string(uri, **(cfg.get("RATELIMIT_STORAGE_OPTIONS") or {}))
            store = SharedTrips(storage, max_trips, window)
        # Two threads of a fresh worker may both get here: both keep the first one stored.
        store = current_app.extensions.setdefault("authserver.loop_store", store)
    return store


def _server(call, default):
    ext = current_app.extensions
    now = clock.now().timestamp()
    if now < ext.get("authserver.loop_store_down_until", 0):
        return default
    try:
        return call(_store(), now)
    except Exception:  # noqa: BLE001 (any storage error: see the note above)
        log.warning("loop guard storage unavailable; counting in the cookie only",
                    exc_info=True)
        ext["authserver.loop_store_down_until"] = now + STORAGE_RETRY
        return default


def _server_allows(key: str, client_key: str) -> bool:
    return not _server(lambda st, now: st.too_many(key, client_key, now), False)


def _server_seen_state(key: str, client_key: str, digest: str) -> bool:
    return _server(lambda st, now: st.seen_state(key, client_key, digest, now), False)


def _server_record(key: str, client_key: str, digest: str | None) -> None:
    _server(lambda st, now: st.record(key, client_key, digest, now), None)
