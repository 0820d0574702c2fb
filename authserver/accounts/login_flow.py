"""The browser side of signing in: the session cookie, pending steps and where to go next.

The Flask session cookie holds only the raw browser-session id (its hash is in the
database), the CSRF token, loop-guard counters and any pending sign-in step.
"""
from __future__ import annotations

from flask import g, request, session, url_for

from .. import clock, security
from . import services
from .models import BrowserSession, User

PENDING_TTL = 900


def current_session() -> BrowserSession | None:
    """The live browser session of this request, looked up once."""
    if "browser_session" not in g:
        g.browser_session = services.load_session(session.get("sid"))
    return g.browser_session


def current_user() -> User | None:
    bs = current_session()
    return bs.user if bs else None


def sign_in(user: User, amr: list[str]) -> BrowserSession:
    """Start a browser session with a fresh id (no fixation) and keep only the loop counters."""
    raw, bs = services.start_session(user, amr, request.user_agent.string, request.remote_addr)
    trips = session.get("trips")
    session.clear()
    if trips:
        session["trips"] = trips
    session["sid"] = raw
    session.permanent = True
    g.browser_session = bs
    return bs


def sign_out() -> None:
    session.pop("sid", None)
    session.pop("pending", None)
    g.browser_session = None


def set_pending(user: User, step: str, amr: list[str], next_url: str | None) -> None:
    session["pending"] = {"user_id": user.id, "step": step, "amr": amr,
                          "next": security.safe_next(next_url), "at": clock.timestamp()}


def get_pending(step: str) -> tuple[User | None, dict]:
    """The user waiting at this step, or None if there is none or it went stale."""
    data = session.get("pending") or {}
    if data.get("step") != step or clock.timestamp() - int(data.get("at", 0)) > PENDING_TTL:
        return None, {}
    return services.get_user(int(data["user_id"])), data


def clear_pending() -> None:
    session.pop("pending", None)


def remember_next(next_url: str | None) -> None:
    """Keep a pending authorization request across detours (forgot password, change password)."""
    safe = security.safe_next(next_url)
    if safe:
        session["next"] = safe


def pop_next(default_endpoint: str = "accounts.account") -> str:
    return security.safe_next(session.pop("next", None)) or url_for(default_endpoint)
