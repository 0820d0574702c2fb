"""Redirect-loop detection for /authorize and /refresh (SPEC section 7, story 5).

Round trips are counted per browser and client in the signed session cookie; the
(LOOP_MAX_TRIPS + 1)th trip inside LOOP_WINDOW seconds, or a /refresh that brings back, inside
the window, a state it already brought, ends on the loop page instead of another redirect.
"""
from __future__ import annotations

from flask import current_app, session

from .. import clock, security

MAX_STATES = 8


def record_trip(client_id: str | None, state: str | None = None, *, check_state: bool = False
                ) -> bool:
    """Count one round trip; True when this trip closes a loop."""
    if not client_id or not isinstance(client_id, str):
        return False
    cfg = current_app.config
    now = clock.now().timestamp()
    window = float(cfg["LOOP_WINDOW"])
    trips = dict(session.get("trips") or {})
    entry = trips.get(client_id[:64]) or {"t": [], "s": []}
    times = [t for t in entry.get("t", []) if now - t < window]
    states = [s for s in entry.get("s", []) if now - s[1] < window]
    looped = len(times) >= int(cfg["LOOP_MAX_TRIPS"])
    if check_state and state:
        digest = security.keyed_hash(state, "loop-state")[:16]
        looped = looped or any(s[0] == digest for s in states)
        states = (states + [[digest, now]])[-MAX_STATES:]
    times.append(now)
    trips[client_id[:64]] = {"t": times[-(int(cfg["LOOP_MAX_TRIPS"]) + 2):], "s": states}
    if len(trips) > 20:
        trips = dict(list(trips.items())[-20:])
    session["trips"] = trips
    return looped


def reset_trips(client_id: str | None = None) -> None:
    """Start clean (the loop page's button)."""
    if client_id and "trips" in session:
        trips = dict(session["trips"])
        trips.pop(client_id, None)
        session["trips"] = trips
    else:
        session.pop("trips", None)
