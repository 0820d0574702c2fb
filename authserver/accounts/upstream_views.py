"""bp "upstream": /login/upstream/<name> and its callback, Connect and Disconnect on /account.

The views only map outcomes to pages: the trip and the ID token are in factors/upstream.py,
the linking rules in upstreams.py, what follows a first factor in signin/login_flow.
"""
from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from .. import security
from ..extensions import limiter
from . import login_flow, upstreams
from .factors import upstream as flow
from .forms import ConfirmForm

bp = Blueprint("upstream", __name__)

BROWSER_KEY = "upstream_browser"


def _browser_key() -> str:
    """A random key binding trips to this browser (its hash is stored with each trip)."""
    if not session.get(BROWSER_KEY):
        session[BROWSER_KEY] = security.random_token(24)
    return session[BROWSER_KEY]


def _failed(upstream, message: str, status: int = 400):
    return render_template("accounts/upstream_failed.html", upstream=upstream,
                           message=message), status


def _go_upstream(upstream, **trip):
    """Send the browser to the upstream's authorization endpoint, or say it cannot be reached."""
    try:
        url = flow.start(upstream, _browser_key(), **trip)
    except flow.UpstreamFailed as exc:
        flow.record_failure(upstream, exc)
        return _failed(upstream, exc.message, 502)
    return redirect(url, 303)


def _unknown():
    abort(404)


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


@bp.get("/login/upstream/<name>")
@limiter.limit(_login_limit)  # each start stores a trip: limited like password tries
def start(name):
    """Off to the upstream: code + PKCE + state + nonce, the pending `next` kept."""
    upstream = upstreams.find(name)
    if upstream is None:
        return _unknown()
    login_flow.remember_next(request.args.get("next"))
    return _go_upstream(upstream, next_url=session.get("next"))


def _account_form(name):
    """A form on /account about upstream NAME: (browser session, upstream, None), or a
    refusal as the third item (signed out, unknown upstream, expired form)."""
    bs = login_flow.current_session()
    if bs is None:
        return None, None, redirect(url_for("accounts.login"), 303)
    upstream = upstreams.find(name)
    if upstream is None:
        return bs, None, _unknown()
    if not ConfirmForm().validate_on_submit():
        return bs, upstream, _failed(upstream, "This form has expired. Reload the page and try "
                                               "again.")
    return bs, upstream, None


@bp.post("/account/upstream/<name>/connect")
def connect(name):
    """*Connect LABEL*: the signed-in user goes to the upstream to prove the identity."""
    bs, upstream, refused = _account_form(name)
    if refused:
        return refused
    return _go_upstream(upstream, purpose="connect", user_id=bs.user.id)


@bp.post("/account/upstream/<name>/disconnect")
def disconnect(name):
    bs, upstream, refused = _account_form(name)
    if refused:
        return refused
    try:
        upstreams.unlink(bs.user, upstream, actor_id=bs.user.id)
    except upstreams.UpstreamInvalid as exc:
        flash(exc.message, "error")
        return redirect(url_for("accounts.account"), 303)
    flash(f"Your {upstream.label} account is disconnected.", "success")
    return redirect(url_for("accounts.account"), 303)


@bp.get("/login/upstream/<name>/callback")
@limiter.limit(_login_limit)
def callback(name):
    """Back from the upstream: claim the trip, validate the ID token, then as a password."""
    upstream = upstreams.find(name)
    if upstream is None:
        return _unknown()
    try:
        trip = flow.claim(upstream, request.args.get("state"), session.get(BROWSER_KEY))
        if request.args.get("error"):
            raise flow.UpstreamFailed(f"{upstream.label} did not sign you in "
                                      f"({request.args.get('error', '')[:60]}).",
                                      "upstream_error")
        claims = flow.exchange(upstream, trip, request.args.get("code"))
    except flow.UpstreamDown as exc:
        flow.record_failure(upstream, exc)
        return _failed(upstream, exc.message, 502)
    except flow.UpstreamFailed as exc:
        flow.record_failure(upstream, exc)
        return _failed(upstream, exc.message)
    if trip.purpose == "connect":
        return _connected(upstream, trip, claims)
    try:
        user = upstreams.account_for(upstream, claims)
    except upstreams.NotLinked:
        flow.count(upstream, "not_linked")
        return render_template("accounts/upstream_not_linked.html", upstream=upstream), 403
    amr = [str(v) for v in claims.get("amr") or [] if isinstance(v, str)][:5]
    trusted_mfa = "mfa" in amr and bool(current_app.config.get("UPSTREAM_TRUST_MFA"))
    upstreams.record_sign_in(user, upstream, trusted_mfa)
    flow.count(upstream, "signed_in")
    done = ("pwd", "mfa") if trusted_mfa else ("pwd",)
    return login_flow.begin(user, ["fed", "mfa"] if trusted_mfa else ["fed"], done,
                            trip.next_url)


def _connected(upstream, trip, claims):
    bs = login_flow.current_session()
    if bs is None or bs.user.id != trip.user_id:
        flow.count(upstream, "connect_refused")
        return _failed(upstream, "Sign in here first, then connect the account again.")
    try:
        upstreams.link(bs.user, upstream, upstreams.subject_of(upstream, claims),
                       email=claims.get("email"), actor_id=bs.user.id, how="connect")
    except upstreams.UpstreamInvalid as exc:
        flow.count(upstream, "connect_refused")
        flash(exc.message, "error")
        return redirect(url_for("accounts.account"), 303)
    flow.count(upstream, "connected")
    flash(f"Your {upstream.label} account is connected: you can sign in with it.", "success")
    return redirect(url_for("accounts.account"), 303)
