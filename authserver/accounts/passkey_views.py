"""bp "passkeys": /account/passkeys, /login/passkey, /login/mfa/passkey (SPEC section 9).

The browser asks for options by a small JSON POST (CSRF header), runs the WebAuthn
ceremony (static/passkeys.js), then submits the answer as an ordinary form, so the response
is the same as for a password: a redirect, the second step, or the account state's page.
Bad input (malformed JSON, an oversized body, a wrong or replayed answer) is a 400, never
a 500.
"""
from __future__ import annotations

import json

from flask import (Blueprint, current_app, flash, jsonify, redirect, render_template, request,
                   session, url_for)

from .. import security
from ..extensions import limiter
from . import login_flow, mfa, passkeys, services, signin
from .factors import passkey as ceremony
from .forms import ConfirmForm, ReauthForm

bp = Blueprint("passkeys", __name__)

MAX_BODY = 64 * 1024  # bytes: a WebAuthn answer is a few kilobytes at most
LOGIN_HANDLE = "passkey_login"


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def _too_big() -> bool:
    return (request.content_length or 0) > MAX_BODY


def _json_error(message: str, status: int = 400):
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


def _bad(message: str, status: int = 400):
    return render_template("errors/400.html", title="The passkey was not accepted",
                           message=message, status=status), status


def _credential() -> dict:
    """The `credential` form field: the JSON of the browser's PublicKeyCredential."""
    raw = request.form.get("credential", "")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ceremony.PasskeyRejected("The passkey's answer could not be read.") from exc
    if not isinstance(value, dict):
        raise ceremony.PasskeyRejected("The passkey's answer could not be read.")
    return value


def prepare_login_page() -> None:
    """Give the browser its passkey handle when /login is rendered, not in the options
    request: that request runs alongside others (static files, the autofill and the button)
    whose responses also write the session cookie, and one written without the handle
    would win."""
    if current_app.config["PASSKEYS_DISABLED_REASON"] is None:
        _login_binding(create=True)


def _login_binding(create: bool) -> str | None:
    raw = session.get(LOGIN_HANDLE)
    if not isinstance(raw, str) or len(raw) > 100:
        if not create:
            return None
        raw = session[LOGIN_HANDLE] = security.random_token(32)
    return security.keyed_hash(raw, "passkey-login")


# --- signing in with a passkey -------------------------------------------------------------

@bp.post("/login/passkey/options")
@limiter.limit(_login_limit)
def login_options():
    if _too_big():
        return _json_error("The request is too large.")
    try:
        return jsonify(ceremony.login_options(_login_binding(create=True)))
    except ceremony.PasskeysOff as exc:
        return _json_error(exc.message, 404)


@bp.post("/login/passkey")
@limiter.limit(_login_limit)
def login():
    """A passkey sign-in with user verification: a complete first and second factor; the
    account's state still decides what follows (login_flow, as for a password)."""
    if _too_big():
        return _bad("The request is too large.")
    if not ConfirmForm().validate_on_submit():
        return _bad("This form has expired. Reload the page and try again.")
    binding = _login_binding(create=False)
    try:
        if binding is None:
            raise ceremony.PasskeyRejected("This passkey request has expired. Try again.")
        assertion = ceremony.verify_assertion(_credential(), "login", binding)
    except (ceremony.PasskeyRejected, ceremony.PasskeysOff) as exc:
        return _bad(exc.message)
    session.pop(LOGIN_HANDLE, None)
    return login_flow.begin(assertion.user, assertion.amr(), done=("passkey", "mfa"))


# --- a passkey as the second step ----------------------------------------------------------

@bp.post("/login/mfa/passkey/options")
@limiter.limit(_login_limit)
def mfa_options():
    if _too_big():
        return _json_error("The request is too large.")
    try:
        record, user = login_flow.resume("mfa")
        return jsonify(ceremony.second_step_options(user, f"signin:{record.id}"))
    except signin.SignInOver as exc:
        return _json_error(exc.message, 409)
    except ceremony.PasskeysOff as exc:
        return _json_error(exc.message, 404)


@bp.post("/login/mfa/passkey")
@limiter.limit(_login_limit)
def mfa_verify():
    if _too_big():
        return _bad("The request is too large.")
    if not ConfirmForm().validate_on_submit():
        return _bad("This form has expired. Reload the page and try again.")
    try:
        record, user = login_flow.resume("mfa")
        assertion = ceremony.verify_assertion(_credential(), "mfa", f"signin:{record.id}",
                                              user=user)
        return login_flow.respond(signin.complete_factor(record, "mfa", assertion.amr()))
    except signin.SignInOver as exc:
        return login_flow.over(exc)
    except (ceremony.PasskeyRejected, ceremony.PasskeysOff) as exc:
        return _bad(exc.message)


# --- /account/passkeys ----------------------------------------------------------------------

@bp.get("/account/passkeys")
def manage():
    bs = login_flow.current_session()
    if bs is None:
        return redirect(url_for("accounts.login"))
    return _page(bs)


def _page(bs, form=None, error: str | None = None, status: int = 200):
    return render_template(
        "accounts/passkeys.html", user=bs.user, passkeys=ceremony.user_passkeys(bs.user),
        form=form or ReauthForm(), ask_password=not mfa.recently_signed_in(bs),
        default_name=passkeys.default_name(request.user_agent.string), error=error,
        disabled_reason=current_app.config["PASSKEYS_DISABLED_REASON"]), status


@bp.post("/account/passkeys/options")
def add_options():
    """Options to create a passkey: the password again unless signed in within 5 minutes."""
    bs = login_flow.current_session()
    if bs is None:
        return _json_error("Sign in first.", 401)
    if _too_big():
        return _json_error("The request is too large.")
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    password = body.get("password")
    try:
        mfa.reauthenticate(bs.user, bs, password if isinstance(password, str) else None)
        return jsonify(ceremony.registration_options(bs.user, f"session:{bs.id}"))
    except (mfa.ReauthRequired, services.LoginRejected, services.LoginThrottled) as exc:
        return _json_error(exc.message, 403)
    except ceremony.PasskeysOff as exc:
        return _json_error(exc.message, 404)


@bp.post("/account/passkeys")
def add():
    bs = login_flow.current_session()
    if bs is None:
        return redirect(url_for("accounts.login"))
    if _too_big():
        return _bad("The request is too large.")
    if not ConfirmForm().validate_on_submit():
        return _bad("This form has expired. Reload the page and try again.")
    try:
        passkey = passkeys.add(bs.user, f"session:{bs.id}", _credential(),
                               request.form.get("name"), request.form.get("second_step") == "1",
                               request.user_agent.string)
    except (ceremony.PasskeyRejected, ceremony.PasskeysOff) as exc:
        return _page(bs, error=exc.message, status=400)
    flash(f"Passkey \u201c{passkey.name}\u201d added.", "success")
    return redirect(url_for("passkeys.manage"), 303)


@bp.post("/account/passkeys/<passkey_id>/remove")
def remove(passkey_id):
    bs = login_flow.current_session()
    if bs is None:
        return redirect(url_for("accounts.login"))
    form = ReauthForm()
    if not form.validate_on_submit():
        return _bad("This form has expired. Reload the page and try again.")
    try:
        mfa.reauthenticate(bs.user, bs, form.password.data)
        passkey = passkeys.remove(bs.user, passkey_id)
    except (mfa.ReauthRequired, services.LoginRejected, services.LoginThrottled) as exc:
        return _page(bs, form, error=exc.message, status=400)
    except passkeys.PasskeyNotFound as exc:
        return _page(bs, form, error=exc.message, status=404)
    flash(f"Passkey \u201c{passkey.name}\u201d removed.", "success")
    return redirect(url_for("passkeys.manage"), 303)
