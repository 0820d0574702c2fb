"""The browser side of signing in: the session cookie, the sign-in id, where to go next.

The Flask session cookie holds only the raw browser-session id (its hash is in the
database), the raw id of a sign-in in progress (accounts.signin keeps its steps), the CSRF
token, the loop-guard counters, a pending `next` kept across detours, and the name of a
known destination (DESTINATIONS) that sent a signed-out browser to sign in.

`next` (SPEC section 7) only ever continues an /authorize or /refresh request. A sign-in
without one lands on /account; when it started at a page of ours that needs a sign-in (the
Users module), /account then offers a link back to it. The destination is a fixed name set
by our own guard, never a URL taken from the request, so nothing here can point elsewhere.
"""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for

from .. import security
from . import services, signin
from .models import BrowserSession, User

SIGN_IN_KEY = "signin"
DESTINATION_KEY = "destination"
# name -> (endpoint, link text, who may be offered it)
DESTINATIONS = {"users": ("admin.users", "Continue to the Users module",
                          lambda user: user.is_admin)}
STEP_ENDPOINTS = {"change": "passwords.change_password", "mfa": "accounts.login_mfa",
                  "enrol": "accounts.login_enrol"}


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
    """Forget this browser's session and its sign-in in progress (ended in the database)."""
    record = signin.find(session.pop(SIGN_IN_KEY, None))
    if record is not None:
        signin.end(record, "logout")
    session.pop("sid", None)
    g.browser_session = None


def begin(user: User, amr: list[str], done: tuple[str, ...] = ("pwd",),
          next_url: str | None = None):
    """A first factor is verified: the response for whatever the sign-in needs next.

    `done`: the steps the factor satisfied; `next_url`: the pending request it carried
    (an upstream trip keeps its own), else the one this browser remembered. What the factor's
    check left pending (services.authenticate) is committed with the next step's record, the
    browser session, or, on a state's own page, by signin.begin."""
    earlier = signin.find(session.get(SIGN_IN_KEY))
    if earlier is not None:  # a browser has one sign-in in progress: the new one replaces it
        # Committed on its own (rare: a browser mid sign-in): one transaction never holds the
        # sign-in's row and then the account's, the reverse of an administrator's disable.
        signin.end(earlier, "replaced")
    raw, decision = signin.begin(user, amr, next_url or session.get("next"), done)
    if raw:
        session[SIGN_IN_KEY] = raw
    return respond(decision)


def resume(step: str):
    """(record, user) of this browser's sign-in waiting at `step`; SignInOver otherwise."""
    return signin.resume(session.get(SIGN_IN_KEY), step)


def respond(decision: signin.Next):
    """Map a sign-in decision to its page: a step, the state's own page, or signed in."""
    if decision.step in STEP_ENDPOINTS:
        return redirect(url_for(STEP_ENDPOINTS[decision.step]), 303)
    if decision.step == "finish":
        return redirect(finish(decision), 303)
    return over(signin.SignInOver(decision.step, decision.user))


def finish(decision: signin.Next) -> str:
    """Open the browser session of a finished sign-in; returns where the user was going."""
    target = decision.next_url or security.safe_next(session.get("next"))
    destination = session.get(DESTINATION_KEY)
    sign_in(decision.user, list(decision.amr))
    if target:
        return target
    if destination in DESTINATIONS:  # /account offers it (pop_destination)
        session[DESTINATION_KEY] = destination
    return url_for("accounts.account")


def over(exc: signin.SignInOver):
    """Where an ended sign-in sends the browser: the state's page, a step, or /login."""
    if exc.page in STEP_ENDPOINTS:  # still going, only waiting at another step
        return redirect(url_for(STEP_ENDPOINTS[exc.page]), 303)
    session.pop(SIGN_IN_KEY, None)
    if exc.page == "inactive" and exc.user is not None:
        return render_template("accounts/inactive.html", user=exc.user)
    if exc.page == "reset" and exc.user is not None:
        return render_template("accounts/reset_required.html", user=exc.user)
    if request.method == "POST":
        flash(exc.message, "info")
    return redirect(url_for("accounts.login"), 303)


def remember_next(next_url: str | None) -> None:
    """Keep a pending authorization request across detours (forgot password, change password)."""
    safe = security.safe_next(next_url)
    if safe:
        session["next"] = safe


def pop_next(default_endpoint: str = "accounts.account") -> str:
    return security.safe_next(session.pop("next", None)) or url_for(default_endpoint)


def remember_destination(name: str) -> None:
    """A signed-out browser asked for one of our pages (a key of DESTINATIONS): after the
    sign-in, /account offers a link back to it."""
    if name in DESTINATIONS:
        session[DESTINATION_KEY] = name


def pop_destination(user: User) -> tuple[str, str] | None:
    """(url, link text) of the page this browser was going to before signing in, once, if
    `user` may use it; else None."""
    name = session.pop(DESTINATION_KEY, None)
    if name not in DESTINATIONS:
        return None
    endpoint, text, allowed = DESTINATIONS[name]
    return (url_for(endpoint), text) if allowed(user) else None
